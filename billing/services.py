"""State changes of billing: gateway events, invoices, payments, the contract term and credit.

Each function takes keyword arguments, runs in one transaction, and returns what it changed.
A broken rule raises `BillingError` with a message staff can act on, and changes nothing.
Membership state moves only through `members.services`.

Gateway events can arrive twice, at the same moment, or out of order. Every handler locks
the membership's row before it reads anything, so events of one membership apply one at a
time. Each step is keyed so that it happens once: an invoice per membership period, a
payment per gateway payment id, a credit grant per invoice. "Today" is
`members.services.local_today()`, so a test that moves that clock moves billing's too.

The credit ledger lives in `billing.credit`, and one-off charges on the next invoice
(meeting-room overage) in `billing.charges`; their functions are re-exported here.
"""

import datetime
import logging
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from members import emails as members_emails
from members import services as members_services
from members.models import Member, Membership, Plan
from members.periods import BillingPeriod, billing_period, period_containing
from outbox.models import OutboxEmail

from . import charges, emails
from .charges import add_invoice_item, sync_invoice_item, withdraw_invoice_item
from .credit import (
    adjust_credit,
    expire_credit,
    grant_period_credit,
    refund_credit,
    spend_credit,
    to_money,
)
from .errors import BillingError, InsufficientCreditError
from .gateways import get_gateway
from .gateways.base import (
    CheckoutCompleted,
    GatewayError,
    GatewayEvent,
    IgnoredEvent,
    PaymentFailed,
    PaymentGateway,
    PaymentSucceeded,
    SubscriptionCancelled,
)
from .models import GatewayCustomer, GatewaySubscription, Invoice, Payment, WebhookEvent
from .money import format_usd

__all__ = [
    "BillingError",
    "InsufficientCreditError",
    "activate_due_memberships",
    "add_invoice_item",
    "adjust_credit",
    "apply_gateway_event",
    "apply_term_ends",
    "queue_commitment_reminders",
    "cancel_membership_with_gateway",
    "expire_credit",
    "grant_period_credit",
    "open_billing_self_service",
    "process_webhook_event",
    "record_manual_payment",
    "refund_credit",
    "spend_credit",
    "start_membership_payment",
    "store_webhook_event",
    "suspend_overdue_memberships",
    "sync_gateway_cancellation",
    "sync_invoice_item",
    "terminate_membership_early",
    "withdraw_invoice_item",
]

logger = logging.getLogger(__name__)

State = Membership.State
MANUAL_METHODS = frozenset(Payment.Method.values) - {Payment.Method.GATEWAY}
# Days before the commitment end when members get a reminder email.
COMMITMENT_REMINDER_DAYS = 30

# The membership event cause of a suspension for a payment still overdue after the grace
# period, as opposed to one made by staff.
OVERDUE_SUSPENSION_CAUSE = "grace period over"
# A processed or ignored event is final; processing it again changes nothing.
FINAL_EVENT_STATUSES = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)


def _today() -> datetime.date:
    return members_services.local_today()


def _lock_membership(membership_id: int) -> Membership:
    try:
        return (
            Membership.objects.select_for_update(of=("self",))
            .select_related("plan", "member")
            .get(pk=membership_id)
        )
    except Membership.DoesNotExist as error:
        raise BillingError(
            _("Membership %(id)s does not exist; check the membership id the event carries.")
            % {"id": membership_id}
        ) from error


# --- Stored webhook events ---------------------------------------------------------------


def store_webhook_event(
    *, gateway: str, event_id: str, event_type: str, payload: dict
) -> tuple[WebhookEvent, bool]:
    """Store a verified gateway event by its id, once; return it and whether it is new.

    A second delivery of the same id returns the stored row untouched, so a replay can
    never change what was recorded.
    """
    event_id = str(event_id).strip()
    if not event_id:
        raise BillingError(
            _("The %(gateway)s event has no id, so it cannot be stored.") % {"gateway": gateway}
        )
    # Insert first: nearly every delivery is new, so this is one INSERT where
    # get_or_create would SELECT first. A duplicate violates the unique (gateway,
    # event_id) constraint, and the stored row is read instead.
    try:
        with transaction.atomic():
            webhook_event = WebhookEvent.objects.create(
                gateway=gateway, event_id=event_id, event_type=event_type, payload=payload
            )
        created = True
    except IntegrityError:
        webhook_event = WebhookEvent.objects.filter(gateway=gateway, event_id=event_id).first()
        if webhook_event is None:
            raise  # Some other constraint failed, not the event's uniqueness.
        created = False
    logger.info(
        "Webhook event %s (%s %s, type %s) %s",
        webhook_event.pk,
        gateway,
        event_id,
        event_type,
        "stored" if created else "already stored",
    )
    return webhook_event, created


