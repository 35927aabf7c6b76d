"""A member's money story end to end, once through the fake gateway and once through Stripe.

An approved member pays, becomes active, and has a $150.00 credit valid to the period end and
a paid $250.00 invoice. A failed renewal makes the membership past due, the suspension
task suspends it once the grace period is over, and paying reinstates it. The clock is
moved with time-machine, so the domain's "today", Stripe's signature timestamps and the
stored times all agree.

The membership starts on 31 January, so its second period starts on 28 February.
"""

import datetime
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import responses
from django.urls import reverse

from billing import tasks
from billing.gateways import get_gateway
from billing.models import CreditEntry, Invoice, WebhookEvent
from members import services as members_services
from members.models import Membership
from tests.billing import stripe_events
from tests.billing.stripe_events import API_BASE, SECRET_KEY, WEBHOOK_SECRET, deliver, load
from tests.factories import ApplicationFactory

pytestmark = pytest.mark.django_db

State = Membership.State
SAN_JUAN = datetime.timezone(datetime.timedelta(hours=-4))

START = datetime.date(2031, 1, 31)
SECOND_PERIOD = datetime.date(2031, 2, 28)
THIRD_PERIOD = datetime.date(2031, 3, 31)
GRACE_DAYS = 7
LAST_GRACE_DAY = SECOND_PERIOD + datetime.timedelta(days=GRACE_DAYS)


def at(day: datetime.date, hour: int = 10) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), SAN_JUAN)


@pytest.fixture
def approved(hot_desk, staff_user, time_machine, settings):
    """An approved applicant with a login and a pending Hot Desk membership from START."""
    settings.CPR_GRACE_PERIOD_DAYS = GRACE_DAYS
    time_machine.move_to(at(START, hour=9), tick=False)
    application = ApplicationFactory(
        plan=hot_desk, desired_start_date=START, first_name="Ana", last_name="Rivera"
    )
    membership = members_services.approve_application(application=application, actor=staff_user)
    members_services.ensure_member_user(member=membership.member)
    return membership


@pytest.fixture
def member_client(client, approved):
    approved.member.refresh_from_db()
    client.force_login(approved.member.user)
    return client


def sign_in_again(client, membership):
    """Sign the member in after the clock moved past the two-week session lifetime."""
    client.force_login(membership.member.user)


def state_of(membership) -> str:
    membership.refresh_from_db()
    return membership.state


