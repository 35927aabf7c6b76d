"""The membership lifecycle driven by billing: grace, suspension, reinstatement, start dates,
subscription ends, early termination and the renewal policy at term end."""

import datetime
from decimal import Decimal

import pytest

from billing.models import GatewaySubscription, Invoice
from billing.services import (
    BillingError,
    activate_due_memberships,
    apply_gateway_event,
    apply_term_ends,
    cancel_membership_with_gateway,
    record_manual_payment,
    suspend_overdue_memberships,
    terminate_membership_early,
)
from members.models import Membership, MembershipEvent, Plan
from members.services import MembersError, cancel_membership, renew_membership
from tests.factories import MembershipFactory, PlanFactory
from tests.factories.billing import (
    checkout_completed,
    payment_failed,
    payment_succeeded,
    subscription_cancelled,
)

State = Membership.State


def apply(event):
    apply_gateway_event(event=event, gateway="stub")


def refreshed(membership):
    return Membership.objects.get(pk=membership.pk)


@pytest.fixture
def active_membership(hot_desk_membership):
    apply(payment_succeeded(hot_desk_membership))
    return refreshed(hot_desk_membership)


# --- Failure, grace, suspension, reinstatement ---------------------------------------------


def test_failure_marks_past_due(active_membership, clock):
    apply(payment_failed(active_membership, number=2))

    membership = refreshed(active_membership)
    assert membership.state == State.PAST_DUE
    assert membership.grace_until == clock.today + datetime.timedelta(days=7)


def test_grace_days_follow_setting(active_membership, clock, settings):
    settings.CPR_GRACE_PERIOD_DAYS = 3

    apply(payment_failed(active_membership, number=2))

    assert refreshed(active_membership).grace_until == clock.today + datetime.timedelta(days=3)


def test_failure_opens_invoice(active_membership):
    event = payment_failed(active_membership, number=2)
    apply(event)

    invoice = Invoice.objects.get(membership=active_membership, period_number=2)
    assert invoice.status == Invoice.Status.OPEN
    assert invoice.hosted_url == event.hosted_url


def test_second_failure_keeps_grace(active_membership, clock):
    apply(payment_failed(active_membership, number=2))
    clock.advance(5)

    apply(payment_failed(active_membership, number=3))

    assert refreshed(active_membership).grace_until == datetime.date(2025, 1, 22)


def test_grace_then_suspension_then_reinstatement(active_membership, clock):
    apply(payment_failed(active_membership, number=2))

    clock.set(datetime.date(2025, 1, 22))  # the last day of grace
    assert suspend_overdue_memberships() == []
    assert refreshed(active_membership).state == State.PAST_DUE

    clock.set(datetime.date(2025, 1, 23))
    suspended = suspend_overdue_memberships()
    assert [membership.pk for membership in suspended] == [active_membership.pk]
    assert refreshed(active_membership).state == State.SUSPENDED

    apply(payment_succeeded(active_membership, number=2))
    membership = refreshed(active_membership)
    assert membership.state == State.ACTIVE
    assert membership.grace_until is None


def test_suspension_runs_once(active_membership, clock):
    apply(payment_failed(active_membership, number=2))
    clock.advance(8)
    suspend_overdue_memberships()

    assert suspend_overdue_memberships() == []
    assert (
        MembershipEvent.objects.filter(
            membership=active_membership, to_state=State.SUSPENDED
        ).count()
        == 1
    )


def test_suspension_takes_explicit_today(active_membership):
    apply(payment_failed(active_membership, number=2))

    suspended = suspend_overdue_memberships(today=datetime.date(2025, 2, 1))

    assert [membership.pk for membership in suspended] == [active_membership.pk]


def test_past_due_without_grace_not_suspended(hot_desk_membership):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(state=State.PAST_DUE)

    assert suspend_overdue_memberships(today=datetime.date(2030, 1, 1)) == []


def test_payment_reinstates_past_due(active_membership):
    apply(payment_failed(active_membership, number=2))

    apply(payment_succeeded(active_membership, number=2))

    assert refreshed(active_membership).state == State.ACTIVE


def test_later_period_payment_reinstates(active_membership):
    apply(payment_failed(active_membership, number=2))

    apply(payment_succeeded(active_membership, number=3))

    assert refreshed(active_membership).state == State.ACTIVE