def process_webhook_event(*, webhook_event: WebhookEvent) -> WebhookEvent:
    """Apply a stored event to the domain, once, and record the outcome on its row.

    The event's row stays locked while it is applied, so two workers never apply it at the
    same time. An event already processed or ignored is returned unchanged. A failure
    rolls back everything the event changed, and the row keeps the error with status
    "failed", ready to be processed again. The error is logged, not raised.
    """
    try:
        with transaction.atomic():
            locked = WebhookEvent.objects.select_for_update().get(pk=webhook_event.pk)
            if locked.status in FINAL_EVENT_STATUSES:
                logger.info(
                    "Webhook event %s is already %s; nothing to do", locked.pk, locked.status
                )
                return locked
            event = _gateway_named(locked.gateway).normalize_event(payload=locked.payload)
            _apply_gateway_event_in_transaction(event=event, gateway=locked.gateway)
            ignored = isinstance(event, IgnoredEvent)
            locked.status = (
                WebhookEvent.Status.IGNORED if ignored else WebhookEvent.Status.PROCESSED
            )
            locked.attempts += 1
            locked.error = ""
            locked.processed_at = timezone.now()
            locked.save(update_fields=["status", "attempts", "error", "processed_at"])
    except (BillingError, GatewayError) as error:
        logger.warning("Webhook event %s failed: %s", webhook_event.pk, error)
        return _record_event_failure(webhook_event=webhook_event, error=error)
    except Exception as error:
        # Any other error is a bug or an outage; the row keeps it so staff can retry.
        logger.exception("Webhook event %s failed unexpectedly", webhook_event.pk)
        return _record_event_failure(webhook_event=webhook_event, error=error)

    logger.info("Webhook event %s (%s) %s", locked.pk, locked.event_type, locked.status)
    return locked


def process_stuck_webhook_events(
    *, older_than: datetime.timedelta = datetime.timedelta(minutes=10), limit: int = 500
) -> list[WebhookEvent]:
    """Process events still "received" some time after they arrived, oldest first.

    A webhook is acknowledged once it is stored, so the gateway does not send it again.
    If its queued task is lost (the broker restarted without persistence) or the worker
    dies before finishing it, this periodic sweep applies it. Failed events are left for
    staff, because their error needs a look.
    """
    cutoff = timezone.now() - older_than
    stuck = list(
        WebhookEvent.objects.filter(
            status=WebhookEvent.Status.RECEIVED, received_at__lt=cutoff
        ).order_by("received_at", "pk")[:limit]
    )
    if stuck:
        logger.warning("Processing %s webhook events left unprocessed", len(stuck))
    return [process_webhook_event(webhook_event=event) for event in stuck]


def _record_event_failure(*, webhook_event: WebhookEvent, error: Exception) -> WebhookEvent:
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=webhook_event.pk)
        if locked.status in FINAL_EVENT_STATUSES:
            return locked
        locked.status = WebhookEvent.Status.FAILED
        locked.attempts += 1
        locked.error = f"{type(error).__name__}: {error}"
        locked.save(update_fields=["status", "attempts", "error"])
    return locked


def _gateway_named(name: str) -> PaymentGateway:
    gateway = get_gateway()
    if gateway.name != name:
        raise BillingError(
            _(
                "The event came from the %(event_gateway)s gateway, but PAYMENT_GATEWAY is the "
                "%(configured)s gateway. Process it again with that gateway configured."
            )
            % {"event_gateway": name, "configured": gateway.name}
        )
    return gateway


def apply_gateway_event(*, event: GatewayEvent, gateway: str) -> None:
    """Apply one normalised gateway event to invoices, payments, credit and the membership."""
    with transaction.atomic():
        _apply_gateway_event_in_transaction(event=event, gateway=gateway)


def _apply_gateway_event_in_transaction(*, event: GatewayEvent, gateway: str) -> None:
    """Apply `event` inside the caller's transaction, which rolls back when this raises.

    process_webhook_event calls this directly, in the transaction that locks the event's
    row, so that no savepoint adds two round trips to every event.
    """
    handlers = {
        PaymentSucceeded: _apply_payment_succeeded,
        PaymentFailed: _apply_payment_failed,
        CheckoutCompleted: _apply_checkout_completed,
        SubscriptionCancelled: _apply_subscription_cancelled,
    }
    if isinstance(event, IgnoredEvent):
        logger.info("Gateway event %s of type %s ignored", event.event_id, event.event_type)
        return
    handler = handlers.get(type(event))
    if handler is None:
        raise BillingError(
            _("No handler for the gateway event type %(type)s.") % {"type": type(event).__name__}
        )
    handler(event, gateway)


# --- Invoices ----------------------------------------------------------------------------


def _period_for(membership: Membership, period_start: datetime.date) -> BillingPeriod:
    """Return the membership's billing period whose start is nearest `period_start`.

    A gateway may report a boundary a day off (it computes in UTC), and a period lasts at
    least 28 days, so the nearest start identifies the period.
    """
    anchor = membership.start_date
    if period_start <= anchor:
        period = billing_period(anchor, 1)
    else:
        period = period_containing(anchor, period_start)
        following = billing_period(anchor, period.number + 1)
        if abs((following.start - period_start).days) < abs((period.start - period_start).days):
            period = following
    if period.start != period_start:
        logger.warning(
            "Membership %s: gateway period starting %s matched to period %s (%s to %s)",
            membership.pk,
            period_start,
            period.number,
            period.start,
            period.end,
        )
    return period


