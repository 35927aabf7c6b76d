"""Gateway events applied to invoices, payments, credit and the membership.

Covers each event once, the same event twice (in sequence and at the same moment), and
deliveries out of order, which must end in the state the in-order sequence gives.
"""

import datetime
import threading
from decimal import Decimal

import pytest

from billing.models import CreditEntry, GatewayCustomer, GatewaySubscription, Invoice, Payment
from billing.services import BillingError, apply_gateway_event
from members.models import Membership, MembershipEvent
from tests.concurrency import run_at_once
from tests.factories.billing import (
    InvoiceFactory,
    checkout_completed,
    payment_failed,
    payment_succeeded,
)

State = Membership.State


def apply(event):
    apply_gateway_event(event=event, gateway="stub")


def refreshed(membership):
    return Membership.objects.get(pk=membership.pk)


def snapshot(membership):
    """Return what the events of a membership produced, to compare two orders of delivery."""
    membership = refreshed(membership)
    return {
        "state": membership.state,
        "grace_until": membership.grace_until,
        "invoices": sorted(
            Invoice.objects.filter(membership=membership).values_list(
                "period_number", "status", "gateway_reference"
            )
        ),
        "payments": sorted(
            Payment.objects.filter(membership=membership).values_list("reference", "amount")
        ),
        "grants": sorted(
            CreditEntry.objects.filter(member=membership.member, kind="grant").values_list(
                "amount", "expires_on"
            )
        ),
        "activations": MembershipEvent.objects.filter(
            membership=membership, to_state=State.ACTIVE, from_state=State.PENDING
        ).count(),
    }


# --- PaymentSucceeded ------------------------------------------------------------------


def test_first_payment_activates(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))

    assert refreshed(hot_desk_membership).state == State.ACTIVE


def test_first_payment_creates_paid_invoice(hot_desk_membership, clock):
    event = payment_succeeded(hot_desk_membership)
    apply(event)

    invoice = Invoice.objects.get(membership=hot_desk_membership)
    assert invoice.status == Invoice.Status.PAID
    assert invoice.period_number == 1
    assert invoice.period_start == clock.today
    assert invoice.period_end == datetime.date(2025, 2, 15)
    assert invoice.amount == Decimal("250.00")
    assert invoice.gateway_reference == event.invoice_reference
    assert invoice.hosted_url == event.hosted_url
    assert invoice.paid_at == event.paid_at


def test_first_payment_records_payment(hot_desk_membership):
    event = payment_succeeded(hot_desk_membership)
    apply(event)

    payment = Payment.objects.get(membership=hot_desk_membership)
    assert payment.method == Payment.Method.GATEWAY
    assert payment.gateway == "stub"
    assert payment.reference == event.payment_reference
    assert payment.amount == Decimal("250.00")
    assert payment.invoice.period_number == 1


def test_first_payment_grants_credit(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))

    grant = CreditEntry.objects.get(member=hot_desk_membership.member)
    assert grant.kind == CreditEntry.Kind.GRANT
    assert grant.amount == Decimal("150.00")
    assert grant.expires_on == datetime.date(2025, 2, 15)
    assert grant.invoice.period_number == 1


def test_zero_credit_plan_grants_nothing(hot_desk_membership):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(included_credit=Decimal("0"))

    apply(payment_succeeded(refreshed(hot_desk_membership)))

    assert not CreditEntry.objects.filter(member=hot_desk_membership.member).exists()


def test_rolling_credit_never_expires(hot_desk_membership):
    hot_desk_membership.plan.credit_rolls_over = True
    hot_desk_membership.plan.save()

    apply(payment_succeeded(hot_desk_membership))

    grant = CreditEntry.objects.get(member=hot_desk_membership.member)
    assert grant.expires_on is None


def test_credit_uses_membership_snapshot(hot_desk_membership):
    hot_desk_membership.plan.included_credit = Decimal("999.00")
    hot_desk_membership.plan.save()

    apply(payment_succeeded(hot_desk_membership))

    grant = CreditEntry.objects.get(member=hot_desk_membership.member)
    assert grant.amount == Decimal("150.00")


def test_future_start_stays_pending(hot_desk_membership, clock):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(
        start_date=datetime.date(2025, 2, 1), commitment_end=datetime.date(2026, 2, 1)
    )
    membership = refreshed(hot_desk_membership)

    apply(payment_succeeded(membership))

    assert refreshed(membership).state == State.PENDING
    assert Invoice.objects.get(membership=membership).status == Invoice.Status.PAID


def test_payment_matches_existing_invoice_by_period(hot_desk_membership):
    invoice = InvoiceFactory(membership=hot_desk_membership)

    apply(payment_succeeded(hot_desk_membership, invoice_reference="in_new"))

    invoice.refresh_from_db()
    assert Invoice.objects.filter(membership=hot_desk_membership).count() == 1
    assert invoice.status == Invoice.Status.PAID
    assert invoice.gateway_reference == "in_new"