def test_manual_payment_reinstates_suspended(active_membership, clock, staff_user):
    apply(payment_failed(active_membership, number=2))
    clock.advance(8)
    suspend_overdue_memberships()

    record_manual_payment(
        membership=active_membership,
        amount=Decimal("250.00"),
        method="ath_movil",
        reference="ATH-123",
        received_at=datetime.date(2025, 1, 23),
        actor=staff_user,
    )

    assert refreshed(active_membership).state == State.ACTIVE
    assert Invoice.objects.get(membership=active_membership, period_number=2).status == "paid"


# --- Start dates ----------------------------------------------------------------------------


@pytest.fixture
def paid_future_membership(hot_desk_membership, clock):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(
        start_date=datetime.date(2025, 2, 1), commitment_end=datetime.date(2026, 2, 1)
    )
    membership = refreshed(hot_desk_membership)
    apply(payment_succeeded(membership))
    return membership


def test_paid_future_start_activates_on_date(paid_future_membership, clock):
    assert activate_due_memberships() == []

    clock.set(datetime.date(2025, 2, 1))
    activated = activate_due_memberships()

    assert [membership.pk for membership in activated] == [paid_future_membership.pk]
    assert refreshed(paid_future_membership).state == State.ACTIVE


def test_unpaid_start_not_activated(hot_desk_membership, clock):
    clock.advance(30)

    assert activate_due_memberships() == []
    assert refreshed(hot_desk_membership).state == State.PENDING


def test_activation_runs_once(paid_future_membership, clock):
    clock.set(datetime.date(2025, 2, 1))
    activate_due_memberships()

    assert activate_due_memberships() == []


# --- Subscription ended at the gateway -------------------------------------------------------


def test_subscription_end_cancels_pending(hot_desk_membership):
    apply(subscription_cancelled(hot_desk_membership))

    assert refreshed(hot_desk_membership).state == State.CANCELLED


def test_subscription_end_records_ended_at(active_membership):
    apply(checkout_completed(active_membership))
    event = subscription_cancelled(active_membership)

    apply(event)

    subscription = GatewaySubscription.objects.get(membership=active_membership)
    assert subscription.ended_at == event.ended_at


def test_subscription_end_after_term_ends(active_membership, clock):
    apply(checkout_completed(active_membership))
    clock.set(datetime.date(2026, 1, 15))

    apply(subscription_cancelled(active_membership, ended_on=datetime.date(2026, 1, 15)))

    membership = refreshed(active_membership)
    assert membership.state == State.ENDED
    assert membership.end_date == datetime.date(2026, 1, 15)


def test_subscription_end_before_term_cancels(active_membership, clock):
    apply(checkout_completed(active_membership))
    clock.set(datetime.date(2025, 6, 1))

    apply(subscription_cancelled(active_membership, ended_on=datetime.date(2025, 6, 1)))

    membership = refreshed(active_membership)
    event = membership.events.filter(to_state=State.CANCELLED).get()
    assert membership.state == State.CANCELLED
    assert membership.end_date == datetime.date(2025, 6, 1)
    assert "before the commitment end" in event.reason


def test_subscription_end_applies_scheduled_cancel(active_membership, clock):
    cancel_membership(membership=active_membership, reason="moving away")
    clock.set(datetime.date(2026, 1, 15))

    apply(subscription_cancelled(active_membership, ended_on=datetime.date(2026, 1, 15)))

    assert refreshed(active_membership).state == State.CANCELLED


def test_subscription_end_twice_changes_once(active_membership, clock):
    clock.set(datetime.date(2026, 1, 15))
    event = subscription_cancelled(active_membership, ended_on=datetime.date(2026, 1, 15))
    apply(event)

    apply(event)

    assert refreshed(active_membership).events.filter(to_state=State.ENDED).count() == 1


def test_other_subscription_end_ignored(active_membership):
    apply(checkout_completed(active_membership, subscription_reference="sub_kept"))

    apply(subscription_cancelled(active_membership, subscription_reference="sub_duplicate"))

    assert refreshed(active_membership).state == State.ACTIVE


def test_checkout_after_end_keeps_end(hot_desk_membership):
    apply(subscription_cancelled(hot_desk_membership))

    apply(checkout_completed(hot_desk_membership))

    subscription = GatewaySubscription.objects.get(membership=hot_desk_membership)
    assert subscription.ended_at is not None
    assert refreshed(hot_desk_membership).state == State.CANCELLED


# --- Early termination ------------------------------------------------------------------------


def test_early_termination_cancels_today(active_membership, clock, staff_user):
    clock.set(datetime.date(2025, 5, 10))

    membership = terminate_membership_early(
        membership=active_membership, actor=staff_user, reason="relocating abroad"
    )

    assert membership.state == State.CANCELLED
    assert membership.end_date == datetime.date(2025, 5, 10)
    assert membership.events.get(to_state=State.CANCELLED).reason == "relocating abroad"