def _find_period_invoice(
    *, membership: Membership, gateway: str, reference: str, period: BillingPeriod
) -> Invoice | None:
    """Find the invoice by the gateway's reference, else by the membership's period number."""
    if reference:
        invoice = Invoice.objects.filter(gateway=gateway, gateway_reference=reference).first()
        if invoice is not None:
            if invoice.membership_id != membership.pk:
                raise BillingError(
                    _(
                        "The gateway invoice %(reference)s belongs to membership %(owner)s, "
                        "not to membership %(membership)s named by the event."
                    )
                    % {
                        "reference": reference,
                        "owner": invoice.membership_id,
                        "membership": membership.pk,
                    }
                )
            return invoice
    return Invoice.objects.filter(
        membership=membership, kind=Invoice.Kind.PERIOD, period_number=period.number
    ).first()


def _invoice_for_event(
    *,
    membership: Membership,
    gateway: str,
    reference: str,
    period_start: datetime.date,
    amount: Decimal,
    hosted_url: str,
    item_references: tuple[str, ...] = (),
) -> Invoice:
    """Return the period invoice a gateway event is about, creating it open when missing.

    An invoice found by period without a gateway reference (for example one created by a
    failure event that carried none) takes the event's reference and page. A new
    invoice is due the monthly price plus the invoice items the gateway lists on it,
    which are attached to it.
    """
    period = _period_for(membership, period_start)
    invoice = _find_period_invoice(
        membership=membership, gateway=gateway, reference=reference, period=period
    )
    items = charges.items_billed_by_gateway(
        membership=membership, gateway=gateway, references=item_references
    )
    amount = to_money(amount, name=_("invoice amount"))
    expected = (
        invoice.amount if invoice is not None else membership.monthly_price + charges.total(items)
    )
    if amount != expected:
        # A different sum means a changed price, a coupon or a tampered setup at the
        # gateway; staff decide, and nothing is applied until they do.
        raise BillingError(
            _(
                "The gateway reports %(amount)s for period %(period)s of membership %(id)s, "
                "but %(expected)s is due. Check the price at the gateway, then record the "
                "payment by hand or process the event again."
            )
            % {
                "amount": format_usd(amount),
                "period": period.number,
                "id": membership.pk,
                "expected": format_usd(expected),
            }
        )
    if invoice is None:
        invoice = Invoice.objects.create(
            membership=membership,
            kind=Invoice.Kind.PERIOD,
            period_number=period.number,
            period_start=period.start,
            period_end=period.end,
            amount=amount,
            gateway=gateway if reference else "",
            gateway_reference=reference,
            hosted_url=hosted_url,
        )
        logger.info(
            "Invoice %s created for membership %s period %s (%s)",
            invoice.pk,
            membership.pk,
            period.number,
            reference or "no gateway reference",
        )
        charges.attach_items(invoice=invoice, items=items)
        return invoice

    changed = []
    if reference and not invoice.gateway_reference:
        invoice.gateway, invoice.gateway_reference = gateway, reference
        changed += ["gateway", "gateway_reference"]
    elif reference and invoice.gateway_reference != reference:
        logger.warning(
            "Invoice %s of membership %s has gateway reference %s; event names %s for the "
            "same period",
            invoice.pk,
            membership.pk,
            invoice.gateway_reference,
            reference,
        )
    if hosted_url and invoice.hosted_url != hosted_url:
        invoice.hosted_url = hosted_url
        changed.append("hosted_url")
    if changed:
        invoice.save(update_fields=[*changed, "updated_at"])
    charges.attach_items(invoice=invoice, items=items)
    return invoice


def _next_period_invoice(membership: Membership) -> Invoice:
    """Return the oldest open invoice of the membership, else a new one for the next period.

    A new invoice bills the monthly price and every invoice item waiting for it.
    """
    invoice = (
        Invoice.objects.filter(membership=membership, status=Invoice.Status.OPEN)
        .order_by("period_start", "id")
        .first()
    )
    if invoice is not None:
        return invoice
    last = Invoice.objects.filter(membership=membership, kind=Invoice.Kind.PERIOD).aggregate(
        last=Max("period_number")
    )["last"]
    period = billing_period(membership.start_date, (last or 0) + 1)
    items = charges.pending_items(membership)
    invoice = Invoice.objects.create(
        membership=membership,
        kind=Invoice.Kind.PERIOD,
        period_number=period.number,
        period_start=period.start,
        period_end=period.end,
        amount=membership.monthly_price + charges.total(items),
    )
    logger.info(
        "Invoice %s created for membership %s period %s with %s invoice item(s)",
        invoice.pk,
        membership.pk,
        period.number,
        len(items),
    )
    charges.attach_items(invoice=invoice, items=items)
    return invoice


