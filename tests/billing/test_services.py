"""Stored webhook events, manual payments and the gateway pages of billing.services."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import credit
from billing.gateways.base import GatewayError
from billing.models import CreditEntry, Invoice, Payment, WebhookEvent
from billing.services import (
    BillingError,
    apply_gateway_event,
    open_billing_self_service,
    process_stuck_webhook_events,
    process_webhook_event,
    record_manual_payment,
    start_membership_payment,
    store_webhook_event,
)
from members.models import Membership
from tests.billing.stub_gateway import event_payload
from tests.concurrency import run_at_once
from tests.factories.billing import InvoiceFactory, payment_failed, payment_succeeded

State = Membership.State


def refreshed(membership):
    return Membership.objects.get(pk=membership.pk)


def store(event):
    payload = event_payload(event)
    webhook_event, _created = store_webhook_event(
        gateway="stub", event_id=payload["id"], event_type=payload["type"], payload=payload
    )
    return webhook_event


# --- Storing events ---------------------------------------------------------------------------


def test_store_event_once(db):
    first, created = store_webhook_event(
        gateway="stub", event_id="evt_1", event_type="a", payload={"n": 1}
    )
    second, created_again = store_webhook_event(
        gateway="stub", event_id="evt_1", event_type="a", payload={"n": 2}
    )

    assert created is True
    assert created_again is False
    assert second.pk == first.pk
    assert WebhookEvent.objects.get().payload == {"n": 1}


def test_store_same_id_other_gateway(db):
    store_webhook_event(gateway="stub", event_id="evt_1", event_type="a", payload={})

    _event, created = store_webhook_event(
        gateway="stripe", event_id="evt_1", event_type="a", payload={}
    )

    assert created is True


def test_store_rejects_empty_id(db):
    with pytest.raises(BillingError, match="no id"):
        store_webhook_event(gateway="stub", event_id=" ", event_type="a", payload={})


# --- Processing events -----------------------------------------------------------------------


def test_process_applies_event(hot_desk_membership, stub_gateway):
    webhook_event = store(payment_succeeded(hot_desk_membership))

    processed = process_webhook_event(webhook_event=webhook_event)

    assert processed.status == WebhookEvent.Status.PROCESSED
    assert processed.attempts == 1
    assert processed.processed_at is not None
    assert processed.error == ""
    assert refreshed(hot_desk_membership).state == State.ACTIVE


def test_process_twice_changes_nothing(hot_desk_membership, stub_gateway):
    webhook_event = store(payment_succeeded(hot_desk_membership))
    first = process_webhook_event(webhook_event=webhook_event)

    again = process_webhook_event(webhook_event=webhook_event)

    assert again.attempts == 1
    assert again.processed_at == first.processed_at
    assert Payment.objects.count() == 1


def test_unknown_type_ignored(db, stub_gateway):
    webhook_event, _created = store_webhook_event(
        gateway="stub",
        event_id="evt_x",
        event_type="customer.updated",
        payload={"id": "evt_x", "type": "customer.updated"},
    )

    processed = process_webhook_event(webhook_event=webhook_event)

    assert processed.status == WebhookEvent.Status.IGNORED
    assert processed.attempts == 1


def test_failure_recorded_and_rolled_back(hot_desk_membership, stub_gateway, monkeypatch):
    def broken_grant(**kwargs):
        raise RuntimeError("ledger unavailable")

    monkeypatch.setattr("billing.services.grant_period_credit", broken_grant)
    webhook_event = store(payment_succeeded(hot_desk_membership))

    failed = process_webhook_event(webhook_event=webhook_event)

    assert failed.status == WebhookEvent.Status.FAILED
    assert failed.attempts == 1
    assert "ledger unavailable" in failed.error
    assert not Invoice.objects.exists()
    assert not Payment.objects.exists()
    assert refreshed(hot_desk_membership).state == State.PENDING


def test_failed_event_processed_again(hot_desk_membership, stub_gateway, monkeypatch):
    monkeypatch.setattr(
        "billing.services.grant_period_credit",
        lambda **kwargs: (_ for _ in ()).throw(RuntimeError("down")),
    )
    webhook_event = store(payment_succeeded(hot_desk_membership))
    process_webhook_event(webhook_event=webhook_event)
    monkeypatch.setattr("billing.services.grant_period_credit", credit.grant_period_credit)

    processed = process_webhook_event(webhook_event=webhook_event)

    assert processed.status == WebhookEvent.Status.PROCESSED
    assert processed.attempts == 2
    assert processed.error == ""
    assert CreditEntry.objects.filter(kind="grant").count() == 1


def test_domain_error_recorded(hot_desk_membership, stub_gateway):
    InvoiceFactory(gateway="stub", gateway_reference="in_other")
    webhook_event = store(payment_succeeded(hot_desk_membership, invoice_reference="in_other"))

    failed = process_webhook_event(webhook_event=webhook_event)

    assert failed.status == WebhookEvent.Status.FAILED
    assert "BillingError" in failed.error


def test_malformed_payload_fails(db, stub_gateway):
    webhook_event, _created = store_webhook_event(
        gateway="stub",
        event_id="evt_bad",
        event_type="PaymentSucceeded",
        payload={"id": "evt_bad", "type": "PaymentSucceeded", "data": {}},
    )

    failed = process_webhook_event(webhook_event=webhook_event)

    assert failed.status == WebhookEvent.Status.FAILED
    assert "TypeError" in failed.error


def test_event_of_other_gateway_fails(hot_desk_membership, stub_gateway):
    webhook_event = store(payment_succeeded(hot_desk_membership))
    WebhookEvent.objects.filter(pk=webhook_event.pk).update(gateway="stripe")
    webhook_event.refresh_from_db()

    failed = process_webhook_event(webhook_event=webhook_event)

    assert failed.status == WebhookEvent.Status.FAILED
    assert "PAYMENT_GATEWAY" in failed.error


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_event_stored_at_once(hot_desk_membership, stub_gateway):
    payload = event_payload(payment_succeeded(hot_desk_membership))

    def deliver():
        webhook_event, _created = store_webhook_event(
            gateway="stub", event_id=payload["id"], event_type=payload["type"], payload=payload
        )
        process_webhook_event(webhook_event=webhook_event)

    errors = run_at_once(4, deliver)

    assert errors == []
    webhook_event = WebhookEvent.objects.get()
    assert webhook_event.status == WebhookEvent.Status.PROCESSED
    assert webhook_event.attempts == 1
    assert Payment.objects.count() == 1
    assert CreditEntry.objects.count() == 1
    assert refreshed(hot_desk_membership).events.filter(to_state=State.ACTIVE).count() == 1


# --- Manual payments -----------------------------------------------------------------------


def manual(membership, actor, **overrides):
    values = {
        "membership": membership,
        "amount": Decimal("250.00"),
        "method": Payment.Method.CHECK,
        "reference": "1001",
        "received_at": datetime.date(2025, 1, 15),
        "actor": actor,
    }
    values.update(overrides)
    return record_manual_payment(**values)


def test_manual_first_payment_activates(hot_desk_membership, staff_user):
    payment = manual(hot_desk_membership, staff_user, note=" paid at the desk ")

    assert refreshed(hot_desk_membership).state == State.ACTIVE
    assert payment.method == Payment.Method.CHECK
    assert payment.recorded_by == staff_user
    assert payment.note == "paid at the desk"
    assert payment.invoice.period_number == 1
    assert payment.invoice.status == Invoice.Status.PAID


def test_manual_payment_grants_credit(hot_desk_membership, staff_user):
    payment = manual(hot_desk_membership, staff_user)

    grant = CreditEntry.objects.get(kind="grant")
    assert grant.invoice == payment.invoice
    assert grant.amount == Decimal("150.00")


def test_manual_date_becomes_noon(hot_desk_membership, staff_user):
    payment = manual(hot_desk_membership, staff_user)

    assert timezone.localtime(payment.received_at) == timezone.make_aware(
        datetime.datetime(2025, 1, 15, 12)
    )


def test_manual_pays_oldest_open_invoice(hot_desk_membership, staff_user):
    apply_gateway_event(event=payment_succeeded(hot_desk_membership), gateway="stub")
    apply_gateway_event(event=payment_failed(hot_desk_membership, number=3), gateway="stub")
    apply_gateway_event(event=payment_failed(hot_desk_membership, number=2), gateway="stub")

    payment = manual(hot_desk_membership, staff_user)

    assert payment.invoice.period_number == 2


def test_manual_older_invoice_keeps_past_due(hot_desk_membership, staff_user):
    apply_gateway_event(event=payment_succeeded(hot_desk_membership), gateway="stub")
    apply_gateway_event(event=payment_failed(hot_desk_membership, number=2), gateway="stub")
    apply_gateway_event(event=payment_failed(hot_desk_membership, number=3), gateway="stub")

    manual(hot_desk_membership, staff_user, reference="1001")
    assert refreshed(hot_desk_membership).state == State.PAST_DUE

    manual(hot_desk_membership, staff_user, reference="1002")
    assert refreshed(hot_desk_membership).state == State.ACTIVE


def test_manual_creates_next_period(hot_desk_membership, staff_user):
    manual(hot_desk_membership, staff_user, reference="1001")

    payment = manual(hot_desk_membership, staff_user, reference="1002")

    assert payment.invoice.period_number == 2
    assert payment.invoice.period_start == datetime.date(2025, 2, 15)


def test_manual_amount_must_match(hot_desk_membership, staff_user):
    with pytest.raises(BillingError) as caught:
        manual(hot_desk_membership, staff_user, amount=Decimal("200.00"))

    assert "$200.00" in str(caught.value)
    assert "$250.00" in str(caught.value)
    assert not Payment.objects.exists()
    assert not Invoice.objects.exists()


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-250.00")])
def test_manual_amount_positive(hot_desk_membership, staff_user, amount):
    with pytest.raises(BillingError, match="more than zero"):
        manual(hot_desk_membership, staff_user, amount=amount)


@pytest.mark.parametrize("method", ["gateway", "bitcoin"])
def test_manual_rejects_method(hot_desk_membership, staff_user, method):
    with pytest.raises(BillingError, match="not a manual payment method"):
        manual(hot_desk_membership, staff_user, method=method)


def test_manual_check_needs_reference(hot_desk_membership, staff_user):
    with pytest.raises(BillingError, match="reference"):
        manual(hot_desk_membership, staff_user, reference=" ")


def test_manual_cash_without_reference(hot_desk_membership, staff_user):
    payment = manual(hot_desk_membership, staff_user, method=Payment.Method.CASH, reference="")

    assert payment.reference == ""


def test_manual_duplicate_reference_rejected(hot_desk_membership, staff_user):
    manual(hot_desk_membership, staff_user)

    with pytest.raises(BillingError, match="already recorded"):
        manual(hot_desk_membership, staff_user)

    assert Payment.objects.count() == 1


def test_manual_future_date_rejected(hot_desk_membership, staff_user):
    with pytest.raises(BillingError, match="future"):
        manual(hot_desk_membership, staff_user, received_at=datetime.date(2025, 1, 16))


def test_manual_today_before_noon(hot_desk_membership, staff_user, time_machine):
    morning = timezone.make_aware(datetime.datetime(2025, 1, 15, 9))
    time_machine.move_to(morning, tick=False)

    payment = manual(hot_desk_membership, staff_user, received_at=datetime.date(2025, 1, 15))

    assert payment.received_at == morning


def test_manual_ended_without_invoice_rejected(hot_desk_membership, staff_user):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(state=State.ENDED)

    with pytest.raises(BillingError, match="nothing to pay"):
        manual(refreshed(hot_desk_membership), staff_user)


# --- Gateway pages ---------------------------------------------------------------------------


def test_start_payment_pending(hot_desk_membership, stub_gateway):
    url = start_membership_payment(
        membership=hot_desk_membership, success_url="https://s", cancel_url="https://c"
    )

    assert url == f"https://pay.example.test/checkout/{hot_desk_membership.pk}"
    assert stub_gateway.calls == [("start_payment", hot_desk_membership.pk)]


def test_start_payment_active_rejected(hot_desk_membership, stub_gateway):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(state=State.ACTIVE)

    with pytest.raises(BillingError, match="Active"):
        start_membership_payment(
            membership=hot_desk_membership, success_url="https://s", cancel_url="https://c"
        )


def test_start_payment_past_due_opens_invoice(hot_desk_membership, stub_gateway):
    apply_gateway_event(event=payment_succeeded(hot_desk_membership), gateway="stub")
    failure = payment_failed(hot_desk_membership, number=2)
    apply_gateway_event(event=failure, gateway="stub")

    url = start_membership_payment(
        membership=hot_desk_membership, success_url="https://s", cancel_url="https://c"
    )

    assert url == failure.hosted_url
    assert stub_gateway.calls == []


def test_start_payment_gateway_error(hot_desk_membership, stub_gateway, monkeypatch):
    def unreachable(**kwargs):
        raise GatewayError("connection refused")

    monkeypatch.setattr(stub_gateway, "start_payment", unreachable)

    with pytest.raises(BillingError, match="could not be opened") as raised:
        start_membership_payment(
            membership=hot_desk_membership, success_url="https://s", cancel_url="https://c"
        )

    # The message shows no gateway internals; the log keeps them.
    assert "connection refused" not in str(raised.value)


def test_self_service_url(hot_desk_membership, stub_gateway):
    member = hot_desk_membership.member

    url = open_billing_self_service(member=member, return_url="https://r")

    assert url == f"https://pay.example.test/portal/{member.pk}"


def test_self_service_gateway_error(hot_desk_membership, stub_gateway, monkeypatch):
    def unreachable(**kwargs):
        raise GatewayError("timed out")

    monkeypatch.setattr(stub_gateway, "open_self_service", unreachable)

    with pytest.raises(BillingError, match="could not be opened") as raised:
        open_billing_self_service(member=hot_desk_membership.member, return_url="https://r")

    assert "timed out" not in str(raised.value)


def test_stuck_event_processed_by_sweep(hot_desk_membership, stub_gateway):
    # Stored and acknowledged, but its task was lost with the broker.
    stuck = store(payment_succeeded(hot_desk_membership))
    fresh = store(payment_succeeded(hot_desk_membership, number=2))
    WebhookEvent.objects.filter(pk=stuck.pk).update(
        received_at=timezone.now() - datetime.timedelta(hours=1)
    )

    swept = process_stuck_webhook_events()

    assert [event.pk for event in swept] == [stuck.pk]
    assert refreshed_event(stuck).status == WebhookEvent.Status.PROCESSED
    assert refreshed_event(fresh).status == WebhookEvent.Status.RECEIVED
    assert Payment.objects.count() == 1


def refreshed_event(event):
    return WebhookEvent.objects.get(pk=event.pk)


def test_manual_reference_ignores_case(hot_desk_membership, staff_user):
    manual(hot_desk_membership, staff_user, reference="CHK1")

    with pytest.raises(BillingError, match="already recorded"):
        manual(hot_desk_membership, staff_user, reference="chk1")

    assert Payment.objects.count() == 1


def test_payment_after_cancellation_grants_no_credit(hot_desk_membership, stub_gateway):
    Membership.objects.filter(pk=hot_desk_membership.pk).update(
        state=Membership.State.CANCELLED, end_date=hot_desk_membership.start_date
    )

    processed = process_webhook_event(webhook_event=store(payment_succeeded(hot_desk_membership)))

    assert processed.status == WebhookEvent.Status.PROCESSED
    assert Payment.objects.count() == 1
    assert not CreditEntry.objects.exists()
