"""Stripe's webhook payloads read into normalised events, and Stripe's units converted.

`billing.gateways.stripe` (the only module that imports `stripe`) verifies the webhook
and calls `normalize_stripe_event` on the stored payload. This module reads plain dicts
(the JSON that Stripe signed), so it needs no Stripe object and no network. Amounts
arrive as integer cents and become `Decimal` dollars. Timestamps become dates in
settings.TIME_ZONE (America/Puerto_Rico, which has no daylight saving time).
"""

import datetime
from decimal import Decimal

from django.utils import timezone

from .base import (
    CheckoutCompleted,
    GatewayError,
    GatewayEvent,
    IgnoredEvent,
    PaymentFailed,
    PaymentSucceeded,
    SubscriptionCancelled,
)

#: The gateway name stored on invoices, payments and events of Stripe.
GATEWAY_NAME = "stripe"

CENT = Decimal("0.01")


# --- Conversions --------------------------------------------------------------------


def to_cents(amount: Decimal) -> int:
    """Return `amount` US dollars as integer cents; raise GatewayError below a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise GatewayError(f"{amount} USD is not a whole number of cents.")
    return int(cents)


# The largest amount the invoice and payment columns hold: 10 digits, 2 after the point.
MAX_CENTS = 10**10 - 1


def from_cents(cents: int) -> Decimal:
    """Return integer cents as dollars; raise GatewayError for anything else."""
    if isinstance(cents, bool) or not isinstance(cents, int) or not 0 <= cents <= MAX_CENTS:
        raise GatewayError(
            f"Stripe amount {cents!r} is not a whole number of cents between 0 and {MAX_CENTS}."
        )
    return (Decimal(cents) / 100).quantize(CENT)


def day_start_timestamp(day: datetime.date) -> int:
    """Return the Unix timestamp of midnight at the start of `day` in the portal's zone."""
    start = datetime.datetime.combine(day, datetime.time.min, timezone.get_default_timezone())
    return int(start.timestamp())