# --- Payments ------------------------------------------------------------------------------


def _settle_invoice(
    *,
    membership: Membership,
    invoice: Invoice,
    amount: Decimal,
    method: str,
    reference: str,
    gateway: str,
    received_at: datetime.datetime,
    actor: AbstractBaseUser | None,
    note: str,
) -> Payment:
    """Record a payment of `invoice`, mark it paid, grant its credit and move the membership.

    The member gets a receipt by email. The caller holds the membership's row lock. A
    gateway payment already recorded under the same reference is returned as it is, with
    nothing else changed.
    """
    if method == Payment.Method.GATEWAY:
        existing = Payment.objects.filter(
            method=Payment.Method.GATEWAY, gateway=gateway, reference=reference
        ).first()
        if existing is not None:
            logger.info(
                "Payment %s (%s %s) already recorded for invoice %s",
                existing.pk,
                gateway,
                reference,
                existing.invoice_id,
            )
            return existing

    payment = Payment.objects.create(
        membership=membership,
        invoice=invoice,
        amount=amount,
        method=method,
        reference=reference,
        gateway=gateway,
        received_at=received_at,
        recorded_by=actor,
        note=note,
    )
    if invoice.status == Invoice.Status.PAID:
        logger.warning(
            "Invoice %s of membership %s was already paid; payment %s of %s is extra and may "
            "need a refund",
            invoice.pk,
            membership.pk,
            payment.pk,
            amount,
        )
    else:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = received_at
        invoice.save(update_fields=["status", "paid_at", "updated_at"])
        logger.info(
            "Invoice %s of membership %s paid by payment %s (%s)",
            invoice.pk,
            membership.pk,
            payment.pk,
            method,
        )

    grant_period_credit(invoice=invoice)
    emails.queue_payment_received(payment=payment, invoice=invoice, membership=membership)
    _move_membership_after_payment(membership=membership, invoice=invoice, actor=actor)
    return payment


def _move_membership_after_payment(
    *, membership: Membership, invoice: Invoice, actor: AbstractBaseUser | None
) -> None:
    """Activate or reinstate the membership that `invoice` was paid for.

    A pending membership activates when its start date has come; one that starts later
    stays pending until `activate_due_memberships` runs on its start date. A past-due or
    suspended membership is reinstated unless an invoice for a later period is still
    open: that payment arrived late and does not clear the newer debt.
    """
    if invoice.kind != Invoice.Kind.PERIOD:
        return
    if membership.state == State.PENDING:
        if membership.start_date <= _today():
            members_services.activate_membership(
                membership=membership, actor=actor, cause="first payment"
            )
        else:
            logger.info(
                "Membership %s paid; it activates on its start date %s",
                membership.pk,
                membership.start_date,
            )
    elif membership.state in (State.PAST_DUE, State.SUSPENDED):
        newer_open = Invoice.objects.filter(
            membership=membership,
            kind=Invoice.Kind.PERIOD,
            status=Invoice.Status.OPEN,
            period_number__gt=invoice.period_number,
        ).exists()
        if newer_open:
            logger.info(
                "Membership %s stays %s: invoice %s is paid, but a later period is still open",
                membership.pk,
                membership.state,
                invoice.pk,
            )
            return
        members_services.reinstate_membership(
            membership=membership, actor=actor, cause="payment recorded"
        )


def _apply_payment_succeeded(event: PaymentSucceeded, gateway: str) -> None:
    membership = _lock_membership(event.membership_id)
    invoice = _invoice_for_event(
        membership=membership,
        gateway=gateway,
        reference=event.invoice_reference,
        period_start=event.period_start,
        amount=event.amount,
        hosted_url=event.hosted_url,
        item_references=event.item_references,
    )
    _settle_invoice(
        membership=membership,
        invoice=invoice,
        amount=to_money(event.amount, name=_("payment amount")),
        method=Payment.Method.GATEWAY,
        reference=event.payment_reference,
        gateway=gateway,
        received_at=event.paid_at,
        actor=None,
        note="",
    )


