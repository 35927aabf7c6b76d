"""factory-boy factories and normalised gateway events for the billing domain."""

import datetime
import itertools
from decimal import Decimal

import factory
from django.utils import timezone

from billing.gateways.base import (
    CheckoutCompleted,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionCancelled,
)
from billing.models import CreditEntry, Invoice, Payment, WebhookEvent
from members.periods import billing_period

from . import MemberFactory, MembershipFactory


class InvoiceFactory(factory.django.DjangoModelFactory):
    """An open invoice for a period of a membership (period 1 unless `period_number` is given)."""

    class Meta:
        model = Invoice

    membership = factory.SubFactory(MembershipFactory)
    kind = Invoice.Kind.PERIOD
    period_number = 1
    period_start = factory.LazyAttribute(
        lambda invoice: billing_period(invoice.membership.start_date, invoice.period_number).start
    )
    period_end = factory.LazyAttribute(
        lambda invoice: billing_period(invoice.membership.start_date, invoice.period_number).end
    )
    amount = factory.SelfAttribute("membership.monthly_price")
    status = Invoice.Status.OPEN


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    invoice = factory.SubFactory(InvoiceFactory, status=Invoice.Status.PAID)
    membership = factory.SelfAttribute("invoice.membership")
    amount = factory.SelfAttribute("invoice.amount")
    method = Payment.Method.CASH
    received_at = factory.LazyFunction(timezone.now)


class CreditLotFactory(factory.django.DjangoModelFactory):
    """A positive adjustment: a lot of credit that expires on `expires_on` (never by default)."""

    class Meta:
        model = CreditEntry

    member = factory.SubFactory(MemberFactory)
    kind = CreditEntry.Kind.ADJUST
    amount = Decimal("100.00")
    expires_on = None
    reason = "test credit"


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    gateway = "stub"
    event_id = factory.Sequence(lambda n: f"evt_{n}")
    event_type = "unknown.event"
    payload = factory.LazyAttribute(lambda event: {"id": event.event_id, "type": event.event_type})


# --- Normalised gateway events ------------------------------------------------------------

_event_numbers = itertools.count(1)


def _event_id(prefix: str) -> str:
    return f"{prefix}_{next(_event_numbers)}"


def payment_succeeded(membership, *, number: int = 1, **overrides) -> PaymentSucceeded:
    """Return the event of a paid invoice for period `number` of `membership`."""
    period = billing_period(membership.start_date, number)
    values = {
        "event_id": _event_id("evt_paid"),
        "created_at": timezone.now(),
        "membership_id": membership.pk,
        "invoice_reference": f"in_{membership.pk}_{number}",
        "payment_reference": f"pi_{membership.pk}_{number}",
        "amount": membership.monthly_price,
        "period_start": period.start,
        "period_end": period.end,
        "paid_at": timezone.now(),
        "hosted_url": f"https://pay.example.test/in_{membership.pk}_{number}",
    }
    values.update(overrides)
    return PaymentSucceeded(**values)


def payment_failed(membership, *, number: int = 1, **overrides) -> PaymentFailed:
    """Return the event of a failed collection of period `number` of `membership`."""
    period = billing_period(membership.start_date, number)
    values = {
        "event_id": _event_id("evt_failed"),
        "created_at": timezone.now(),
        "membership_id": membership.pk,
        "invoice_reference": f"in_{membership.pk}_{number}",
        "amount": membership.monthly_price,
        "period_start": period.start,
        "period_end": period.end,
        "hosted_url": f"https://pay.example.test/in_{membership.pk}_{number}",
        "failure_message": "Your card was declined.",
    }
    values.update(overrides)
    return PaymentFailed(**values)


def checkout_completed(membership, **overrides) -> CheckoutCompleted:
    values = {
        "event_id": _event_id("evt_checkout"),
        "created_at": timezone.now(),
        "membership_id": membership.pk,
        "customer_reference": f"cus_{membership.member_id}",
        "subscription_reference": f"sub_{membership.pk}",
    }
    values.update(overrides)
    return CheckoutCompleted(**values)


def subscription_cancelled(
    membership, *, ended_on: datetime.date | None = None, **overrides
) -> SubscriptionCancelled:
    """Return the end of the membership's subscription, at noon of `ended_on` (default now)."""
    ended_at = timezone.now()
    if ended_on is not None:
        ended_at = timezone.make_aware(datetime.datetime.combine(ended_on, datetime.time(12)))
    values = {
        "event_id": _event_id("evt_sub_deleted"),
        "created_at": timezone.now(),
        "membership_id": membership.pk,
        "subscription_reference": f"sub_{membership.pk}",
        "ended_at": ended_at,
    }
    values.update(overrides)
    return SubscriptionCancelled(**values)