def local_date(timestamp: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(timestamp, timezone.get_default_timezone()).date()


def utc_datetime(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


# --- Reading Stripe objects ---------------------------------------------------------


def _reference(value) -> str:
    """Return the id of an expandable field, which is either an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


def _dig(data, *path):
    """Return data[path[0]][path[1]]..., or None where a step is missing or null."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _membership_id_from(metadata) -> int | None:
    value = metadata.get("membership_id") if isinstance(metadata, dict) else None
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _invoice_subscription(invoice: dict) -> str:
    """Return the invoice's subscription id, from the current or the pre-2025 shape."""
    current = _dig(invoice, "parent", "subscription_details", "subscription")
    return _reference(current) or _reference(invoice.get("subscription"))


def _subscription_line(invoice: dict) -> dict | None:
    """Return the invoice line billed for the subscription (not a one-off item)."""
    lines = _dig(invoice, "lines", "data") or []
    for line in lines:
        parent_type = _dig(line, "parent", "type")
        if parent_type == "subscription_item_details" or line.get("type") == "subscription":
            return line
    return lines[0] if lines else None


def _item_references(invoice: dict) -> tuple[str, ...]:
    """Return the ids of the one-off invoice items billed on the invoice's lines.

    Current API versions name the item in `parent.invoice_item_details.invoice_item`;
    before 2025-03-31 a line of type "invoiceitem" names it in `invoice_item`.
    """
    # NOTE: a webhook embeds at most the first page of lines (`lines.has_more`); an
    # invoice with more items than that is reported short, and the amount check then
    # leaves the event failed for staff.
    references = []
    for line in _dig(invoice, "lines", "data") or []:
        current = _dig(line, "parent", "invoice_item_details", "invoice_item")
        legacy = line.get("invoice_item") if line.get("type") == "invoiceitem" else None
        reference = _reference(current) or _reference(legacy)
        if reference:
            references.append(reference)
    return tuple(references)


def _membership_of_subscription(subscription_id: str) -> int | None:
    """Return the membership of a stored Stripe subscription, or None when none is stored."""
    if not subscription_id:
        return None
    from billing.models import GatewaySubscription

    return (
        GatewaySubscription.objects.filter(gateway=GATEWAY_NAME, reference=subscription_id)
        .values_list("membership_id", flat=True)
        .first()
    )


def _invoice_membership_id(invoice: dict) -> int | None:
    """Find the membership an invoice bills.

    Tries, in order: the subscription metadata snapshot on the invoice
    (`parent.subscription_details.metadata`, API versions from 2025-03-31; before that
    the top-level `subscription_details.metadata`), the line items' metadata, and last the
    stored GatewaySubscription of the invoice's subscription. The metadata comes with the
    invoice itself, so an invoice that arrives before its checkout.session.completed
    event still finds its membership.
    """
    candidates = [
        _dig(invoice, "parent", "subscription_details", "metadata"),
        _dig(invoice, "subscription_details", "metadata"),
    ]
    candidates += [line.get("metadata") for line in _dig(invoice, "lines", "data") or []]
    for metadata in candidates:
        membership_id = _membership_id_from(metadata)
        if membership_id is not None:
            return membership_id
    return _membership_of_subscription(_invoice_subscription(invoice))


def _payment_reference(invoice: dict) -> str:
    """Return the PaymentIntent (or charge) that paid the invoice, else the invoice id."""
    for payment in _dig(invoice, "payments", "data") or []:
        details = payment.get("payment") or {}
        reference = _reference(details.get("payment_intent")) or _reference(details.get("charge"))
        if reference:
            return reference
    return (
        _reference(invoice.get("payment_intent"))
        or _reference(invoice.get("charge"))
        or invoice["id"]
    )


def normalize_stripe_event(payload: dict) -> GatewayEvent:
    """Turn a verified Stripe event into a normalised event; unknown types are ignored.

    Raises GatewayError naming the event when a field the portal needs is missing or of
    the wrong type.
    """
    event_type = payload.get("type", "")
    handler = _HANDLERS.get(event_type)
    obj = _dig(payload, "data", "object")
    try:
        if handler is None or not isinstance(obj, dict):
            return _ignored(payload, reason="not an event type the portal acts on")
        return handler(payload, obj)
    except (KeyError, TypeError, ValueError) as error:
        raise GatewayError(
            f"Stripe event {payload.get('id')} ({event_type}) lacks a field the portal "
            f"needs or has one of the wrong type: {error!r}."
        ) from error


# --- Event handlers -----------------------------------------------------------------


def _created(payload: dict) -> datetime.datetime:
    created = payload.get("created")
    # An event without a timestamp is only acknowledged, so the time it arrived will do.
    return utc_datetime(created) if isinstance(created, int) else timezone.now()


def _ignored(payload: dict, *, reason: str, **details) -> IgnoredEvent:
    return IgnoredEvent(
        event_id=payload["id"],
        created_at=_created(payload),
        event_type=payload.get("type", ""),
        details={"reason": reason, **details},
    )


def _checkout_completed(payload: dict, session: dict) -> GatewayEvent:
    if session.get("mode") != "subscription":
        return _ignored(payload, reason="not a subscription checkout", session=session["id"])
    membership_id = _membership_id_from(session.get("metadata"))
    if membership_id is None:
        membership_id = _membership_id_from({"membership_id": session.get("client_reference_id")})
    if membership_id is None:
        return _ignored(payload, reason="checkout without a membership", session=session["id"])
    return CheckoutCompleted(
        event_id=payload["id"],
        created_at=_created(payload),
        membership_id=membership_id,
        customer_reference=_reference(session.get("customer")),
        subscription_reference=_reference(session.get("subscription")),
    )


def _invoice_event(payload: dict, invoice: dict) -> GatewayEvent:
    membership_id = _invoice_membership_id(invoice)
    if membership_id is None:
        return _ignored(payload, reason="invoice of no membership", invoice=invoice["id"])
    line = _subscription_line(invoice)
    if line is None:
        return _ignored(payload, reason="invoice without lines", invoice=invoice["id"])
    currency = str(invoice.get("currency") or "usd").lower()
    if currency != "usd":
        raise GatewayError(
            f"Stripe invoice {invoice['id']} is in {currency.upper()}, but memberships are billed "
            "in USD. Refund it at Stripe and check the price of the subscription."
        )
    period_start = local_date(line["period"]["start"])
    period_end = local_date(line["period"]["end"])

    common = {
        "event_id": payload["id"],
        "created_at": _created(payload),
        "membership_id": membership_id,
        "invoice_reference": invoice["id"],
        "period_start": period_start,
        "period_end": period_end,
        "hosted_url": invoice.get("hosted_invoice_url") or "",
        "item_references": _item_references(invoice),
    }

    if payload["type"] == "invoice.payment_failed":
        return PaymentFailed(
            amount=from_cents(invoice["amount_due"]),
            failure_message=_dig(invoice, "last_finalization_error", "message") or "",
            **common,
        )
    amount = from_cents(invoice["amount_paid"])
    if amount == 0:
        # The free stretch before a future billing_cycle_anchor bills $0; the member has
        # paid nothing yet, so it must not count as the first payment.
        return _ignored(payload, reason="zero amount invoice", invoice=invoice["id"])
    paid_at = _dig(invoice, "status_transitions", "paid_at")
    return PaymentSucceeded(
        payment_reference=_payment_reference(invoice),
        amount=amount,
        paid_at=utc_datetime(paid_at) if paid_at else _created(payload),
        **common,
    )


def _subscription_deleted(payload: dict, subscription: dict) -> GatewayEvent:
    membership_id = _membership_id_from(subscription.get("metadata"))
    if membership_id is None:
        membership_id = _membership_of_subscription(subscription["id"])
    if membership_id is None:
        return _ignored(
            payload, reason="subscription of no membership", subscription=subscription["id"]
        )
    ended_at = subscription.get("ended_at") or subscription.get("canceled_at")
    return SubscriptionCancelled(
        event_id=payload["id"],
        created_at=_created(payload),
        membership_id=membership_id,
        subscription_reference=subscription["id"],
        ended_at=utc_datetime(ended_at) if ended_at else _created(payload),
    )


_HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    # Stripe sends both for one paid invoice; the domain applies an invoice's payment
    # once, by the invoice reference.
    "invoice.paid": _invoice_event,
    "invoice.payment_succeeded": _invoice_event,
    "invoice.payment_failed": _invoice_event,
    "customer.subscription.deleted": _subscription_deleted,
}