def _apply_payment_failed(event: PaymentFailed, gateway: str) -> None:
    """Open the period's invoice and mark an active membership past due with a grace date.

    The member gets an email with the grace date and where to pay.
    Stale failures change no state: one for a period whose invoice is paid, or for a period
    older than the latest paid one. A past-due membership keeps its first grace date.
    """
    membership = _lock_membership(event.membership_id)
    invoice = _invoice_for_event(
        membership=membership,
        gateway=gateway,
        reference=event.invoice_reference,
        period_start=event.period_start,
        amount=event.amount,
        hosted_url=event.hosted_url,
        item_references=event.item_references,
    )
    if invoice.status != Invoice.Status.OPEN:
        logger.info(
            "Payment failure for invoice %s ignored: the invoice is %s",
            invoice.pk,
            invoice.status,
        )
        return
    latest_paid = Invoice.objects.filter(
        membership=membership, kind=Invoice.Kind.PERIOD, status=Invoice.Status.PAID
    ).aggregate(latest=Max("period_number"))["latest"]
    if latest_paid is not None and latest_paid > invoice.period_number:
        logger.info(
            "Payment failure for invoice %s (period %s) ignored: period %s is already paid",
            invoice.pk,
            invoice.period_number,
            latest_paid,
        )
        return
    if membership.state != State.ACTIVE:
        logger.info(
            "Payment failure for invoice %s: membership %s stays %s",
            invoice.pk,
            membership.pk,
            membership.state,
        )
        return
    grace_until = _today() + datetime.timedelta(days=settings.CPR_GRACE_PERIOD_DAYS)
    members_services.mark_membership_past_due(
        membership=membership,
        cause="payment failed",
        reason=event.failure_message,
        grace_until=grace_until,
    )
    emails.queue_payment_failed(membership=membership, invoice=invoice, grace_until=grace_until)


def record_manual_payment(
    *,
    membership: Membership,
    amount: Decimal,
    method: str,
    reference: str,
    received_at: datetime.datetime | datetime.date,
    actor: AbstractBaseUser | None,
    note: str = "",
) -> Payment:
    """Record money staff received outside the gateway (cash, check, ATH Móvil, transfer).

    The payment pays the membership's oldest open invoice, or a new invoice for the next
    period when none is open, with the same effects as a gateway payment: activation or
    reinstatement, and the period's credit. The amount must equal the invoice's amount,
    because the ledger has no partial payments or balances carried forward. A reference is
    required except for cash, and the same method and reference cannot be recorded twice
    for a membership.
    """
    if method not in MANUAL_METHODS:
        raise BillingError(
            _("%(method)r is not a manual payment method; use one of %(methods)s.")
            % {"method": method, "methods": ", ".join(sorted(MANUAL_METHODS))}
        )
    amount = to_money(amount, name=_("payment amount"))
    if amount <= 0:
        raise BillingError(
            _("The payment amount must be more than zero, not %(amount)s.")
            % {"amount": format_usd(amount)}
        )
    reference = reference.strip()
    if not reference and method != Payment.Method.CASH:
        raise BillingError(
            _("Give the reference of the %(method)s payment (for example the check number).")
            % {"method": Payment.Method(method).label}
        )
    if isinstance(received_at, datetime.date) and not isinstance(received_at, datetime.datetime):
        # A bare date is recorded at noon, or now when noon of today has not come yet.
        noon = timezone.make_aware(datetime.datetime.combine(received_at, datetime.time(12)))
        received_at = min(noon, timezone.now())
    if timezone.localdate(received_at) > _today():
        raise BillingError(
            _("The payment date %(date)s is in the future; give the day the money arrived.")
            % {"date": timezone.localdate(received_at)}
        )

    with transaction.atomic():
        membership = _lock_membership(membership.pk)
        if (
            reference
            and Payment.objects.filter(
                membership=membership, method=method, reference__iexact=reference
            ).exists()
        ):
            raise BillingError(
                _(
                    "A %(method)s payment with reference %(reference)s is already recorded for "
                    "membership %(id)s. Check the payments before recording it again."
                )
                % {
                    "method": Payment.Method(method).label,
                    "reference": reference,
                    "id": membership.pk,
                }
            )
        has_open = Invoice.objects.filter(
            membership=membership, status=Invoice.Status.OPEN
        ).exists()
        if not membership.is_current and not has_open:
            raise BillingError(
                _(
                    "Membership %(id)s is %(state)s and has no open invoice, so there is "
                    "nothing to pay."
                )
                % {"id": membership.pk, "state": membership.get_state_display()}
            )
        invoice = _next_period_invoice(membership)
        if amount != invoice.amount:
            raise BillingError(
                _(
                    "The payment of %(amount)s does not match invoice %(invoice)s of "
                    "%(due)s. Record exactly the invoice amount."
                )
                % {
                    "amount": format_usd(amount),
                    "invoice": invoice.pk,
                    "due": format_usd(invoice.amount),
                }
            )
        payment = _settle_invoice(
            membership=membership,
            invoice=invoice,
            amount=amount,
            method=method,
            reference=reference,
            gateway="",
            received_at=received_at,
            actor=actor,
            note=note.strip(),
        )

    logger.info(
        "Manual payment %s (%s, %s) for invoice %s of membership %s recorded by user %s",
        payment.pk,
        method,
        amount,
        invoice.pk,
        membership.pk,
        getattr(actor, "pk", None),
    )
    return payment


# --- Checkout and subscriptions ----------------------------------------------------------


