"""The embedded payment gateway: local pages in place of a payment provider.

`start_payment` sends the member to a local pay page and `open_self_service` to a local
billing page (both in `billing.views`). Buttons there build events in this module's JSON
shape and hand them to `billing.services.store_webhook_event` and
`process_webhook_event`, the same path a Stripe webhook takes, so development and tests
exercise the real handlers. The same JSON can also be POSTed to the webhook endpoint,
signed in the X-Fake-Signature header with HMAC-SHA256 over the body, keyed by
SECRET_KEY. The signature has no timestamp, so a replayed delivery verifies, and only the
stored event id stops it from being processed twice.

Event ids are derived from the membership and period (for example
`fake_evt_paid_12_3`), so pressing a button twice delivers a duplicate, not a second
payment.
"""

import datetime
import hashlib
import hmac
import json
import logging
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from members.periods import BillingPeriod, billing_period

from .base import (
    CheckoutCompleted,
    CustomerRef,
    GatewayError,
    GatewayEvent,
    IgnoredEvent,
    PaymentFailed,
    PaymentGateway,
    PaymentSucceeded,
    RedirectURL,
    SubscriptionCancelled,
    WebhookVerificationError,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Fake-Signature"

CHECKOUT_COMPLETED = "checkout.completed"
PAYMENT_SUCCEEDED = "payment.succeeded"
PAYMENT_FAILED = "payment.failed"
SUBSCRIPTION_CANCELLED = "subscription.cancelled"


def sign_body(body: bytes) -> str:
    """Return the X-Fake-Signature value for `body`: hex HMAC-SHA256 keyed with SECRET_KEY."""
    return hmac.new(settings.SECRET_KEY.encode(), body, hashlib.sha256).hexdigest()


def customer_reference(member_id: int) -> str:
    return f"fake_cus_{member_id}"


def subscription_reference(membership_id: int) -> str:
    return f"fake_sub_{membership_id}"


def invoice_reference(membership_id: int, period_number: int) -> str:
    return f"fake_in_{membership_id}_{period_number}"


# --- What a membership owes ---------------------------------------------------------


def invoice_item_reference(item_id: int) -> str:
    return f"fake_ii_{item_id}"


@dataclass(frozen=True)
class AmountDue:
    """The billing period a membership pays next, and its amount in USD.

    `items` are the pending invoice items that the fake gateway holds for the next
    invoice; `amount` includes them.
    """

    period: BillingPeriod
    amount: Decimal
    is_open_invoice: bool
    items: tuple = ()

    @property
    def item_references(self) -> list[str]:
        return [item.gateway_reference for item in self.items]


def amount_due(membership) -> AmountDue:
    """Return the period the membership pays next, in two queries.

    The oldest open billing-period invoice comes first (a failed renewal). Otherwise it
    is the period after the last invoiced one, at the membership's monthly price
    snapshot plus the invoice items pending at this gateway, as Stripe adds pending
    items to the next invoice. Void invoices do not count as invoiced.
    """
    from billing.models import Invoice, InvoiceItem

    invoices = list(
        membership.invoices.filter(kind=Invoice.Kind.PERIOD)
        .exclude(status=Invoice.Status.VOID)
        .order_by("period_number")
        .only("period_number", "period_start", "period_end", "amount", "status")
    )
    for invoice in invoices:
        if invoice.status == Invoice.Status.OPEN:
            period = BillingPeriod(
                number=invoice.period_number, start=invoice.period_start, end=invoice.period_end
            )
            return AmountDue(period=period, amount=invoice.amount, is_open_invoice=True)
    last_number = invoices[-1].period_number if invoices else 0
    period = billing_period(membership.start_date, last_number + 1)
    items = tuple(
        InvoiceItem.objects.filter(
            membership=membership, status=InvoiceItem.Status.PENDING, gateway=FakeGateway.name
        )
        .exclude(gateway_reference="")
        .order_by("id")
    )
    amount = membership.monthly_price + sum((item.amount for item in items), Decimal("0.00"))
    return AmountDue(period=period, amount=amount, is_open_invoice=False, items=items)


# --- Event payloads -----------------------------------------------------------------


def _event(event_type: str, event_id: str, data: dict) -> dict:
    return {
        "id": event_id,
        "object": "fake.event",
        "type": event_type,
        "created": timezone.now().isoformat(),
        "data": data,
    }


def _pay_page_url(membership) -> str:
    """Return the absolute pay page address, the fake's counterpart of a hosted invoice."""
    path = reverse("billing:fake_pay", kwargs={"membership_id": membership.pk})
    return f"{settings.CPR_SITE_URL}{path}"


def checkout_completed_payload(membership) -> dict:
    """Return the event of a finished checkout: the membership now has a subscription."""
    return _event(
        CHECKOUT_COMPLETED,
        f"fake_evt_checkout_{membership.pk}",
        {
            "membership_id": membership.pk,
            "customer_reference": customer_reference(membership.member_id),
            "subscription_reference": subscription_reference(membership.pk),
        },
    )


def payment_succeeded_payload(membership, due: AmountDue) -> dict:
    """Return the event of a paid invoice for the period in `due`."""
    number = due.period.number
    return _event(
        PAYMENT_SUCCEEDED,
        f"fake_evt_paid_{membership.pk}_{number}",
        {
            "membership_id": membership.pk,
            "invoice_reference": invoice_reference(membership.pk, number),
            "payment_reference": f"fake_pay_{membership.pk}_{number}",
            "amount": str(due.amount),
            "period_start": due.period.start.isoformat(),
            "period_end": due.period.end.isoformat(),
            "paid_at": timezone.now().isoformat(),
            "hosted_url": _pay_page_url(membership),
            "item_references": due.item_references,
        },
    )


def payment_failed_payload(membership, due: AmountDue, failure_message: str) -> dict:
    """Return the event of a failed collection of the invoice for the period in `due`."""
    number = due.period.number
    return _event(
        PAYMENT_FAILED,
        f"fake_evt_failed_{membership.pk}_{number}",
        {
            "membership_id": membership.pk,
            "invoice_reference": invoice_reference(membership.pk, number),
            "amount": str(due.amount),
            "period_start": due.period.start.isoformat(),
            "period_end": due.period.end.isoformat(),
            "hosted_url": _pay_page_url(membership),
            "failure_message": failure_message,
            "item_references": due.item_references,
        },
    )


def subscription_cancelled_payload(membership, ended_at: datetime.datetime) -> dict:
    """Return the event of the gateway ending the membership's subscription."""
    return _event(
        SUBSCRIPTION_CANCELLED,
        f"fake_evt_cancelled_{membership.pk}",
        {
            "membership_id": membership.pk,
            "subscription_reference": subscription_reference(membership.pk),
            "ended_at": ended_at.isoformat(),
        },
    )


# --- Parsing ------------------------------------------------------------------------


def _parse_datetime(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value)
    if timezone.is_naive(parsed):
        raise ValueError(f"{value!r} has no UTC offset")
    return parsed


def _parse_amount(value: str) -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValueError("expected US dollars with at most two decimal places")
    return amount


def _parse_references(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected a list of invoice item ids")
    return tuple(value)


_FIELD_PARSERS = {
    "item_references": _parse_references,
    "membership_id": int,
    "amount": _parse_amount,
    "period_start": datetime.date.fromisoformat,
    "period_end": datetime.date.fromisoformat,
    "paid_at": _parse_datetime,
    "ended_at": _parse_datetime,
}

_EVENT_CLASSES: dict[str, type[GatewayEvent]] = {
    CHECKOUT_COMPLETED: CheckoutCompleted,
    PAYMENT_SUCCEEDED: PaymentSucceeded,
    PAYMENT_FAILED: PaymentFailed,
    SUBSCRIPTION_CANCELLED: SubscriptionCancelled,
}


def _build_event(event_class: type[GatewayEvent], payload: dict) -> GatewayEvent:
    """Build `event_class` from the payload's "data", parsing each field by its name."""
    data = payload.get("data")
    if not isinstance(data, dict):
        raise GatewayError(f"Fake event {payload['id']} has no 'data' object.")
    values = {}
    for field in fields(event_class):
        name = field.name
        if name in ("event_id", "created_at"):
            continue
        if name not in data:
            if field.default is not MISSING:
                continue
            raise GatewayError(f"Fake event {payload['id']} lacks data.{name}.")
        parser = _FIELD_PARSERS.get(name, str)
        try:
            values[name] = parser(data[name])
        except (TypeError, ValueError, ArithmeticError) as error:
            raise GatewayError(
                f"Fake event {payload['id']} has an invalid data.{name} {data[name]!r}: {error}."
            ) from error
    return event_class(event_id=payload["id"], created_at=_created_at(payload), **values)


def _created_at(payload: dict) -> datetime.datetime:
    try:
        return _parse_datetime(payload["created"])
    except (KeyError, TypeError, ValueError) as error:
        raise GatewayError(
            f"Fake event {payload['id']} has a missing or invalid 'created' "
            f"{payload.get('created')!r}; use an ISO 8601 time with a UTC offset."
        ) from error


class FakeGateway(PaymentGateway):
    """The local gateway that is the default: it takes no money and calls no one."""

    name = "fake"

    def ensure_customer(self, *, member) -> CustomerRef:
        return CustomerRef(reference=customer_reference(member.pk))

    def start_payment(self, *, membership, success_url: str, cancel_url: str) -> RedirectURL:
        """Return the local pay page of `membership`, which returns to `success_url`."""
        url = reverse("billing:fake_pay", kwargs={"membership_id": membership.pk})
        return RedirectURL(url=f"{url}?{urlencode({'next': success_url})}")

    def open_self_service(self, *, member, return_url: str) -> RedirectURL:
        url = reverse("billing:fake_self_service")
        return RedirectURL(url=f"{url}?{urlencode({'next': return_url})}")

    def schedule_cancellation(self, *, membership, at: datetime.date) -> None:
        logger.info("Fake gateway: billing of membership %s would stop after %s", membership.pk, at)

    def add_invoice_item(self, *, item) -> str:
        """Hold `item` for the next invoice of a membership that has a fake subscription.

        Like Stripe, a membership that the gateway does not bill (no checkout yet, or paid
        by hand) gets nothing here, so the item waits for a manual payment.
        """
        from billing.models import GatewaySubscription

        billed = GatewaySubscription.objects.filter(
            membership_id=item.membership_id, gateway=self.name, ended_at__isnull=True
        ).exists()
        if not billed:
            return ""
        reference = invoice_item_reference(item.pk)
        logger.info(
            "Fake gateway: invoice item %s (%s) added to the next invoice of membership %s",
            reference,
            item.amount,
            item.membership_id,
        )
        return reference

    def remove_invoice_item(self, *, item) -> None:
        logger.info("Fake gateway: invoice item %s removed", item.gateway_reference)

    def verify_webhook(self, *, body: bytes, headers) -> dict:
        """Check X-Fake-Signature and return the decoded body.

        Raises WebhookVerificationError for a missing or wrong signature, and ValueError
        when the signed body is not JSON.
        """
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise WebhookVerificationError(f"The {SIGNATURE_HEADER} header is missing.")
        if not hmac.compare_digest(signature, sign_body(body)):
            raise WebhookVerificationError(
                f"The {SIGNATURE_HEADER} header does not match the body."
            )
        return json.loads(body)

    def normalize_event(self, *, payload: dict) -> GatewayEvent:
        event_type = payload.get("type", "")
        event_class = _EVENT_CLASSES.get(event_type)
        if event_class is None:
            return IgnoredEvent(
                event_id=payload["id"], created_at=_created_at(payload), event_type=event_type
            )
        return _build_event(event_class, payload)