def path_of(url: str) -> str:
    """Return the path and query of a redirect, which may be absolute (CPR_SITE_URL)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def assert_first_period_paid(client, membership):
    """Check what the first payment leaves, in the database and on the dashboard."""
    assert state_of(membership) == State.ACTIVE

    invoice = Invoice.objects.get(membership=membership, period_number=1)
    assert (invoice.status, invoice.amount) == (Invoice.Status.PAID, Decimal("250.00"))

    grant = CreditEntry.objects.get(member=membership.member, kind=CreditEntry.Kind.GRANT)
    assert grant.amount == Decimal("150.00")
    assert grant.expires_on == SECOND_PERIOD

    dashboard = client.get(reverse("members:portal_dashboard")).text
    assert "$150.00" in dashboard
    assert "$250.00" in dashboard


def assert_suspended_after_grace(time_machine, membership):
    time_machine.move_to(at(LAST_GRACE_DAY), tick=False)
    tasks.suspend_overdue_memberships.delay()
    assert state_of(membership) == State.PAST_DUE

    time_machine.move_to(at(LAST_GRACE_DAY + datetime.timedelta(days=1)), tick=False)
    tasks.suspend_overdue_memberships.delay()
    assert state_of(membership) == State.SUSPENDED


def assert_reinstated(membership):
    assert state_of(membership) == State.ACTIVE
    invoice = Invoice.objects.get(membership=membership, period_number=2)
    assert invoice.status == Invoice.Status.PAID
    grants = CreditEntry.objects.filter(member=membership.member, kind=CreditEntry.Kind.GRANT)
    assert sorted(grant.expires_on for grant in grants) == [SECOND_PERIOD, THIRD_PERIOD]


# --- Fake gateway -------------------------------------------------------------------------------


@pytest.fixture
def fake_settings(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.fake.FakeGateway"
    return settings


def test_fake_gateway_flow(fake_settings, approved, member_client, time_machine):
    membership = approved
    assert state_of(membership) == State.PENDING

    # The member presses "Pay now" and lands on the fake gateway's pay page.
    response = member_client.post(reverse("billing:pay"))
    pay_page = path_of(response["Location"])
    assert pay_page.startswith(reverse("billing:fake_pay", args=[membership.pk]))
    assert "Pay $250.00" in member_client.get(pay_page).text

    response = member_client.post(pay_page, follow=True)
    assert response.status_code == 200
    assert_first_period_paid(member_client, membership)

    # The renewal of the second period fails on the day it is billed.
    time_machine.move_to(at(SECOND_PERIOD), tick=False)
    sign_in_again(member_client, membership)
    billing_page = path_of(member_client.post(reverse("billing:manage"))["Location"])
    assert "Simulate a failed renewal" in member_client.get(billing_page).text
    member_client.post(reverse("billing:fake_fail_renewal"))
    assert state_of(membership) == State.PAST_DUE
    assert membership.grace_until == LAST_GRACE_DAY

    assert_suspended_after_grace(time_machine, membership)

    # Paying from the portal pays the open invoice of the second period.
    sign_in_again(member_client, membership)
    response = member_client.post(reverse("billing:pay"))
    pay_page = path_of(response["Location"])
    assert pay_page.startswith(reverse("billing:fake_pay", args=[membership.pk]))
    member_client.post(pay_page)
    assert_reinstated(membership)


# --- Stripe ---------------------------------------------------------------------------------------


@pytest.fixture
def stripe_settings(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    get_gateway()._clients.clear()
    return settings


def invoice(name, membership, *, number, event_id, invoice_id):
    starts = {1: START, 2: SECOND_PERIOD, 3: THIRD_PERIOD}
    return stripe_events.invoice_event(
        name,
        membership_id=membership.pk,
        period_start=starts[number],
        period_end=starts[number + 1],
        event_id=event_id,
        invoice_id=invoice_id,
    )


def test_stripe_flow(stripe_settings, approved, member_client, time_machine):
    membership = approved

    # "Pay now" creates a Checkout Session anchored on the start date (today, so none).
    with responses.RequestsMock() as stripe_api:
        stripe_api.add("POST", f"{API_BASE}/v1/customers", json=load("api_customer"))
        stripe_api.add(
            "POST", f"{API_BASE}/v1/checkout/sessions", json=load("api_checkout_session")
        )
        response = member_client.post(reverse("billing:pay"))
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/")

    # Stripe reports the paid first invoice, then the completed checkout.
    time_machine.move_to(at(START, hour=11), tick=False)
    paid = invoice("invoice_paid", membership, number=1, event_id="evt_1", invoice_id="in_1")
    checkout = stripe_events.checkout_session_completed(membership_id=membership.pk)
    assert deliver(member_client, paid).status_code == 200
    assert deliver(member_client, checkout).status_code == 200
    assert_first_period_paid(member_client, membership)

    # The card is declined when the second period is billed.
    time_machine.move_to(at(SECOND_PERIOD, hour=5), tick=False)
    failed = invoice(
        "invoice_payment_failed", membership, number=2, event_id="evt_2", invoice_id="in_2"
    )
    assert deliver(member_client, failed).status_code == 200
    assert state_of(membership) == State.PAST_DUE
    assert membership.grace_until == LAST_GRACE_DAY

    assert_suspended_after_grace(time_machine, membership)

    # "Pay now" sends the member to Stripe's page for the open invoice, where they pay it.
    sign_in_again(member_client, membership)
    response = member_client.post(reverse("billing:pay"))
    assert response["Location"].startswith("https://invoice.stripe.com/i/")
    repaid = invoice("invoice_paid", membership, number=2, event_id="evt_3", invoice_id="in_2")
    assert deliver(member_client, repaid).status_code == 200
    assert_reinstated(membership)

    statuses = set(WebhookEvent.objects.values_list("status", flat=True))
    assert statuses == {WebhookEvent.Status.PROCESSED}