def _apply_checkout_completed(event: CheckoutCompleted, gateway: str) -> None:
    """Store the gateway's customer and subscription of the membership, once."""
    membership = _lock_membership(event.membership_id)

    customer = GatewayCustomer.objects.filter(
        member_id=membership.member_id, gateway=gateway
    ).first()
    if customer is None:
        customer = GatewayCustomer.objects.create(
            member_id=membership.member_id, gateway=gateway, reference=event.customer_reference
        )
        logger.info("Member %s: gateway customer %s stored", membership.member_id, customer)
    elif customer.reference != event.customer_reference:
        # The newest checkout has the card the member just entered.
        logger.warning(
            "Member %s: gateway customer changed from %s to %s",
            membership.member_id,
            customer.reference,
            event.customer_reference,
        )
        customer.reference = event.customer_reference
        customer.save(update_fields=["reference"])

    subscription = GatewaySubscription.objects.filter(membership=membership).first()
    if subscription is None:
        subscription = GatewaySubscription.objects.create(
            membership=membership, gateway=gateway, reference=event.subscription_reference
        )
        logger.info("Membership %s: gateway subscription %s stored", membership.pk, subscription)
        charges.sync_membership_items(membership=membership)
    elif subscription.reference != event.subscription_reference:
        logger.error(
            "Membership %s already has subscription %s; checkout %s created %s as well. "
            "Cancel one of them at the gateway, or the member is billed twice.",
            membership.pk,
            subscription.reference,
            event.event_id,
            event.subscription_reference,
        )


def _apply_subscription_cancelled(event: SubscriptionCancelled, gateway: str) -> None:
    """Record the end of the subscription and end or cancel the membership.

    A pending membership, or one with a cancellation scheduled, is cancelled. One past its
    commitment end ends. Before the commitment end the contract still runs, but the gateway
    no longer bills it: staff cancelled it at the gateway, or collection gave up. So the
    membership is cancelled at once with that reason, and a warning is logged for staff.
    """
    membership = _lock_membership(event.membership_id)
    ended_on = timezone.localdate(event.ended_at)

    subscription = GatewaySubscription.objects.filter(membership=membership).first()
    if subscription is None:
        subscription = GatewaySubscription.objects.create(
            membership=membership,
            gateway=gateway,
            reference=event.subscription_reference,
            ended_at=event.ended_at,
        )
    elif subscription.reference != event.subscription_reference:
        logger.warning(
            "Membership %s: subscription %s ended, but the membership is billed by %s; "
            "membership left as it is",
            membership.pk,
            event.subscription_reference,
            subscription.reference,
        )
        return
    elif subscription.ended_at is None:
        subscription.ended_at = event.ended_at
        subscription.save(update_fields=["ended_at", "updated_at"])

    if not membership.is_current:
        logger.info(
            "Membership %s is already %s; subscription end recorded",
            membership.pk,
            membership.state,
        )
        return

    cause = "subscription ended at the gateway"
    if membership.state == State.PENDING:
        members_services.cancel_membership(membership=membership, cause=cause)
    elif membership.cancel_at is not None:
        members_services.cancel_membership(
            membership=membership,
            cause=cause,
            immediately=True,
            reason=_("The cancellation scheduled for %(date)s took effect when billing ended.")
            % {"date": date_format(membership.cancel_at)},
        )
    elif ended_on >= membership.commitment_end:
        members_services.end_membership(
            membership=membership, cause=cause, end_date=max(ended_on, membership.start_date)
        )
    else:
        logger.warning(
            "Membership %s: subscription %s ended on %s, before the commitment end %s; "
            "membership cancelled",
            membership.pk,
            subscription.reference,
            ended_on,
            membership.commitment_end,
        )
        members_services.cancel_membership(
            membership=membership,
            cause=cause,
            immediately=True,
            reason=_(
                "The subscription ended at the gateway on %(date)s, before the commitment "
                "end %(end)s."
            )
            % {"date": date_format(ended_on), "end": date_format(membership.commitment_end)},
        )


def start_membership_payment(*, membership: Membership, success_url: str, cancel_url: str) -> str:
    """Return the URL where the member pays for a pending, past-due or suspended membership.

    A past-due or suspended membership whose oldest open invoice has a gateway page goes to
    that page, so the member pays the invoice that is owed rather than starting a new
    subscription.
    """
    payable = (State.PENDING, State.PAST_DUE, State.SUSPENDED)
    membership = Membership.objects.select_related("member", "plan").get(pk=membership.pk)
    if membership.state not in payable:
        raise BillingError(
            _(
                "Membership %(id)s is %(state)s; only a membership that is pending its first "
                "payment, past due or suspended can be paid online."
            )
            % {"id": membership.pk, "state": membership.get_state_display()}
        )
    if membership.state != State.PENDING:
        invoice = (
            Invoice.objects.filter(membership=membership, status=Invoice.Status.OPEN)
            .exclude(hosted_url="")
            .order_by("period_start", "id")
            .first()
        )
        if invoice is not None:
            return invoice.hosted_url
    try:
        redirect = get_gateway().start_payment(
            membership=membership, success_url=success_url, cancel_url=cancel_url
        )
    except GatewayError as error:
        logger.warning("Starting payment of membership %s failed: %s", membership.pk, error)
        # The member gets a plain message; the gateway's details go to the log for staff.
        raise BillingError(
            _(
                "The payment page could not be opened. Try again in a few minutes, or write "
                "to %(email)s if it keeps failing."
            )
            % {"email": settings.CPR_CONTACT_EMAIL}
        ) from error
    return redirect.url


