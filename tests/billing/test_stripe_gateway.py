"""The Stripe adapter at its HTTP boundary, and its reading of Stripe's event payloads.

stripe-python's RequestsClient is left in place and `responses` returns recorded
responses to it, so each test reads the exact form-encoded body and headers that would go
to Stripe.
"""

import datetime
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
import responses
from django.utils import timezone

from billing.checks import check_payment_gateway
from billing.gateways import get_gateway
from billing.gateways.base import (
    CheckoutCompleted,
    GatewayError,
    IgnoredEvent,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionCancelled,
    WebhookVerificationError,
)
from billing.gateways.stripe import StripeGateway
from billing.gateways.stripe_payloads import from_cents, local_date, to_cents
from billing.models import GatewayCustomer, GatewaySubscription, Invoice
from tests.billing import stripe_events
from tests.billing.stripe_events import API_BASE, SECRET_KEY, WEBHOOK_SECRET, day_start, load
from tests.factories import MembershipFactory, PlanFactory

pytestmark = pytest.mark.django_db

CUSTOMERS_URL = f"{API_BASE}/v1/customers"
CHECKOUT_URL = f"{API_BASE}/v1/checkout/sessions"
PORTAL_SESSIONS_URL = f"{API_BASE}/v1/billing_portal/sessions"
PORTAL_CONFIGURATIONS_URL = f"{API_BASE}/v1/billing_portal/configurations"
RETURN_URL = "http://127.0.0.1:8000/portal/"


@pytest.fixture
def gateway(settings) -> StripeGateway:
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    settings.STRIPE_PORTAL_CONFIGURATION_ID = ""
    gateway = get_gateway()
    gateway._portal_configurations.clear()
    return gateway


@pytest.fixture
def stripe_api():
    """Mock Stripe's HTTP API. An unregistered request or an unused response fails the test."""
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def membership():
    plan = PlanFactory(name="Hot Desk", monthly_price=Decimal("250.00"))
    return MembershipFactory(
        plan=plan,
        start_date=timezone.localdate() + datetime.timedelta(days=10),
        member__first_name="Ana",
        member__last_name="Rivera",
    )


