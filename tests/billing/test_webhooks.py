"""The webhook endpoint with Stripe's real signing scheme: verify, store by id, process once."""

import datetime
import logging
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError

from billing import tasks
from billing.models import CreditEntry, GatewaySubscription, Invoice, Payment, WebhookEvent
from members.models import Membership, MembershipEvent
from members.periods import billing_period
from tests.billing import stripe_events
from tests.billing.stripe_events import (
    API_BASE,
    SECRET_KEY,
    WEBHOOK_SECRET,
    deliver,
    encode,
    load,
    signature_header,
)
from tests.factories import MembershipFactory, PlanFactory

State = Membership.State
URL = "/billing/webhooks/stripe/"


@pytest.fixture
def stripe_settings(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    settings.STRIPE_WEBHOOK_TOLERANCE = 300
    return settings


@pytest.fixture
def membership(db):
    plan = PlanFactory(monthly_price=Decimal("250.00"), included_credit=Decimal("150.00"))
    return MembershipFactory(plan=plan, start_date=timezone.localdate())


def paid_payload(membership, **overrides) -> dict:
    period = billing_period(membership.start_date, 1)
    values = {
        "membership_id": membership.pk,
        "period_start": period.start,
        "period_end": period.end,
        "event_id": "evt_invoice_paid_1",
        "invoice_id": f"in_first_{membership.pk}",
    }
    values.update(overrides)
    return stripe_events.invoice_event(**values)


def checkout_payload(membership, **overrides) -> dict:
    return stripe_events.checkout_session_completed(membership_id=membership.pk, **overrides)


def post_signed(client, body: bytes, header: str | None):
    headers = {"Stripe-Signature": header} if header is not None else {}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


# --- Signatures ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_valid_signature_processed(client, stripe_settings, membership):
    response = deliver(client, paid_payload(membership))
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE


@pytest.mark.django_db
def test_valid_signature_stores_event(client, stripe_settings, membership):
    deliver(client, paid_payload(membership))
    event = WebhookEvent.objects.get()
    assert (event.gateway, event.event_id, event.event_type) == (
        "stripe",
        "evt_invoice_paid_1",
        "invoice.paid",
    )
    assert event.status == WebhookEvent.Status.PROCESSED


@pytest.mark.django_db
def test_tampered_body_rejected(client, stripe_settings, membership):
    body = encode(paid_payload(membership))
    header = signature_header(body)
    tampered = body.replace(b'"amount_paid": 25000', b'"amount_paid": 1')
    assert tampered != body

    response = post_signed(client, tampered, header)

    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_tampered_body_changes_nothing(client, stripe_settings, membership):
    body = encode(paid_payload(membership))
    header = signature_header(body)
    post_signed(client, body.replace(b"25000", b"1"), header)
    membership.refresh_from_db()
    assert membership.state == State.PENDING


@pytest.mark.django_db
def test_rejection_logged_without_secret(client, stripe_settings, membership, caplog):
    body = encode(paid_payload(membership))
    with caplog.at_level(logging.WARNING, logger="billing"):
        post_signed(client, body + b" ", signature_header(body))
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings
    assert all(WEBHOOK_SECRET not in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_expired_timestamp_rejected(client, stripe_settings, membership):
    body = encode(paid_payload(membership))
    old = int(time.time()) - stripe_settings.STRIPE_WEBHOOK_TOLERANCE - 10
    response = post_signed(client, body, signature_header(body, timestamp=old))
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_timestamp_within_tolerance_accepted(client, stripe_settings, membership):
    body = encode(paid_payload(membership))
    recent = int(time.time()) - stripe_settings.STRIPE_WEBHOOK_TOLERANCE + 30
    response = post_signed(client, body, signature_header(body, timestamp=recent))
    assert response.status_code == 200


@pytest.mark.django_db
def test_missing_signature_rejected(client, stripe_settings, membership):
    response = post_signed(client, encode(paid_payload(membership)), None)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_wrong_secret_rejected(client, stripe_settings, membership):
    body = encode(paid_payload(membership))
    header = signature_header(body, secret="whsec_someone_elses_secret")
    response = post_signed(client, body, header)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_garbled_signature_header_rejected(client, stripe_settings, membership):
    response = post_signed(client, encode(paid_payload(membership)), "v1=,t=yesterday")
    assert response.status_code == 400


@pytest.mark.django_db
def test_malformed_json_rejected(client, stripe_settings):
    body = b'{"id": "evt_broken", "type": '
    response = post_signed(client, body, signature_header(body))
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_json_without_event_id_rejected(client, stripe_settings):
    body = encode({"type": "invoice.paid", "data": {}})
    response = post_signed(client, body, signature_header(body))
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_other_gateway_name_not_found(client, stripe_settings):
    body = encode(load("customer_updated"))
    response = client.post("/billing/webhooks/fake/", data=body, content_type="application/json")
    assert response.status_code == 404


@pytest.mark.django_db
def test_get_not_allowed(client, stripe_settings):
    assert client.get(URL).status_code == 405


# --- Storage and processing ---------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_type_stored_as_ignored(client, stripe_settings):
    response = deliver(client, load("customer_updated"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.IGNORED
    assert event.event_type == "customer.updated"


@pytest.mark.django_db
def test_same_event_twice_processed_once(client, stripe_settings, membership):
    payload = paid_payload(membership)
    first = deliver(client, payload)
    second = deliver(client, payload)

    assert (first.status_code, second.status_code) == (200, 200)
    assert WebhookEvent.objects.get().attempts == 1
    assert Payment.objects.count() == 1
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.GRANT).count() == 1
    assert MembershipEvent.objects.filter(to_state=State.ACTIVE).count() == 1


@pytest.mark.django_db
def test_event_stored_before_processing(client, stripe_settings, membership, monkeypatch):
    seen = []

    def record(webhook_event_id):
        seen.append(WebhookEvent.objects.get(pk=webhook_event_id).status)

    monkeypatch.setattr(tasks.process_webhook_event, "delay", record)
    deliver(client, paid_payload(membership))
    assert seen == [WebhookEvent.Status.RECEIVED]


@pytest.mark.django_db
def test_unqueued_event_answered_503(client, stripe_settings, membership, monkeypatch):
    def broker_down(webhook_event_id):
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(tasks.process_webhook_event, "delay", broker_down)
    response = deliver(client, paid_payload(membership))
    assert response.status_code == 503
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.RECEIVED


@pytest.mark.django_db
def test_redelivery_processes_unqueued_event(client, stripe_settings, membership, monkeypatch):
    payload = paid_payload(membership)
    with monkeypatch.context() as patch:
        patch.setattr(
            tasks.process_webhook_event,
            "delay",
            lambda pk: (_ for _ in ()).throw(OperationalError("broker unreachable")),
        )
        deliver(client, payload)

    response = deliver(client, payload)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED


@pytest.mark.django_db
def test_redelivery_retries_failed_event(client, stripe_settings, membership):
    payload = paid_payload(membership, membership_id=membership.pk + 1000)
    deliver(client, payload)
    deliver(client, payload)
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED
    assert event.attempts == 2


# --- Order of deliveries ------------------------------------------------------------------


def final_state(membership) -> dict:
    membership.refresh_from_db()
    invoice = Invoice.objects.get(membership=membership)
    return {
        "state": membership.state,
        "invoice": (invoice.status, invoice.amount, invoice.gateway_reference),
        "payments": Payment.objects.filter(membership=membership).count(),
        "credit": [
            (entry.kind, entry.amount)
            for entry in CreditEntry.objects.filter(member=membership.member)
        ],
        "subscription": GatewaySubscription.objects.get(membership=membership).reference,
        "activations": MembershipEvent.objects.filter(
            membership=membership, to_state=State.ACTIVE
        ).count(),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("invoice_first", [False, True], ids=["in_order", "invoice_first"])
def test_delivery_order_same_outcome(client, stripe_settings, membership, invoice_first):
    deliveries = [checkout_payload(membership), paid_payload(membership)]
    if invoice_first:
        deliveries.reverse()
    for payload in deliveries:
        assert deliver(client, payload).status_code == 200

    assert final_state(membership) == {
        "state": State.ACTIVE,
        "invoice": (Invoice.Status.PAID, Decimal("250.00"), f"in_first_{membership.pk}"),
        "payments": 1,
        "credit": [(CreditEntry.Kind.GRANT, Decimal("150.00"))],
        "subscription": "sub_1QxHotDeskSubscription1",
        "activations": 1,
    }


@pytest.mark.django_db
def test_stale_failure_after_payment_keeps_active(client, stripe_settings, membership):
    period = billing_period(membership.start_date, 1)
    failed = stripe_events.invoice_event(
        "invoice_payment_failed",
        membership_id=membership.pk,
        period_start=period.start,
        period_end=period.end,
        event_id="evt_failed_first",
        invoice_id=f"in_first_{membership.pk}",
    )
    deliver(client, paid_payload(membership))
    deliver(client, failed)
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE


def use_project_celery_app():
    """Make the project's (eager) Celery app current in a new thread.

    A new thread resolves tasks through Celery's default app, which a test that starts
    a worker on its own app can leave pointing at that app.
    """
    from cpr_portal.celery import app

    app.set_current()


# --- Concurrent deliveries (PostgreSQL) ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_event_at_once_processed_once(stripe_settings, membership):
    from django.test import Client

    body = encode(paid_payload(membership))
    header = signature_header(body)
    threads_count = 6
    barrier = threading.Barrier(threads_count)
    statuses = []

    def deliver_at_once():
        try:
            use_project_celery_app()
            barrier.wait(timeout=10)
            response = Client().post(
                URL,
                data=body,
                content_type="application/json",
                headers={"Stripe-Signature": header},
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_at_once) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [200] * threads_count
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Payment.objects.count() == 1
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.GRANT).count() == 1
    assert MembershipEvent.objects.filter(to_state=State.ACTIVE).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checkout_and_invoice_at_once(stripe_settings, membership):
    from django.test import Client

    bodies = [encode(checkout_payload(membership)), encode(paid_payload(membership))]
    barrier = threading.Barrier(len(bodies))
    statuses = []

    def deliver_at_once(body):
        try:
            use_project_celery_app()
            barrier.wait(timeout=10)
            response = Client().post(
                URL,
                data=body,
                content_type="application/json",
                headers={"Stripe-Signature": signature_header(body)},
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_at_once, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [200, 200]
    outcome = final_state(membership)
    assert outcome["state"] == State.ACTIVE
    assert outcome["payments"] == 1
    assert outcome["activations"] == 1


def test_signature_helper_matches_stripe_python():
    """The tests' own signer agrees with stripe-python, so both check the same scheme."""
    import stripe

    body = encode({"id": "evt_1", "type": "customer.updated"})
    timestamp = int(datetime.datetime(2026, 1, 15, tzinfo=datetime.UTC).timestamp())
    expected = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=timestamp
    )
    assert signature_header(body, timestamp=timestamp) == expected


# --- Amounts the portal does not expect ----------------------------------------------------


def assert_failed_nothing_applied(membership, text):
    event = WebhookEvent.objects.get()
    membership.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED
    assert text in event.error
    assert membership.state == State.PENDING
    assert not CreditEntry.objects.exists()


@pytest.mark.django_db
def test_underpaid_invoice_fails(client, stripe_settings, membership):
    response = deliver(client, paid_payload(membership, amount_cents=100))

    assert response.status_code == 200
    assert_failed_nothing_applied(membership, "$250.00 is due")


@pytest.mark.django_db
def test_other_currency_fails(client, stripe_settings, membership):
    payload = paid_payload(membership)
    payload["data"]["object"]["currency"] = "eur"

    deliver(client, payload)

    assert_failed_nothing_applied(membership, "EUR")


@pytest.mark.django_db
@pytest.mark.parametrize("cents", [25000.5, -25000, 10**15])
def test_malformed_amount_fails(client, stripe_settings, membership, cents):
    payload = paid_payload(membership)
    payload["data"]["object"]["amount_paid"] = cents

    deliver(client, payload)

    assert_failed_nothing_applied(membership, "whole number of cents")


@pytest.mark.django_db
def test_unknown_type_without_created_ignored(client, stripe_settings):
    payload = load("customer_updated")
    del payload["created"]

    response = deliver(client, payload)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
