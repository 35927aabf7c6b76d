"""One-off charges on the next invoice: the services, the gateway events and the adapters."""

import datetime
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
import responses
from django.urls import reverse

from billing import services
from billing.gateways import get_gateway
from billing.gateways.fake import amount_due
from billing.models import GatewaySubscription, Invoice, InvoiceItem
from members.models import Membership
from tests.billing import stripe_events
from tests.billing.stripe_events import API_BASE, SECRET_KEY, WEBHOOK_SECRET, load
from tests.factories import MembershipFactory, MemberWithUserFactory
from tests.factories.billing import payment_failed, payment_succeeded

pytestmark = pytest.mark.django_db

Status = InvoiceItem.Status
ITEMS_URL = f"{API_BASE}/v1/invoiceitems"


@pytest.fixture
def active(hot_desk_membership):
    hot_desk_membership.state = Membership.State.ACTIVE
    hot_desk_membership.save()
    return hot_desk_membership


@pytest.fixture
def subscribed(active):
    GatewaySubscription.objects.create(membership=active, gateway="stub", reference="sub_1")
    return active


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Return a runner that calls a function and then its on-commit callbacks (the syncs)."""

    def run(function, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(**kwargs)

    return run


@pytest.fixture
def charge(committed):
    def add(membership, amount="50.00", reference="booking:1") -> InvoiceItem:
        return committed(
            services.add_invoice_item,
            membership=membership,
            amount=Decimal(amount),
            description="Meeting room Sala Morro",
            reference=reference,
        )

    return add


@pytest.fixture
def withdraw(committed):
    return lambda reference: committed(services.withdraw_invoice_item, reference=reference)


# --- Adding and withdrawing ---------------------------------------------------------------


def test_item_synced_to_gateway(stub_gateway, subscribed, charge):
    item = charge(subscribed)

    item.refresh_from_db()
    assert item.status == Status.PENDING
    assert item.gateway == "stub"
    assert item.gateway_reference == f"ii_{item.pk}"
    assert ("add_invoice_item", item.pk) in stub_gateway.calls


def test_same_reference_added_once(stub_gateway, subscribed, charge):
    first = charge(subscribed)
    second = charge(subscribed, amount="70.00")

    assert second.pk == first.pk
    assert InvoiceItem.objects.count() == 1


@pytest.mark.parametrize("amount", ["0.00", "-5.00", "1.005"])
def test_bad_amount_rejected(stub_gateway, subscribed, amount, charge):
    with pytest.raises(services.BillingError):
        charge(subscribed, amount=amount)

    assert not InvoiceItem.objects.exists()


def test_ended_membership_rejected(stub_gateway, active, charge):
    active.state = Membership.State.CANCELLED
    active.save()

    with pytest.raises(services.BillingError, match="no next invoice"):
        charge(active)


def test_withdraw_pending_removes_at_gateway(stub_gateway, subscribed, charge, withdraw):
    item = charge(subscribed)

    withdrawn = withdraw("booking:1")

    assert withdrawn.status == Status.VOID
    assert ("remove_invoice_item", item.pk) in stub_gateway.calls
    withdrawn.refresh_from_db()
    assert withdrawn.gateway_removed_at is not None
    assert withdraw("booking:1").pk == item.pk
    assert withdraw("booking:404") is None


def test_membership_without_subscription_keeps_item_local(stub_gateway, settings, active, charge):
    settings.PAYMENT_GATEWAY = "billing.gateways.fake.FakeGateway"

    item = charge(active)

    item.refresh_from_db()
    assert item.gateway_reference == ""
    assert item.status == Status.PENDING


# --- Gateway invoices ---------------------------------------------------------------------


def test_gateway_invoice_bills_listed_items(stub_gateway, subscribed, charge):
    item = charge(subscribed)
    item.refresh_from_db()
    event = payment_succeeded(
        subscribed, amount=Decimal("300.00"), item_references=(item.gateway_reference,)
    )

    services.apply_gateway_event(event=event, gateway="stub")

    invoice = Invoice.objects.get()
    assert invoice.amount == Decimal("300.00")
    assert invoice.status == Invoice.Status.PAID
    item.refresh_from_db()
    assert item.status == Status.INVOICED
    assert item.invoice == invoice


def test_unlisted_item_waits_for_next_invoice(stub_gateway, subscribed, charge):
    item = charge(subscribed)

    services.apply_gateway_event(event=payment_succeeded(subscribed), gateway="stub")

    assert Invoice.objects.get().amount == Decimal("250.00")
    item.refresh_from_db()
    assert item.status == Status.PENDING


def test_amount_without_item_rejected(stub_gateway, subscribed):
    event = payment_succeeded(subscribed, amount=Decimal("300.00"))

    with pytest.raises(services.BillingError, match=r"reports \$300.00"):
        services.apply_gateway_event(event=event, gateway="stub")


def test_failed_invoice_keeps_items_for_retry(stub_gateway, subscribed, charge):
    item = charge(subscribed)
    item.refresh_from_db()
    references = (item.gateway_reference,)
    services.apply_gateway_event(event=payment_succeeded(subscribed), gateway="stub")

    failed = payment_failed(
        subscribed, number=2, amount=Decimal("300.00"), item_references=references
    )
    services.apply_gateway_event(event=failed, gateway="stub")
    paid = payment_succeeded(
        subscribed, number=2, amount=Decimal("300.00"), item_references=references
    )
    services.apply_gateway_event(event=paid, gateway="stub")

    invoice = Invoice.objects.get(period_number=2)
    assert invoice.amount == Decimal("300.00")
    assert invoice.status == Invoice.Status.PAID
    assert list(invoice.items.all()) == [item]


def test_withdrawn_item_billed_anyway_is_credited(stub_gateway, subscribed, charge, withdraw):
    item = charge(subscribed)
    item.refresh_from_db()
    withdraw("booking:1")
    event = payment_succeeded(
        subscribed, amount=Decimal("300.00"), item_references=(item.gateway_reference,)
    )

    services.apply_gateway_event(event=event, gateway="stub")

    item.refresh_from_db()
    assert item.status == Status.INVOICED
    credit = InvoiceItem.objects.get(reference="booking:1:reversal")
    assert credit.amount == Decimal("-50.00")
    assert credit.status == Status.PENDING


def test_withdraw_invoiced_adds_credit(stub_gateway, subscribed, charge, withdraw):
    item = charge(subscribed)
    item.refresh_from_db()
    event = payment_succeeded(
        subscribed, amount=Decimal("300.00"), item_references=(item.gateway_reference,)
    )
    services.apply_gateway_event(event=event, gateway="stub")

    credit = withdraw("booking:1")

    assert credit.reference == "booking:1:reversal"
    assert credit.amount == Decimal("-50.00")
    assert withdraw("booking:1").pk == credit.pk


# --- Manual payments ----------------------------------------------------------------------


def test_manual_invoice_takes_pending_items(stub_gateway, subscribed, clock, charge, committed):
    item = charge(subscribed)

    payment = committed(
        services.record_manual_payment,
        membership=subscribed,
        amount=Decimal("300.00"),
        method="cash",
        reference="",
        received_at=clock.today,
        actor=None,
    )

    item.refresh_from_db()
    assert payment.invoice.amount == Decimal("300.00")
    assert item.invoice == payment.invoice
    # Paid by hand, so the gateway must not bill it again.
    assert ("remove_invoice_item", item.pk) in stub_gateway.calls


# --- Portal and the fake gateway ----------------------------------------------------------


def test_next_payment_includes_items(stub_gateway, subscribed, charge):
    from billing import selectors

    charge(subscribed)
    services.apply_gateway_event(event=payment_succeeded(subscribed), gateway="stub")

    upcoming = selectors.next_payment(subscribed)

    assert upcoming.amount == Decimal("300.00")
    assert upcoming.items_amount == Decimal("50.00")


def test_fake_gateway_bills_held_items(settings, client, clock, time_machine, charge):
    settings.PAYMENT_GATEWAY = "billing.gateways.fake.FakeGateway"
    member = MemberWithUserFactory()
    membership = MembershipFactory(
        member=member, start_date=clock.today, state=Membership.State.ACTIVE
    )
    GatewaySubscription.objects.create(
        membership=membership, gateway="fake", reference=f"fake_sub_{membership.pk}"
    )
    item = charge(membership)
    item.refresh_from_db()
    assert item.gateway_reference == f"fake_ii_{item.pk}"

    due = amount_due(membership)
    assert due.amount == Decimal("300.00")
    assert due.item_references == [item.gateway_reference]

    client.force_login(member.user)
    page = client.get(reverse("billing:fake_self_service"))
    assert b"Meeting room Sala Morro" in page.content
    assert b"$50.00" in page.content


# --- Stripe -------------------------------------------------------------------------------


@pytest.fixture
def stripe_gateway(settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.stripe.StripeGateway"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    return get_gateway()


@pytest.fixture
def stripe_api():
    with responses.RequestsMock() as mock:
        yield mock


def stripe_subscribed(membership):
    from billing.models import GatewayCustomer

    GatewayCustomer.objects.create(
        member=membership.member, gateway="stripe", reference="cus_RhotdeskMember01"
    )
    GatewaySubscription.objects.create(
        membership=membership, gateway="stripe", reference="sub_1QxHotDeskSubscription1"
    )


def test_stripe_creates_invoice_item(stripe_gateway, stripe_api, active, charge):
    stripe_subscribed(active)
    stripe_api.add(responses.POST, ITEMS_URL, json=load("api_invoice_item"))

    item = charge(active)

    item.refresh_from_db()
    assert item.gateway == "stripe"
    assert item.gateway_reference == "ii_1QxRoomOverage000001"
    [call] = stripe_api.calls
    body = {key: values[0] for key, values in parse_qs(call.request.body).items()}
    assert body["amount"] == "5000"
    assert body["currency"] == "usd"
    assert body["customer"] == "cus_RhotdeskMember01"
    assert body["subscription"] == "sub_1QxHotDeskSubscription1"
    assert body["metadata[reference]"] == "booking:1"
    assert call.request.headers["Idempotency-Key"] == f"cpr-invoice-item-{item.pk}"


def test_stripe_skips_unsubscribed(stripe_gateway, stripe_api, active, charge):
    item = charge(active)

    item.refresh_from_db()
    assert item.gateway_reference == ""
    assert len(stripe_api.calls) == 0


def test_stripe_deletes_withdrawn_item(stripe_gateway, stripe_api, active, charge, withdraw):
    stripe_subscribed(active)
    stripe_api.add(responses.POST, ITEMS_URL, json=load("api_invoice_item"))
    stripe_api.add(
        responses.DELETE,
        f"{ITEMS_URL}/ii_1QxRoomOverage000001",
        json={"id": "ii_1QxRoomOverage000001", "object": "invoiceitem", "deleted": True},
    )
    charge(active)

    item = withdraw("booking:1")

    item.refresh_from_db()
    assert item.gateway_removed_at is not None
    assert stripe_api.calls[1].request.method == "DELETE"


def test_stripe_delete_of_missing_item_succeeds(
    stripe_gateway, stripe_api, active, charge, withdraw
):
    stripe_subscribed(active)
    stripe_api.add(responses.POST, ITEMS_URL, json=load("api_invoice_item"))
    stripe_api.add(
        responses.DELETE,
        f"{ITEMS_URL}/ii_1QxRoomOverage000001",
        status=404,
        json=load("api_error_invalid_request"),
    )
    charge(active)

    item = withdraw("booking:1")

    item.refresh_from_db()
    assert item.gateway_removed_at is not None


def item_line(invoice_id: str, item_id: str, *, legacy: bool) -> dict:
    if legacy:
        return {
            "id": "il_legacy_item",
            "object": "line_item",
            "amount": 5000,
            "currency": "usd",
            "invoice_item": item_id,
            "type": "invoiceitem",
            "period": {"start": 1772456400, "end": 1772456400},
        }
    return {
        "id": "il_item",
        "object": "line_item",
        "amount": 5000,
        "currency": "usd",
        "invoice": invoice_id,
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {"invoice_item": item_id, "proration": False},
            "subscription_item_details": None,
        },
        "period": {"start": 1772456400, "end": 1772456400},
    }


@pytest.mark.parametrize("name", ["invoice_paid", "invoice_payment_succeeded_legacy"])
def test_stripe_invoice_lists_items(stripe_gateway, name):
    payload = stripe_events.invoice_event(
        name,
        membership_id=7,
        period_start=datetime.date(2026, 1, 15),
        period_end=datetime.date(2026, 2, 15),
        amount_cents=30000,
    )
    invoice = payload["data"]["object"]
    legacy = "parent" not in invoice
    lines = invoice["lines"]["data"]
    # The item's line comes first, so the period must still come from the subscription line.
    lines.insert(0, item_line(invoice["id"], "ii_1QxRoomOverage000001", legacy=legacy))

    event = stripe_gateway.normalize_event(payload=payload)

    assert event.amount == Decimal("300.00")
    assert event.item_references == ("ii_1QxRoomOverage000001",)
    assert event.period_start == datetime.date(2026, 1, 15)


def test_stripe_invoice_without_items(stripe_gateway):
    payload = stripe_events.invoice_event(
        membership_id=7,
        period_start=datetime.date(2026, 1, 15),
        period_end=datetime.date(2026, 2, 15),
    )

    assert stripe_gateway.normalize_event(payload=payload).item_references == ()