def test_early_termination_charge_invoice(active_membership, clock, staff_user):
    clock.set(datetime.date(2025, 5, 10))

    terminate_membership_early(
        membership=active_membership,
        actor=staff_user,
        reason="relocating abroad",
        charge=Decimal("500.00"),
    )

    invoice = Invoice.objects.get(membership=active_membership, kind="early_termination")
    assert invoice.amount == Decimal("500.00")
    assert invoice.status == Invoice.Status.OPEN
    assert invoice.period_number is None
    assert invoice.period_start == datetime.date(2025, 5, 10)
    assert invoice.period_end == active_membership.commitment_end


def test_early_termination_without_charge(active_membership, staff_user):
    terminate_membership_early(membership=active_membership, actor=staff_user, reason="moving")

    assert not Invoice.objects.filter(kind="early_termination").exists()


def test_early_termination_needs_reason(active_membership, staff_user):
    with pytest.raises(BillingError, match="reason"):
        terminate_membership_early(membership=active_membership, actor=staff_user, reason=" ")

    assert refreshed(active_membership).state == State.ACTIVE


def test_early_termination_negative_charge(active_membership, staff_user):
    with pytest.raises(BillingError, match="negative"):
        terminate_membership_early(
            membership=active_membership, actor=staff_user, reason="x", charge=Decimal("-1")
        )


def test_early_termination_after_commitment(active_membership, clock, staff_user):
    clock.set(active_membership.commitment_end)

    with pytest.raises(BillingError, match="not an early termination"):
        terminate_membership_early(membership=active_membership, actor=staff_user, reason="x")


def test_early_termination_tells_gateway(
    active_membership, clock, staff_user, stub_gateway, django_capture_on_commit_callbacks
):
    apply(checkout_completed(active_membership))
    clock.set(datetime.date(2025, 5, 10))

    with django_capture_on_commit_callbacks(execute=True):
        terminate_membership_early(membership=active_membership, actor=staff_user, reason="x")

    subscription = GatewaySubscription.objects.get(membership=active_membership)
    assert subscription.cancel_at == datetime.date(2025, 5, 10)
    assert stub_gateway.calls == [
        ("schedule_cancellation", active_membership.pk, datetime.date(2025, 5, 10))
    ]


def test_cancel_tells_gateway_commitment_end(
    active_membership, stub_gateway, django_capture_on_commit_callbacks
):
    apply(checkout_completed(active_membership))

    with django_capture_on_commit_callbacks(execute=True):
        membership = cancel_membership_with_gateway(membership=active_membership, reason="x")

    assert membership.state == State.ACTIVE
    assert membership.cancel_at == active_membership.commitment_end
    assert stub_gateway.calls == [
        ("schedule_cancellation", active_membership.pk, active_membership.commitment_end)
    ]


def test_cancel_now_tells_gateway_today(
    active_membership, clock, stub_gateway, django_capture_on_commit_callbacks
):
    apply(checkout_completed(active_membership))

    with django_capture_on_commit_callbacks(execute=True):
        membership = cancel_membership_with_gateway(
            membership=active_membership, reason="fraud", immediately=True
        )

    assert membership.state == State.CANCELLED
    assert stub_gateway.calls == [("schedule_cancellation", active_membership.pk, clock.today)]


def test_cancel_without_subscription_calls_nothing(
    active_membership, stub_gateway, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        cancel_membership_with_gateway(membership=active_membership, reason="x")

    assert stub_gateway.calls == []


def test_termination_charge_paid_manually(active_membership, clock, staff_user):
    terminate_membership_early(
        membership=active_membership, actor=staff_user, reason="x", charge=Decimal("500.00")
    )

    payment = record_manual_payment(
        membership=active_membership,
        amount=Decimal("500.00"),
        method="check",
        reference="1001",
        received_at=datetime.date(2025, 1, 15),
        actor=staff_user,
    )

    assert payment.invoice.kind == Invoice.Kind.EARLY_TERMINATION
    assert payment.invoice.status == Invoice.Status.PAID
    assert refreshed(active_membership).state == State.CANCELLED
    assert not payment.invoice.credit_entries.exists()


# --- Term end and renewal policy ------------------------------------------------------------


def membership_on(policy, *, start, state=State.ACTIVE, contract_months=12):
    plan = PlanFactory(renewal_policy=policy, contract_months=contract_months)
    return MembershipFactory(plan=plan, start_date=start, state=state)


def test_term_end_renews(db):
    membership = membership_on(Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 1, 31))

    changed = apply_term_ends(today=datetime.date(2025, 1, 31))

    assert [item.pk for item in changed] == [membership.pk]
    assert refreshed(membership).commitment_end == datetime.date(2026, 1, 31)
    assert refreshed(membership).state == State.ACTIVE