def open_billing_self_service(*, member: Member, return_url: str) -> str:
    """Return the URL of the gateway page where the member updates the card and views invoices."""
    try:
        redirect = get_gateway().open_self_service(member=member, return_url=return_url)
    except GatewayError as error:
        logger.warning("Opening self-service for member %s failed: %s", member.pk, error)
        raise BillingError(
            _(
                "The billing page could not be opened. Try again in a few minutes, or write "
                "to %(email)s if it keeps failing."
            )
            % {"email": settings.CPR_CONTACT_EMAIL}
        ) from error
    return redirect.url


def _schedule_gateway_cancellation(*, membership: Membership, at: datetime.date) -> None:
    """Record that the gateway must stop billing after `at`, and tell it after commit."""
    subscription = (
        GatewaySubscription.objects.select_for_update()
        .filter(membership=membership, ended_at__isnull=True)
        .first()
    )
    if subscription is None:
        return
    subscription.cancel_at = at
    subscription.save(update_fields=["cancel_at", "updated_at"])

    from . import tasks

    transaction.on_commit(lambda: tasks.sync_gateway_cancellation.delay(subscription.pk))


def sync_gateway_cancellation(*, subscription: GatewaySubscription) -> GatewaySubscription:
    """Tell the gateway the cancellation date recorded on `subscription`.

    Safe to call again: the gateway adapter schedules with an idempotency key. Raises
    GatewayError when the gateway cannot be reached, so the task retries.
    """
    subscription = GatewaySubscription.objects.select_related("membership").get(pk=subscription.pk)
    if subscription.cancel_at is None or subscription.ended_at is not None:
        return subscription
    gateway = get_gateway()
    if gateway.name != subscription.gateway:
        logger.warning(
            "Subscription %s belongs to the %s gateway, but PAYMENT_GATEWAY is %s; "
            "cancellation not sent",
            subscription.pk,
            subscription.gateway,
            gateway.name,
        )
        return subscription
    gateway.schedule_cancellation(membership=subscription.membership, at=subscription.cancel_at)
    logger.info(
        "Cancellation of subscription %s (membership %s) at %s sent to the gateway",
        subscription.pk,
        subscription.membership_id,
        subscription.cancel_at,
    )
    return subscription


# --- Contract term ----------------------------------------------------------------------


def cancel_membership_with_gateway(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    cause: str = "",
    immediately: bool = False,
) -> Membership:
    """Cancel a membership by `members.services.cancel_membership` and stop its billing.

    The plan's policy decides the date: the commitment end when the cancellation is
    scheduled, today when it takes effect now. After commit, a task schedules the
    gateway's cancellation of the subscription for that date.
    """
    with transaction.atomic():
        cancelled = members_services.cancel_membership(
            membership=membership,
            actor=actor,
            reason=reason,
            cause=cause,
            immediately=immediately,
        )
        at = cancelled.cancel_at or cancelled.end_date
        _schedule_gateway_cancellation(membership=cancelled, at=at)
    return cancelled


def terminate_membership_early(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None,
    reason: str,
    charge: Decimal | None = None,
) -> Membership:
    """Cancel a membership today, before its commitment end, overriding the plan's policy.

    `reason` is required. A `charge` creates an open early-termination invoice covering
    the rest of the commitment. After commit, a task schedules the gateway's cancellation
    of the subscription for today.
    Returns the cancelled membership.
    """
    reason = reason.strip()
    if not reason:
        raise BillingError(
            _("Give a reason for ending membership %(id)s before its commitment end.")
            % {"id": membership.pk}
        )
    if charge is not None:
        charge = to_money(charge, name=_("early-termination charge"))
        if charge < 0:
            raise BillingError(
                _("The early-termination charge cannot be negative (%(charge)s).")
                % {"charge": format_usd(charge)}
            )
    today = _today()

    with transaction.atomic():
        locked = _lock_membership(membership.pk)
        if today >= locked.commitment_end:
            raise BillingError(
                _(
                    "The commitment of membership %(id)s ended on %(end)s, so it is not an "
                    "early termination. Cancel the membership instead."
                )
                % {"id": locked.pk, "end": date_format(locked.commitment_end)}
            )
        cancelled = members_services.cancel_membership(
            membership=locked,
            actor=actor,
            reason=reason,
            cause="early termination",
            immediately=True,
        )
        if charge:
            invoice = Invoice.objects.create(
                membership=cancelled,
                kind=Invoice.Kind.EARLY_TERMINATION,
                period_number=None,
                period_start=cancelled.end_date,
                period_end=cancelled.commitment_end,
                amount=charge,
            )
            logger.info(
                "Early-termination invoice %s of %s for membership %s",
                invoice.pk,
                charge,
                cancelled.pk,
            )
        _schedule_gateway_cancellation(membership=cancelled, at=today)
    return cancelled


