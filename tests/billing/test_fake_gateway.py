"""The fake gateway: its pay and billing pages, its signed webhooks and its event payloads."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from billing.gateways import get_gateway
from billing.gateways.base import (
    CheckoutCompleted,
    GatewayError,
    IgnoredEvent,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionCancelled,
)
from billing.gateways.fake import (
    FakeGateway,
    amount_due,
    checkout_completed_payload,
    payment_failed_payload,
    payment_succeeded_payload,
    sign_body,
    subscription_cancelled_payload,
)
from billing.models import CreditEntry, GatewaySubscription, Invoice, Payment, WebhookEvent
from members.models import Membership
from members.periods import billing_period
from tests.factories import MembershipFactory, MemberWithUserFactory, PlanFactory

pytestmark = pytest.mark.django_db

State = Membership.State
DASHBOARD_URL = reverse("members:portal_dashboard")
SELF_SERVICE_URL = reverse("billing:fake_self_service")
FAIL_RENEWAL_URL = reverse("billing:fake_fail_renewal")
WEBHOOK_URL = reverse("billing:webhook", kwargs={"gateway_name": "fake"})


@pytest.fixture(autouse=True)
def fake_gateway(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.fake.FakeGateway"
    return get_gateway()


@pytest.fixture
def plan():
    return PlanFactory(monthly_price=Decimal("250.00"), included_credit=Decimal("150.00"))


@pytest.fixture
def membership(plan):
    member = MemberWithUserFactory()
    return MembershipFactory(member=member, plan=plan, start_date=timezone.localdate())


@pytest.fixture
def member_client(client, membership):
    client.force_login(membership.member.user)
    return client


def pay_url(membership) -> str:
    return reverse("billing:fake_pay", kwargs={"membership_id": membership.pk})


def make_invoice(membership, number, status) -> Invoice:
    period = billing_period(membership.start_date, number)
    return Invoice.objects.create(
        membership=membership,
        period_number=number,
        period_start=period.start,
        period_end=period.end,
        amount=membership.monthly_price,
        status=status,
    )


# --- Amount due ---------------------------------------------------------------------------


def test_amount_due_first_period(membership):
    due = amount_due(membership)
    assert due.period == billing_period(membership.start_date, 1)
    assert due.amount == Decimal("250.00")


def test_amount_due_after_paid_period(membership):
    make_invoice(membership, 1, Invoice.Status.PAID)
    assert amount_due(membership).period.number == 2


def test_amount_due_oldest_open_invoice(membership):
    make_invoice(membership, 1, Invoice.Status.PAID)
    make_invoice(membership, 2, Invoice.Status.OPEN)
    make_invoice(membership, 3, Invoice.Status.OPEN)
    due = amount_due(membership)
    assert due.period.number == 2
    assert due.is_open_invoice


def test_amount_due_skips_void_invoice(membership):
    make_invoice(membership, 1, Invoice.Status.VOID)
    assert amount_due(membership).period.number == 1


# --- Adapter ------------------------------------------------------------------------------


def test_start_payment_returns_pay_page(membership, fake_gateway):
    redirect = fake_gateway.start_payment(
        membership=membership, success_url="http://127.0.0.1:8000/portal/", cancel_url=""
    )
    assert redirect.url.startswith(pay_url(membership) + "?next=")


def test_self_service_returns_billing_page(membership, fake_gateway):
    redirect = fake_gateway.open_self_service(member=membership.member, return_url="/portal/")
    assert redirect.url == f"{SELF_SERVICE_URL}?next=%2Fportal%2F"


def test_ensure_customer_deterministic(membership, fake_gateway):
    reference = fake_gateway.ensure_customer(member=membership.member)
    assert reference.reference == f"fake_cus_{membership.member.pk}"


def test_schedule_cancellation_only_logs(membership, fake_gateway, caplog):
    fake_gateway.schedule_cancellation(membership=membership, at=membership.commitment_end)
    assert f"membership {membership.pk}" in caplog.text


# --- Payloads -----------------------------------------------------------------------------


def normalized(payload):
    # Through JSON, as the payload is stored, so no Python object survives by accident.
    return FakeGateway().normalize_event(payload=json.loads(json.dumps(payload)))


def test_checkout_payload_normalised(membership):
    event = normalized(checkout_completed_payload(membership))
    assert isinstance(event, CheckoutCompleted)
    assert event.membership_id == membership.pk
    assert event.subscription_reference == f"fake_sub_{membership.pk}"


def test_payment_payload_normalised(membership):
    event = normalized(payment_succeeded_payload(membership, amount_due(membership)))
    assert isinstance(event, PaymentSucceeded)
    assert event.amount == Decimal("250.00")
    assert event.period_start == membership.start_date
    assert event.invoice_reference == f"fake_in_{membership.pk}_1"


def test_failure_payload_normalised(membership):
    payload = payment_failed_payload(membership, amount_due(membership), "declined")
    event = normalized(payload)
    assert isinstance(event, PaymentFailed)
    assert event.failure_message == "declined"


def test_cancellation_payload_normalised(membership):
    ended_at = timezone.now()
    event = normalized(subscription_cancelled_payload(membership, ended_at))
    assert isinstance(event, SubscriptionCancelled)
    assert event.ended_at == ended_at


def test_unknown_fake_type_ignored():
    payload = {"id": "fake_evt_x", "type": "card.expiring", "created": timezone.now().isoformat()}
    assert isinstance(normalized(payload), IgnoredEvent)


def test_fractional_cent_amount_rejected(membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    payload["data"]["amount"] = "250.001"
    with pytest.raises(GatewayError, match="data.amount"):
        normalized(payload)


def test_missing_field_rejected(membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    del payload["data"]["period_end"]
    with pytest.raises(GatewayError, match="data.period_end"):
        normalized(payload)


def test_naive_time_rejected(membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    payload["data"]["paid_at"] = "2026-01-15T10:00:00"
    with pytest.raises(GatewayError, match="data.paid_at"):
        normalized(payload)


# --- Pay page -----------------------------------------------------------------------------


def test_pay_page_shows_amount(member_client, membership):
    response = member_client.get(pay_url(membership))
    assert response.status_code == 200
    assert "Pay $250.00" in response.text


def test_pay_page_shows_period(member_client, membership):
    response = member_client.get(pay_url(membership))
    period = billing_period(membership.start_date, 1)
    assert response.context["due"].period == period


def test_pay_page_shows_last_day(member_client, membership):
    period = billing_period(membership.start_date, 1)

    response = member_client.get(pay_url(membership))

    start = date_format(period.start, "DATE_FORMAT")
    last_day = date_format(period.end - datetime.timedelta(days=1), "DATE_FORMAT")
    assert f"From {start} to {last_day}" in response.text
    assert date_format(period.end, "DATE_FORMAT") not in response.text


def test_self_service_shows_last_day(member_client, membership):
    invoice = make_invoice(membership, 1, Invoice.Status.PAID)

    response = member_client.get(SELF_SERVICE_URL)

    start = date_format(invoice.period_start, "DATE_FORMAT")
    last_day = date_format(invoice.period_end - datetime.timedelta(days=1), "DATE_FORMAT")
    assert f"{start} to {last_day}" in response.text
    assert date_format(invoice.period_end, "DATE_FORMAT") not in response.text


def test_pay_page_constant_queries(member_client, membership):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert member_client.get(pay_url(membership)).status_code == 200
        return len(queries)

    for number in range(1, 4):
        make_invoice(membership, number, Invoice.Status.PAID)
    few = count_queries()
    for number in range(4, 40):
        make_invoice(membership, number, Invoice.Status.PAID)
    assert count_queries() == few


def test_pay_page_of_other_member_not_found(client, membership, plan):
    stranger = MemberWithUserFactory()
    client.force_login(stranger.user)
    assert client.get(pay_url(membership)).status_code == 404


def test_pay_post_of_other_member_changes_nothing(client, membership):
    stranger = MemberWithUserFactory()
    client.force_login(stranger.user)
    assert client.post(pay_url(membership)).status_code == 404
    assert WebhookEvent.objects.count() == 0


def test_pay_page_anonymous_redirects_to_sign_in(client, membership):
    response = client.get(pay_url(membership))
    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_pay_page_missing_with_stripe(member_client, membership, settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    assert member_client.get(pay_url(membership)).status_code == 404


def test_pay_page_of_ended_membership_not_found(member_client, membership):
    Membership.objects.filter(pk=membership.pk).update(state=State.CANCELLED)
    assert member_client.get(pay_url(membership)).status_code == 404


def test_paying_activates_membership(member_client, membership):
    member_client.post(pay_url(membership))
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE


def test_paying_marks_invoice_paid(member_client, membership):
    member_client.post(pay_url(membership))
    invoice = Invoice.objects.get(membership=membership)
    assert (invoice.status, invoice.amount, invoice.period_number) == (
        Invoice.Status.PAID,
        Decimal("250.00"),
        1,
    )


def test_paying_grants_credit(member_client, membership):
    member_client.post(pay_url(membership))
    grant = CreditEntry.objects.get(member=membership.member)
    assert grant.amount == Decimal("150.00")
    assert grant.expires_on == billing_period(membership.start_date, 1).end


def test_paying_stores_subscription(member_client, membership):
    member_client.post(pay_url(membership))
    subscription = GatewaySubscription.objects.get(membership=membership)
    assert (subscription.gateway, subscription.reference) == ("fake", f"fake_sub_{membership.pk}")


def test_paying_goes_through_stored_events(member_client, membership):
    member_client.post(pay_url(membership))
    events = WebhookEvent.objects.order_by("id")
    assert [event.event_type for event in events] == ["checkout.completed", "payment.succeeded"]
    assert {event.status for event in events} == {WebhookEvent.Status.PROCESSED}


def test_paying_twice_pays_once(member_client, membership):
    member_client.post(pay_url(membership))
    Invoice.objects.filter(membership=membership).update(status=Invoice.Status.OPEN)
    member_client.post(pay_url(membership))
    assert Payment.objects.count() == 1


def test_paying_redirects_to_next(member_client, membership):
    response = member_client.post(pay_url(membership), {"next": "/portal/profile/"})
    assert response["Location"] == "/portal/profile/"


def test_paying_ignores_foreign_next(member_client, membership):
    response = member_client.post(pay_url(membership), {"next": "https://evil.example/"})
    assert response["Location"] == DASHBOARD_URL


def test_paying_shows_message(member_client, membership):
    response = member_client.post(pay_url(membership), follow=True)
    assert "Payment of $250.00 received" in response.text


# --- Billing page and a failed renewal ----------------------------------------------------


def test_billing_page_lists_invoices(member_client, membership):
    make_invoice(membership, 1, Invoice.Status.PAID)
    response = member_client.get(SELF_SERVICE_URL)
    assert response.status_code == 200
    assert [invoice.period_number for invoice in response.context["invoices"]] == [1]


def test_billing_page_hides_other_members_invoices(member_client, membership, plan):
    other = MembershipFactory(plan=plan)
    make_invoice(other, 1, Invoice.Status.PAID)
    response = member_client.get(SELF_SERVICE_URL)
    assert response.context["invoices"] == []


def test_billing_page_constant_queries(member_client, membership):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert member_client.get(SELF_SERVICE_URL).status_code == 200
        return len(queries)

    for number in range(1, 4):
        make_invoice(membership, number, Invoice.Status.PAID)
    few = count_queries()
    for number in range(4, 40):
        make_invoice(membership, number, Invoice.Status.PAID)
    assert count_queries() == few


def test_billing_page_offers_pay_now_for_open_invoice(member_client, membership):
    make_invoice(membership, 1, Invoice.Status.OPEN)
    response = member_client.get(SELF_SERVICE_URL)
    assert pay_url(membership) in response.text


def active_paid(membership) -> Membership:
    make_invoice(membership, 1, Invoice.Status.PAID)
    Membership.objects.filter(pk=membership.pk).update(state=State.ACTIVE)
    membership.refresh_from_db()
    return membership


def test_failed_renewal_marks_past_due(member_client, membership):
    active_paid(membership)
    member_client.post(FAIL_RENEWAL_URL)
    membership.refresh_from_db()
    assert membership.state == State.PAST_DUE


def test_failed_renewal_opens_next_invoice(member_client, membership):
    active_paid(membership)
    member_client.post(FAIL_RENEWAL_URL)
    invoice = Invoice.objects.get(membership=membership, period_number=2)
    assert invoice.status == Invoice.Status.OPEN


def test_failed_renewal_needs_active_membership(member_client, membership):
    response = member_client.post(FAIL_RENEWAL_URL)
    assert response.status_code == 302
    assert WebhookEvent.objects.count() == 0


def test_failed_renewal_button_only_when_active(member_client, membership):
    response = member_client.get(SELF_SERVICE_URL)
    assert "Simulate a failed renewal" not in response.text


def test_paying_open_invoice_reinstates(member_client, membership):
    active_paid(membership)
    member_client.post(FAIL_RENEWAL_URL)
    member_client.post(pay_url(membership))
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert Invoice.objects.get(membership=membership, period_number=2).status == "paid"


# --- Portal buttons -----------------------------------------------------------------------


def test_pay_button_sends_pending_member_to_pay_page(member_client, membership):
    response = member_client.post(reverse("billing:pay"))
    assert response.status_code == 302
    assert response["Location"].startswith(pay_url(membership))


def test_pay_button_active_member_has_nothing_to_pay(member_client, membership):
    active_paid(membership)
    response = member_client.post(reverse("billing:pay"))
    assert response["Location"] == DASHBOARD_URL


def test_pay_button_needs_post(member_client, membership):
    assert member_client.get(reverse("billing:pay")).status_code == 405


def test_manage_button_opens_billing_page(member_client, membership):
    response = member_client.post(reverse("billing:manage"))
    assert response["Location"].startswith(SELF_SERVICE_URL)


# --- Webhooks of the fake gateway ---------------------------------------------------------


def post_fake(client, payload: dict, signature: str | None = None):
    body = json.dumps(payload).encode()
    headers = {"X-Fake-Signature": sign_body(body) if signature is None else signature}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)


def test_signed_fake_webhook_processed(client, membership):
    response = post_fake(client, payment_succeeded_payload(membership, amount_due(membership)))
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE


def test_fake_webhook_wrong_signature_rejected(client, membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    response = post_fake(client, payload, signature="0" * 64)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_fake_webhook_missing_signature_rejected(client, membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    response = post_fake(client, payload, signature="")
    assert response.status_code == 400


def test_fake_webhook_replay_processed_once(client, membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    post_fake(client, payload)
    replay = post_fake(client, payload)
    assert replay.status_code == 200
    assert Payment.objects.count() == 1
    assert WebhookEvent.objects.get().attempts == 1


def test_fake_webhook_paid_at_kept(client, membership):
    payload = payment_succeeded_payload(membership, amount_due(membership))
    paid_at = datetime.datetime(2026, 1, 15, 14, 0, tzinfo=datetime.UTC)
    payload["data"]["paid_at"] = paid_at.isoformat()
    post_fake(client, payload)
    assert Payment.objects.get().received_at == paid_at


@pytest.mark.django_db
def test_active_member_cannot_prepay(member_client, membership):
    make_invoice(membership, 1, Invoice.Status.PAID)
    Membership.objects.filter(pk=membership.pk).update(state=Membership.State.ACTIVE)

    response = member_client.post(pay_url(membership))

    assert response.status_code == 302
    assert response["Location"] == reverse("members:portal_dashboard")
    assert Invoice.objects.filter(membership=membership).count() == 1