def test_term_not_over_untouched(db):
    membership = membership_on(Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 1, 31))

    assert apply_term_ends(today=datetime.date(2025, 1, 30)) == []
    assert refreshed(membership).commitment_end == datetime.date(2025, 1, 31)


def test_renewal_counts_from_start(db):
    # 29 February 2024 + 12 months clamps to 28 February 2025; the next terms come from the
    # start date, so 2028 gets its 29 February back.
    membership = membership_on(
        Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 2, 29), contract_months=24
    )

    apply_term_ends(today=datetime.date(2026, 2, 28))

    assert refreshed(membership).commitment_end == datetime.date(2028, 2, 29)


def test_missed_terms_renew_past_today(db):
    membership = membership_on(
        Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2022, 3, 1), contract_months=6
    )

    apply_term_ends(today=datetime.date(2025, 1, 15))

    assert refreshed(membership).commitment_end == datetime.date(2025, 3, 1)


def test_term_end_renewal_runs_once(db):
    membership = membership_on(Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 1, 31))
    apply_term_ends(today=datetime.date(2025, 1, 31))

    assert apply_term_ends(today=datetime.date(2025, 1, 31)) == []
    assert membership.events.filter(cause="term renewed").count() == 1


def test_term_end_policy_end(db):
    membership = membership_on(Plan.RenewalPolicy.END, start=datetime.date(2024, 1, 31))

    apply_term_ends(today=datetime.date(2025, 2, 3))

    membership = refreshed(membership)
    assert membership.state == State.ENDED
    assert membership.end_date == datetime.date(2025, 1, 31)


def test_term_end_month_to_month_untouched(db):
    membership = membership_on(Plan.RenewalPolicy.MONTH_TO_MONTH, start=datetime.date(2024, 1, 31))

    assert apply_term_ends(today=datetime.date(2025, 2, 3)) == []
    assert refreshed(membership).commitment_end == datetime.date(2025, 1, 31)
    assert refreshed(membership).state == State.ACTIVE


def test_month_to_month_cancels_at_once(db, clock):
    membership = membership_on(Plan.RenewalPolicy.MONTH_TO_MONTH, start=datetime.date(2024, 1, 1))
    clock.set(datetime.date(2025, 3, 10))
    apply_term_ends()

    cancelled = cancel_membership(membership=membership, reason="")

    assert cancelled.state == State.CANCELLED


def test_term_end_skips_scheduled_cancel(db, clock):
    membership = membership_on(Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 1, 31))
    clock.set(datetime.date(2024, 6, 1))
    cancel_membership(membership=membership, reason="moving")

    assert apply_term_ends(today=datetime.date(2025, 1, 31)) == []
    assert refreshed(membership).commitment_end == datetime.date(2025, 1, 31)


def test_term_end_skips_pending(db):
    membership_on(
        Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2024, 1, 31), state=State.PENDING
    )

    assert apply_term_ends(today=datetime.date(2025, 2, 3)) == []


def test_term_end_policy_end_tells_gateway(db, stub_gateway, django_capture_on_commit_callbacks):
    membership = membership_on(Plan.RenewalPolicy.END, start=datetime.date(2024, 1, 31))
    GatewaySubscription.objects.create(membership=membership, gateway="stub", reference="sub_1")

    with django_capture_on_commit_callbacks(execute=True):
        apply_term_ends(today=datetime.date(2025, 2, 3))

    assert stub_gateway.calls == [
        ("schedule_cancellation", membership.pk, datetime.date(2025, 1, 31))
    ]


def test_renew_rejects_scheduled_cancel(db, clock):
    membership = membership_on(Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2025, 1, 1))
    cancel_membership(membership=membership, reason="moving")

    with pytest.raises(MembersError, match="Withdraw the cancellation"):
        renew_membership(membership=membership)


def test_renew_rejects_cancelled(db):
    membership = membership_on(
        Plan.RenewalPolicy.RENEW_TERM, start=datetime.date(2025, 1, 1), state=State.CANCELLED
    )

    with pytest.raises(MembersError, match="only an active"):
        renew_membership(membership=membership)