def apply_term_ends(*, today: datetime.date | None = None) -> list[Membership]:
    """Apply the plan's renewal policy to memberships whose commitment end has come.

    "Renews for another term" extends the commitment by one contract length, more than
    once if runs were missed. "Ends at the end of the term" ends the membership on its
    commitment end and schedules the gateway's cancellation of the subscription.
    "Continues month to month" changes nothing. A commitment end in the past means the
    member is committed to nothing more, so a later cancellation takes effect at once.
    Memberships with a cancellation scheduled are left to
    `members.services.apply_scheduled_cancellations`, and pending ones to staff. Returns
    the memberships changed.
    """
    today = today or _today()
    due = (
        Membership.objects.filter(
            state__in=(State.ACTIVE, State.PAST_DUE, State.SUSPENDED),
            cancel_at__isnull=True,
            commitment_end__lte=today,
        )
        .exclude(plan__renewal_policy=Plan.RenewalPolicy.MONTH_TO_MONTH)
        .select_related("plan")
        .order_by("pk")
    )
    changed = []
    for membership in due:
        try:
            changed.append(_apply_term_end(membership=membership, today=today))
        except members_services.MembersError as error:
            logger.warning("Term end of membership %s not applied: %s", membership.pk, error)
    return changed


def _apply_term_end(*, membership: Membership, today: datetime.date) -> Membership:
    policy = membership.plan.renewal_policy
    with transaction.atomic():
        membership = _lock_membership(membership.pk)
        if policy == Plan.RenewalPolicy.END:
            ended = members_services.end_membership(
                membership=membership, cause="term ended", end_date=membership.commitment_end
            )
            _schedule_gateway_cancellation(membership=ended, at=ended.end_date)
            return ended
        while membership.commitment_end <= today:
            membership = members_services.renew_membership(membership=membership)
    return membership


def queue_commitment_reminders(
    *, today: datetime.date | None = None, days_ahead: int = COMMITMENT_REMINDER_DAYS
) -> list[Membership]:
    """Email members whose commitment ends within `days_ahead` days, once per commitment end.

    A membership already reminded of its current commitment end is skipped, so a run that
    was missed is caught up the next day and a repeated run sends nothing new. Pending
    memberships have not started, so they get none. Returns the memberships reminded now.
    """
    today = today or _today()
    due = (
        Membership.objects.filter(
            state__in=(State.ACTIVE, State.PAST_DUE, State.SUSPENDED),
            commitment_end__gt=today,
            commitment_end__lte=today + datetime.timedelta(days=days_ahead),
        )
        .select_related("member", "plan")
        .order_by("pk")
    )
    by_key = {members_emails.commitment_ending_key(membership): membership for membership in due}
    already = set(
        OutboxEmail.objects.filter(dedupe_key__in=by_key).values_list("dedupe_key", flat=True)
    )
    reminded = []
    for key, membership in by_key.items():
        if key in already:
            continue
        members_emails.queue_commitment_ending(membership)
        reminded.append(membership)
    if reminded:
        logger.info(
            "Commitment reminders queued for %s membership(s): %s",
            len(reminded),
            [membership.pk for membership in reminded],
        )
    return reminded


# --- Scheduled state changes ------------------------------------------------------------


def activate_due_memberships(*, today: datetime.date | None = None) -> list[Membership]:
    """Activate pending memberships that are paid and whose start date has come."""
    today = today or _today()
    due = (
        Membership.objects.filter(
            state=State.PENDING,
            start_date__lte=today,
            invoices__kind=Invoice.Kind.PERIOD,
            invoices__status=Invoice.Status.PAID,
        )
        .distinct()
        .order_by("pk")
    )
    activated = []
    for membership_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            membership = _lock_membership(membership_id)
            if membership.state != State.PENDING:
                continue
            activated.append(
                members_services.activate_membership(
                    membership=membership, cause="paid and start date reached"
                )
            )
    return activated


def suspend_overdue_memberships(*, today: datetime.date | None = None) -> list[Membership]:
    """Suspend past-due memberships whose grace period ended before `today`.

    A past-due membership without a grace date (set by hand) is left to staff.
    """
    today = today or _today()
    due = Membership.objects.filter(state=State.PAST_DUE, grace_until__lt=today).order_by("pk")
    suspended = []
    for membership_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            membership = _lock_membership(membership_id)
            if membership.state != State.PAST_DUE or not (
                membership.grace_until and membership.grace_until < today
            ):
                continue
            suspended.append(
                members_services.suspend_membership(
                    membership=membership, cause=OVERDUE_SUSPENSION_CAUSE
                )
            )
    return suspended