def test_period_a_day_off_matches_nearest(hot_desk_membership):
    # A gateway computing in UTC may report 14 February for the period starting 15 February.
    event = payment_succeeded(
        hot_desk_membership, number=2, period_start=datetime.date(2025, 2, 14)
    )
    apply(event)

    invoice = Invoice.objects.get(membership=hot_desk_membership)
    assert invoice.period_number == 2
    assert invoice.period_start == datetime.date(2025, 2, 15)


def test_reference_of_other_membership_rejected(hot_desk_membership):
    other = InvoiceFactory(gateway="stub", gateway_reference="in_shared")

    with pytest.raises(BillingError, match=str(other.membership_id)):
        apply(payment_succeeded(hot_desk_membership, invoice_reference="in_shared"))


def test_unknown_membership_rejected(db):
    membership = Membership(pk=987654, start_date=datetime.date(2025, 1, 1))
    membership.monthly_price = Decimal("250.00")

    with pytest.raises(BillingError, match="987654"):
        apply(payment_succeeded(membership))


# --- Periods at month ends --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "number", "period_start", "period_end"),
    [
        (datetime.date(2025, 1, 31), 2, datetime.date(2025, 2, 28), datetime.date(2025, 3, 31)),
        (datetime.date(2025, 1, 31), 3, datetime.date(2025, 3, 31), datetime.date(2025, 4, 30)),
        (datetime.date(2024, 1, 31), 2, datetime.date(2024, 2, 29), datetime.date(2024, 3, 31)),
        (datetime.date(2024, 2, 29), 1, datetime.date(2024, 2, 29), datetime.date(2024, 3, 29)),
        (datetime.date(2024, 2, 29), 13, datetime.date(2025, 2, 28), datetime.date(2025, 3, 29)),
    ],
)
def test_period_at_month_end(hot_desk_membership, clock, start, number, period_start, period_end):
    clock.set(start)
    Membership.objects.filter(pk=hot_desk_membership.pk).update(
        start_date=start, commitment_end=start + datetime.timedelta(days=400)
    )
    membership = refreshed(hot_desk_membership)

    apply(payment_succeeded(membership, number=number))

    invoice = Invoice.objects.get(membership=membership)
    grant = CreditEntry.objects.get(member=membership.member)
    assert invoice.period_number == number
    assert invoice.period_start == period_start
    assert invoice.period_end == period_end
    assert grant.expires_on == period_end


# --- The same event twice -----------------------------------------------------------------


def test_same_success_twice_applies_once(hot_desk_membership):
    event = payment_succeeded(hot_desk_membership)
    apply(event)
    first = snapshot(hot_desk_membership)

    apply(event)

    assert snapshot(hot_desk_membership) == first
    assert first["activations"] == 1
    assert len(first["payments"]) == 1
    assert len(first["grants"]) == 1


def test_two_events_for_one_payment_apply_once(hot_desk_membership):
    # Stripe sends invoice.paid and invoice.payment_succeeded for the same payment.
    apply(payment_succeeded(hot_desk_membership, event_id="evt_a"))
    apply(payment_succeeded(hot_desk_membership, event_id="evt_b"))

    assert Payment.objects.filter(membership=hot_desk_membership).count() == 1
    assert CreditEntry.objects.filter(member=hot_desk_membership.member).count() == 1


def test_same_failure_twice_keeps_first_grace(hot_desk_membership, clock):
    apply(payment_succeeded(hot_desk_membership))
    event = payment_failed(hot_desk_membership, number=2)
    apply(event)
    clock.advance(3)

    apply(event)

    membership = refreshed(hot_desk_membership)
    assert membership.grace_until == datetime.date(2025, 1, 22)
    assert (
        MembershipEvent.objects.filter(membership=membership, to_state=State.PAST_DUE).count() == 1
    )


def test_checkout_twice_stores_once(hot_desk_membership):
    event = checkout_completed(hot_desk_membership)
    apply(event)
    apply(event)

    assert GatewayCustomer.objects.filter(member=hot_desk_membership.member).count() == 1
    assert GatewaySubscription.objects.filter(membership=hot_desk_membership).count() == 1


def test_checkout_stores_references(hot_desk_membership):
    apply(checkout_completed(hot_desk_membership, customer_reference="cus_x"))

    customer = GatewayCustomer.objects.get(member=hot_desk_membership.member)
    subscription = GatewaySubscription.objects.get(membership=hot_desk_membership)
    assert customer.reference == "cus_x"
    assert customer.gateway == "stub"
    assert subscription.reference == f"sub_{hot_desk_membership.pk}"


def test_checkout_does_not_activate(hot_desk_membership):
    apply(checkout_completed(hot_desk_membership))

    assert refreshed(hot_desk_membership).state == State.PENDING


def test_second_subscription_keeps_first(hot_desk_membership):
    apply(checkout_completed(hot_desk_membership, subscription_reference="sub_first"))
    apply(checkout_completed(hot_desk_membership, subscription_reference="sub_second"))

    subscription = GatewaySubscription.objects.get(membership=hot_desk_membership)
    assert subscription.reference == "sub_first"


# --- Out of order ----------------------------------------------------------------------------