def form(call) -> dict[str, str]:
    """Decode a recorded request's form body into {"a[b][c]": "value"}."""
    parsed = parse_qs(call.request.body, keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def add(stripe_api, method, url, fixture, **overrides):
    body = load(fixture)
    body.update(overrides)
    stripe_api.add(method, url, json=body)


# --- Conversions --------------------------------------------------------------------------


def test_to_cents_whole_dollars():
    assert to_cents(Decimal("250.00")) == 25000


def test_to_cents_returns_int():
    assert type(to_cents(Decimal("199.99"))) is int


def test_to_cents_rejects_fraction_of_cent():
    with pytest.raises(GatewayError, match="250.005"):
        to_cents(Decimal("250.005"))


def test_from_cents_two_places():
    assert str(from_cents(15000)) == "150.00"


def test_local_date_uses_puerto_rico_time():
    # 02:00 UTC on 1 February is 22:00 on 31 January in San Juan (UTC-4).
    timestamp = int(datetime.datetime(2026, 2, 1, 2, 0, tzinfo=datetime.UTC).timestamp())
    assert local_date(timestamp) == datetime.date(2026, 1, 31)


# --- Configuration ------------------------------------------------------------------------


def test_missing_secrets_are_startup_errors(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    errors = check_payment_gateway(None)
    assert [error.id for error in errors] == ["billing.E002", "billing.E002"]
    assert "STRIPE_SECRET_KEY" in errors[0].msg
    assert "STRIPE_WEBHOOK_SECRET" in errors[1].msg


def test_configured_secrets_pass_check(gateway):
    assert check_payment_gateway(None) == []


def test_empty_webhook_secret_rejects_every_webhook(gateway, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = stripe_events.encode(load("customer_updated"))
    header = stripe_events.signature_header(body, secret="")
    with pytest.raises(WebhookVerificationError, match="STRIPE_WEBHOOK_SECRET"):
        gateway.verify_webhook(body=body, headers={"Stripe-Signature": header})


# --- Customers ----------------------------------------------------------------------------


def test_ensure_customer_creates_customer(gateway, stripe_api, membership):
    add(stripe_api, "POST", CUSTOMERS_URL, "api_customer")
    member = membership.member

    reference = gateway.ensure_customer(member=member)

    assert reference.reference == "cus_RhotdeskMember01"
    body = form(stripe_api.calls[0])
    assert body["metadata[member_id]"] == str(member.pk)
    assert body["email"] == member.email
    assert body["name"] == "Ana Rivera"


def test_ensure_customer_sends_idempotency_key(gateway, stripe_api, membership):
    add(stripe_api, "POST", CUSTOMERS_URL, "api_customer")
    gateway.ensure_customer(member=membership.member)
    headers = stripe_api.calls[0].request.headers
    assert headers["Idempotency-Key"] == f"cpr-customer-{membership.member.pk}"


def test_requests_use_secret_key(gateway, stripe_api, membership):
    add(stripe_api, "POST", CUSTOMERS_URL, "api_customer")
    gateway.ensure_customer(member=membership.member)
    assert stripe_api.calls[0].request.headers["Authorization"] == f"Bearer {SECRET_KEY}"


def test_ensure_customer_reuses_stored_customer(gateway, stripe_api, membership):
    GatewayCustomer.objects.create(
        member=membership.member, gateway="stripe", reference="cus_Stored000001"
    )
    reference = gateway.ensure_customer(member=membership.member)
    assert reference.reference == "cus_Stored000001"
    assert len(stripe_api.calls) == 0


def test_stripe_error_becomes_gateway_error(gateway, stripe_api, membership):
    stripe_api.add("POST", CUSTOMERS_URL, json=load("api_error_invalid_request"), status=404)
    with pytest.raises(GatewayError) as raised:
        gateway.ensure_customer(member=membership.member)
    assert "resource_missing" in str(raised.value)
    assert SECRET_KEY not in str(raised.value)


# --- Checkout -----------------------------------------------------------------------------


def start_checkout(gateway, stripe_api, membership) -> tuple[str, dict, dict]:
    add(stripe_api, "POST", CUSTOMERS_URL, "api_customer")
    add(stripe_api, "POST", CHECKOUT_URL, "api_checkout_session")
    redirect = gateway.start_payment(
        membership=membership, success_url=RETURN_URL, cancel_url=RETURN_URL + "?cancelled=1"
    )
    return redirect.url, form(stripe_api.calls[1]), stripe_api.calls[1].request.headers


def test_checkout_returns_session_url(gateway, stripe_api, membership):
    url, _, _ = start_checkout(gateway, stripe_api, membership)
    assert url == "https://checkout.stripe.com/c/pay/cs_test_a1Hot0Desk0Checkout0Session0001"


def test_checkout_subscription_mode(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["mode"] == "subscription"


def test_checkout_ties_session_to_membership(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["client_reference_id"] == str(membership.pk)
    assert body["metadata[membership_id]"] == str(membership.pk)
    assert body["subscription_data[metadata][membership_id]"] == str(membership.pk)


def test_checkout_uses_created_customer(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["customer"] == "cus_RhotdeskMember01"


def test_checkout_amount_in_integer_cents(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["line_items[0][price_data][unit_amount]"] == "25000"
    assert body["line_items[0][price_data][currency]"] == "usd"
    assert body["line_items[0][price_data][recurring][interval]"] == "month"
    assert body["line_items[0][quantity]"] == "1"


def test_checkout_without_proration(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["subscription_data[proration_behavior]"] == "none"


def test_checkout_anchors_future_start_date(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    expected = day_start(membership.start_date)
    assert body["subscription_data[billing_cycle_anchor]"] == str(expected)


def test_checkout_anchor_is_local_midnight(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    anchor = int(body["subscription_data[billing_cycle_anchor]"])
    moment = datetime.datetime.fromtimestamp(anchor, datetime.UTC)
    # Midnight in San Juan (UTC-4, no daylight saving time) is 04:00 UTC.
    assert (moment.hour, moment.minute) == (4, 0)


def test_checkout_starting_today_bills_now(gateway, stripe_api, membership):
    membership.start_date = timezone.localdate()
    membership.save(update_fields=["start_date"])
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert "subscription_data[billing_cycle_anchor]" not in body


def test_checkout_sends_idempotency_key(gateway, stripe_api, membership):
    _, _, headers = start_checkout(gateway, stripe_api, membership)
    anchor = day_start(membership.start_date)
    assert headers["Idempotency-Key"] == f"cpr-checkout-{membership.pk}-1-{anchor}"


def test_checkout_every_create_has_idempotency_key(gateway, stripe_api, membership):
    start_checkout(gateway, stripe_api, membership)
    keys = [call.request.headers.get("Idempotency-Key") for call in stripe_api.calls]
    assert len(keys) == 2
    assert all(keys)


def test_checkout_return_urls(gateway, stripe_api, membership):
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["success_url"] == RETURN_URL
    assert body["cancel_url"] == RETURN_URL + "?cancelled=1"


def test_checkout_uses_plan_stripe_price(gateway, stripe_api, membership):
    membership.plan.stripe_price_id = "price_1QxHotDeskMonthly01"
    membership.plan.save(update_fields=["stripe_price_id"])
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert body["line_items[0][price]"] == "price_1QxHotDeskMonthly01"
    assert "line_items[0][price_data][unit_amount]" not in body


def test_checkout_keeps_signed_price(gateway, stripe_api, membership):
    membership.plan.stripe_price_id = "price_1QxHotDeskMonthly01"
    membership.plan.monthly_price = Decimal("275.00")
    membership.plan.save(update_fields=["stripe_price_id", "monthly_price"])
    membership.monthly_price = Decimal("249.99")
    membership.save(update_fields=["monthly_price"])
    _, body, _ = start_checkout(gateway, stripe_api, membership)
    assert "line_items[0][price]" not in body
    assert body["line_items[0][price_data][unit_amount]"] == "24999"


def test_open_invoice_sends_member_to_invoice_page(gateway, stripe_api, membership):
    Invoice.objects.create(
        membership=membership,
        period_number=1,
        period_start=membership.start_date,
        period_end=membership.start_date + datetime.timedelta(days=31),
        amount=Decimal("250.00"),
        gateway="stripe",
        gateway_reference="in_1QxRenewalInvoice00002",
        hosted_url="https://invoice.stripe.com/i/acct_1Qx0CodePuertoRico/test_open",
    )
    redirect = gateway.start_payment(
        membership=membership, success_url=RETURN_URL, cancel_url=RETURN_URL
    )
    assert redirect.url == "https://invoice.stripe.com/i/acct_1Qx0CodePuertoRico/test_open"
    assert len(stripe_api.calls) == 0


def test_existing_subscription_opens_portal(gateway, stripe_api, membership, settings):
    settings.STRIPE_PORTAL_CONFIGURATION_ID = "bpc_1QxNoSelfCancel0000001"
    GatewayCustomer.objects.create(
        member=membership.member, gateway="stripe", reference="cus_RhotdeskMember01"
    )
    GatewaySubscription.objects.create(
        membership=membership, gateway="stripe", reference="sub_1QxHotDeskSubscription1"
    )
    add(stripe_api, "POST", PORTAL_SESSIONS_URL, "api_billing_portal_session")
    redirect = gateway.start_payment(
        membership=membership, success_url=RETURN_URL, cancel_url=RETURN_URL
    )
    assert redirect.url.startswith("https://billing.stripe.com/p/session/")
    assert [call.request.url for call in stripe_api.calls] == [PORTAL_SESSIONS_URL]


# --- Customer Portal ----------------------------------------------------------------------


@pytest.fixture
def stored_customer(membership):
    return GatewayCustomer.objects.create(
        member=membership.member, gateway="stripe", reference="cus_RhotdeskMember01"
    )


def test_portal_session_uses_configured_portal(gateway, stripe_api, stored_customer, settings):
    settings.STRIPE_PORTAL_CONFIGURATION_ID = "bpc_1QxConfigured00000001"
    add(stripe_api, "POST", PORTAL_SESSIONS_URL, "api_billing_portal_session")

    redirect = gateway.open_self_service(member=stored_customer.member, return_url=RETURN_URL)

    assert redirect.url.startswith("https://billing.stripe.com/p/session/")
    body = form(stripe_api.calls[0])
    assert body["configuration"] == "bpc_1QxConfigured00000001"
    assert body["customer"] == "cus_RhotdeskMember01"
    assert body["return_url"] == RETURN_URL


def test_portal_session_sends_idempotency_key(gateway, stripe_api, stored_customer, settings):
    settings.STRIPE_PORTAL_CONFIGURATION_ID = "bpc_1QxConfigured00000001"
    add(stripe_api, "POST", PORTAL_SESSIONS_URL, "api_billing_portal_session")
    gateway.open_self_service(member=stored_customer.member, return_url=RETURN_URL)
    key = stripe_api.calls[0].request.headers["Idempotency-Key"]
    assert key.startswith(f"cpr-portal-session-{stored_customer.member.pk}-")


def open_portal_creating_configuration(gateway, stripe_api, member):
    add(stripe_api, "GET", PORTAL_CONFIGURATIONS_URL, "api_billing_portal_configuration_list")
    add(stripe_api, "POST", PORTAL_CONFIGURATIONS_URL, "api_billing_portal_configuration")
    add(stripe_api, "POST", PORTAL_SESSIONS_URL, "api_billing_portal_session")
    gateway.open_self_service(member=member, return_url=RETURN_URL)


def test_portal_configuration_disables_cancellation(gateway, stripe_api, stored_customer):
    open_portal_creating_configuration(gateway, stripe_api, stored_customer.member)
    created = form(stripe_api.calls[1])
    assert created["features[subscription_cancel][enabled]"] == "false"
    assert created["features[payment_method_update][enabled]"] == "true"
    assert created["metadata[cpr_portal]"] == "no_self_cancel"


def test_portal_configuration_created_once(gateway, stripe_api, stored_customer):
    open_portal_creating_configuration(gateway, stripe_api, stored_customer.member)
    gateway.open_self_service(member=stored_customer.member, return_url=RETURN_URL)
    methods = [(call.request.method, call.request.url) for call in stripe_api.calls]
    assert methods.count(("POST", PORTAL_CONFIGURATIONS_URL)) == 1
    assert methods.count(("GET", PORTAL_CONFIGURATIONS_URL + "?active=true&limit=100")) == 1


def test_portal_configuration_create_has_idempotency_key(gateway, stripe_api, stored_customer):
    open_portal_creating_configuration(gateway, stripe_api, stored_customer.member)
    assert stripe_api.calls[1].request.headers["Idempotency-Key"]


def test_portal_session_uses_created_configuration(gateway, stripe_api, stored_customer):
    open_portal_creating_configuration(gateway, stripe_api, stored_customer.member)
    assert form(stripe_api.calls[2])["configuration"] == "bpc_1QxNoSelfCancel0000001"


def test_portal_reuses_tagged_configuration(gateway, stripe_api, stored_customer):
    listing = load("api_billing_portal_configuration_list")
    listing["data"].append(load("api_billing_portal_configuration"))
    stripe_api.add("GET", PORTAL_CONFIGURATIONS_URL, json=listing)
    add(stripe_api, "POST", PORTAL_SESSIONS_URL, "api_billing_portal_session")

    gateway.open_self_service(member=stored_customer.member, return_url=RETURN_URL)

    assert form(stripe_api.calls[1])["configuration"] == "bpc_1QxNoSelfCancel0000001"
    assert len(stripe_api.calls) == 2


# --- Cancellation -------------------------------------------------------------------------


def test_schedule_cancellation_sets_cancel_at(gateway, stripe_api, membership):
    GatewaySubscription.objects.create(
        membership=membership, gateway="stripe", reference="sub_1QxHotDeskSubscription1"
    )
    url = f"{API_BASE}/v1/subscriptions/sub_1QxHotDeskSubscription1"
    add(stripe_api, "POST", url, "api_subscription")

    gateway.schedule_cancellation(membership=membership, at=membership.commitment_end)

    body = form(stripe_api.calls[0])
    assert body["cancel_at"] == str(day_start(membership.commitment_end))
    assert body["proration_behavior"] == "none"
    key = stripe_api.calls[0].request.headers["Idempotency-Key"]
    assert key == f"cpr-cancel-{membership.pk}-{membership.commitment_end.isoformat()}"


def test_schedule_cancellation_without_subscription(gateway, stripe_api, membership):
    gateway.schedule_cancellation(membership=membership, at=membership.commitment_end)
    assert len(stripe_api.calls) == 0


# --- Event payloads -----------------------------------------------------------------------

JAN_15 = datetime.date(2026, 1, 15)
FEB_15 = datetime.date(2026, 2, 15)


def test_checkout_completed_normalised(gateway):
    payload = stripe_events.checkout_session_completed(membership_id=7)
    event = gateway.normalize_event(payload=payload)
    assert event == CheckoutCompleted(
        event_id="evt_checkout_1",
        created_at=datetime.datetime.fromtimestamp(payload["created"], datetime.UTC),
        membership_id=7,
        customer_reference="cus_RhotdeskMember01",
        subscription_reference="sub_1QxHotDeskSubscription1",
    )


def test_checkout_membership_from_client_reference(gateway):
    payload = stripe_events.checkout_session_completed(membership_id=7)
    payload["data"]["object"]["metadata"] = {}
    assert gateway.normalize_event(payload=payload).membership_id == 7


def test_payment_mode_checkout_ignored(gateway):
    payload = stripe_events.checkout_session_completed(membership_id=7)
    payload["data"]["object"]["mode"] = "payment"
    assert isinstance(gateway.normalize_event(payload=payload), IgnoredEvent)


def paid_event(gateway, name="invoice_paid", **overrides):
    values = {"membership_id": 7, "period_start": JAN_15, "period_end": FEB_15}
    values.update(overrides)
    return gateway.normalize_event(payload=stripe_events.invoice_event(name, **values))


def test_invoice_paid_normalised(gateway):
    event = paid_event(gateway)
    assert isinstance(event, PaymentSucceeded)
    assert event.membership_id == 7
    assert event.invoice_reference == "in_1QxFirstInvoice000001"
    assert event.payment_reference == "pi_in_1QxFirstInvoice000001"


def test_invoice_paid_amount_decimal(gateway):
    event = paid_event(gateway)
    assert event.amount == Decimal("250.00")
    assert isinstance(event.amount, Decimal)


def test_invoice_paid_period_local_dates(gateway):
    event = paid_event(gateway)
    assert (event.period_start, event.period_end) == (JAN_15, FEB_15)


def test_invoice_paid_month_end_period(gateway):
    event = paid_event(
        gateway, period_start=datetime.date(2028, 1, 31), period_end=datetime.date(2028, 2, 29)
    )
    assert (event.period_start, event.period_end) == (
        datetime.date(2028, 1, 31),
        datetime.date(2028, 2, 29),
    )


def test_invoice_paid_hosted_url(gateway):
    event = paid_event(gateway)
    assert event.hosted_url.startswith("https://invoice.stripe.com/i/")


def test_invoice_payment_succeeded_legacy_shape(gateway):
    event = paid_event(gateway, name="invoice_payment_succeeded_legacy", invoice_id="in_legacy1")
    assert isinstance(event, PaymentSucceeded)
    assert event.membership_id == 7
    assert event.payment_reference == "pi_in_legacy1"
    assert (event.period_start, event.period_end) == (JAN_15, FEB_15)


def test_invoice_membership_from_line_metadata(gateway):
    payload = stripe_events.invoice_event(membership_id=7, period_start=JAN_15, period_end=FEB_15)
    payload["data"]["object"]["parent"]["subscription_details"]["metadata"] = {}
    assert gateway.normalize_event(payload=payload).membership_id == 7


def test_invoice_membership_from_stored_subscription(gateway, membership):
    GatewaySubscription.objects.create(
        membership=membership, gateway="stripe", reference="sub_1QxStoredOnly000001"
    )
    event = paid_event(gateway, membership_id=None, subscription="sub_1QxStoredOnly000001")
    assert event.membership_id == membership.pk


def test_invoice_of_no_membership_ignored(gateway):
    event = paid_event(gateway, membership_id=None, subscription="sub_1QxSomeOtherProduct1")
    assert isinstance(event, IgnoredEvent)


def test_zero_amount_invoice_ignored(gateway):
    event = paid_event(gateway, amount_cents=0)
    assert isinstance(event, IgnoredEvent)
    assert event.details["reason"] == "zero amount invoice"


def test_invoice_payment_failed_normalised(gateway):
    payload = stripe_events.invoice_event(
        "invoice_payment_failed",
        membership_id=7,
        period_start=FEB_15,
        period_end=datetime.date(2026, 3, 15),
        invoice_id="in_1QxRenewalInvoice00002",
    )
    event = gateway.normalize_event(payload=payload)
    assert isinstance(event, PaymentFailed)
    assert event.amount == Decimal("250.00")
    assert event.period_start == FEB_15
    assert event.invoice_reference == "in_1QxRenewalInvoice00002"


def test_subscription_deleted_normalised(gateway):
    ended_on = datetime.date(2027, 1, 15)
    payload = stripe_events.subscription_deleted(membership_id=7, ended_on=ended_on)
    event = gateway.normalize_event(payload=payload)
    assert isinstance(event, SubscriptionCancelled)
    assert event.membership_id == 7
    assert timezone.localtime(event.ended_at).date() == ended_on


def test_unknown_event_type_ignored(gateway):
    event = gateway.normalize_event(payload=load("customer_updated"))
    assert isinstance(event, IgnoredEvent)
    assert event.event_type == "customer.updated"


def test_invoice_without_period_raises(gateway):
    payload = stripe_events.invoice_event(membership_id=7, period_start=JAN_15, period_end=FEB_15)
    del payload["data"]["object"]["lines"]["data"][0]["period"]
    with pytest.raises(GatewayError, match="evt_invoice_1"):
        gateway.normalize_event(payload=payload)