def test_paid_before_checkout_same_as_in_order(hot_desk_membership):
    from tests.factories import MembershipFactory

    other = MembershipFactory(
        plan=hot_desk_membership.plan, start_date=hot_desk_membership.start_date
    )
    apply(checkout_completed(hot_desk_membership))
    apply(payment_succeeded(hot_desk_membership))

    apply(payment_succeeded(other))
    apply(checkout_completed(other))

    in_order, out_of_order = snapshot(hot_desk_membership), snapshot(other)
    assert out_of_order["state"] == in_order["state"] == State.ACTIVE
    assert len(out_of_order["grants"]) == len(in_order["grants"]) == 1
    assert GatewaySubscription.objects.filter(membership=other).exists()


def test_old_failure_after_success_ignored(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))
    apply(payment_succeeded(hot_desk_membership, number=2))

    apply(payment_failed(hot_desk_membership, number=2))

    membership = refreshed(hot_desk_membership)
    assert membership.state == State.ACTIVE
    assert membership.grace_until is None
    assert Invoice.objects.get(membership=membership, period_number=2).status == "paid"


def test_failure_older_than_latest_paid_ignored(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))
    apply(payment_succeeded(hot_desk_membership, number=3))

    apply(payment_failed(hot_desk_membership, number=2))

    assert refreshed(hot_desk_membership).state == State.ACTIVE


def test_failure_then_success_either_order(hot_desk_membership):
    from tests.factories import MembershipFactory

    other = MembershipFactory(
        plan=hot_desk_membership.plan, start_date=hot_desk_membership.start_date
    )
    for membership in (hot_desk_membership, other):
        apply(payment_succeeded(membership))

    apply(payment_failed(hot_desk_membership, number=2))
    apply(payment_succeeded(hot_desk_membership, number=2))

    apply(payment_succeeded(other, number=2))
    apply(payment_failed(other, number=2))

    in_order, out_of_order = snapshot(hot_desk_membership), snapshot(other)
    assert in_order["state"] == State.ACTIVE
    assert out_of_order["state"] == State.ACTIVE
    assert [row[:2] for row in out_of_order["invoices"]] == [
        row[:2] for row in in_order["invoices"]
    ]
    assert len(out_of_order["grants"]) == len(in_order["grants"]) == 2


def test_stale_success_does_not_reinstate(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))
    apply(payment_failed(hot_desk_membership, number=3))

    # The payment of period 2 arrives after period 3 failed: period 3 is still owed.
    apply(payment_succeeded(hot_desk_membership, number=2))

    assert refreshed(hot_desk_membership).state == State.PAST_DUE


def test_stale_failure_same_as_in_order(hot_desk_membership):
    from tests.factories import MembershipFactory

    other = MembershipFactory(
        plan=hot_desk_membership.plan, start_date=hot_desk_membership.start_date
    )
    for membership in (hot_desk_membership, other):
        apply(payment_succeeded(membership))

    apply(payment_failed(hot_desk_membership, number=2))
    apply(payment_succeeded(hot_desk_membership, number=3))

    apply(payment_succeeded(other, number=3))
    apply(payment_failed(other, number=2))

    in_order, out_of_order = snapshot(hot_desk_membership), snapshot(other)
    assert in_order["state"] == out_of_order["state"] == State.ACTIVE
    assert [row[:2] for row in out_of_order["invoices"]] == [
        row[:2] for row in in_order["invoices"]
    ]


def test_success_after_cancel_keeps_cancelled(hot_desk_membership):
    from members.services import cancel_membership

    cancel_membership(membership=hot_desk_membership, reason="changed plans")

    apply(payment_succeeded(hot_desk_membership))

    assert refreshed(hot_desk_membership).state == State.CANCELLED


def test_failure_of_pending_stays_pending(hot_desk_membership):
    apply(payment_failed(hot_desk_membership))

    membership = refreshed(hot_desk_membership)
    assert membership.state == State.PENDING
    assert Invoice.objects.get(membership=membership).status == Invoice.Status.OPEN


# --- At the same moment (PostgreSQL) -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_success_at_once_applies_once(hot_desk_membership):
    event = payment_succeeded(hot_desk_membership)

    errors = run_at_once(4, lambda: apply(event))

    assert errors == []
    state = snapshot(hot_desk_membership)
    assert state["state"] == State.ACTIVE
    assert state["activations"] == 1
    assert len(state["payments"]) == 1
    assert len(state["grants"]) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_events_for_one_payment_at_once(hot_desk_membership):
    events = iter(
        [
            payment_succeeded(hot_desk_membership, event_id="evt_paid"),
            payment_succeeded(hot_desk_membership, event_id="evt_succeeded"),
        ]
    )
    lock = threading.Lock()

    def deliver():
        with lock:
            event = next(events)
        apply(event)

    errors = run_at_once(2, deliver)

    assert errors == []
    assert Payment.objects.filter(membership=hot_desk_membership).count() == 1
    assert CreditEntry.objects.filter(member=hot_desk_membership.member).count() == 1
