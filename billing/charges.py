"""One-off charges on a membership's next invoice: meeting-room overage and its reversal.

An `InvoiceItem` is recorded in the caller's transaction and sent to the gateway after
commit (`sync_invoice_item`, run by a Celery task with retries). The next billing-period
invoice picks up the pending items: the gateway's invoice lists the ids of the items it
billed (`billing.services` attaches those), and an invoice that staff open for a manual
payment takes every pending item and removes them at the gateway.

`billing.services` re-exports these functions; import them from there.
"""

import logging
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Membership

from .credit import to_money
from .errors import BillingError
from .gateways import get_gateway
from .models import ZERO, Invoice, InvoiceItem
from .money import format_usd

logger = logging.getLogger(__name__)

Status = InvoiceItem.Status

# Suffix of the reference of the credit that cancels an item that was already invoiced.
REVERSAL_SUFFIX = ":reversal"


def _sync_after_commit(item: InvoiceItem) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.sync_invoice_item.delay(item.pk))


def add_invoice_item(
    *,
    membership: Membership,
    amount: Decimal,
    description: str,
    reference: str,
    actor: AbstractBaseUser | None = None,
) -> InvoiceItem:
    """Charge `amount` on the membership's next invoice, once per `reference`.

    A second call with the same reference returns the stored item unchanged. Raises
    BillingError for an amount that is not positive money, an empty description or
    reference, and a membership that is not current (it gets no next invoice).
    """
    amount = to_money(amount, name=_("charge"))
    if amount <= 0:
        raise BillingError(
            _("A charge on the next invoice must be more than zero, not %(amount)s.")
            % {"amount": format_usd(amount)}
        )
    description = description.strip()
    reference = reference.strip()
    if not description or not reference:
        raise BillingError(_("Give the charge a description and a reference (what it is for)."))
    if not membership.is_current:
        raise BillingError(
            _("Membership %(id)s is %(state)s, so it has no next invoice to charge %(amount)s on.")
            % {
                "id": membership.pk,
                "state": membership.get_state_display(),
                "amount": format_usd(amount),
            }
        )

    with transaction.atomic():
        existing = InvoiceItem.objects.filter(reference=reference).first()
        if existing is not None:
            logger.info("Invoice item %s already exists for %s", existing.pk, reference)
            return existing
        item = InvoiceItem.objects.create(
            membership=membership,
            amount=amount,
            description=description,
            reference=reference,
            created_by=actor,
        )
        _sync_after_commit(item)
    logger.info(
        "Invoice item %s of %s for %s added to the next invoice of membership %s",
        item.pk,
        amount,
        reference,
        membership.pk,
    )
    return item


def withdraw_invoice_item(
    *, reference: str, actor: AbstractBaseUser | None = None
) -> InvoiceItem | None:
    """Take back the charge made under `reference`, and return the item that changed.

    A pending charge becomes void and is removed at the gateway after commit. A charge
    that is already invoiced stays on its invoice, and a credit of the same amount goes
    on the next invoice instead (the returned item). Calling it again changes nothing.
    Returns None when no charge has that reference.
    """
    reference = reference.strip()
    with transaction.atomic():
        item = (
            InvoiceItem.objects.select_for_update()
            .select_related("membership")
            .filter(reference=reference)
            .first()
        )
        if item is None:
            return None
        if item.status == Status.VOID:
            return item
        if item.status == Status.PENDING:
            item.status = Status.VOID
            item.voided_at = timezone.now()
            item.save(update_fields=["status", "voided_at", "updated_at"])
            _sync_after_commit(item)
            logger.info("Invoice item %s (%s) withdrawn before it was invoiced", item.pk, reference)
            return item
        return _reverse_invoiced_item(item=item, actor=actor)


def _reverse_invoiced_item(*, item: InvoiceItem, actor: AbstractBaseUser | None) -> InvoiceItem:
    reversal_reference = f"{item.reference}{REVERSAL_SUFFIX}"
    existing = InvoiceItem.objects.filter(reference=reversal_reference).first()
    if existing is not None:
        return existing
    reversal = InvoiceItem.objects.create(
        membership=item.membership,
        amount=-item.amount,
        description=_("Credit: %(description)s") % {"description": item.description},
        reference=reversal_reference,
        created_by=actor,
    )
    _sync_after_commit(reversal)
    # NOTE: the credit waits for the membership's next invoice; after the last one,
    # staff refund it by hand.
    logger.warning(
        "Invoice item %s (%s) was already on invoice %s; credit %s of %s added to the next "
        "invoice of membership %s",
        item.pk,
        item.reference,
        item.invoice_id,
        reversal.pk,
        reversal.amount,
        item.membership_id,
    )
    return reversal


def attach_items(*, invoice: Invoice, items: list[InvoiceItem]) -> None:
    """Record that `invoice` bills `items` (locked by the caller).

    An item that was withdrawn while the gateway had it on the invoice was charged all
    the same, so it is attached too and credited back on the next invoice.
    """
    for item in items:
        if item.invoice_id == invoice.pk:
            continue
        if item.status == Status.INVOICED:
            logger.error(
                "Invoice item %s is on invoice %s and also listed by invoice %s; check both",
                item.pk,
                item.invoice_id,
                invoice.pk,
            )
            continue
        withdrawn = item.status == Status.VOID
        item.status = Status.INVOICED
        item.invoice = invoice
        item.voided_at = None
        item.save(update_fields=["status", "invoice", "voided_at", "updated_at"])
        logger.info("Invoice item %s (%s) billed on invoice %s", item.pk, item.amount, invoice.pk)
        if withdrawn:
            _reverse_invoiced_item(item=item, actor=None)
        elif item.gateway_reference and not invoice.gateway_reference:
            # Billed by hand, so the gateway must not bill it again.
            _sync_after_commit(item)


def items_billed_by_gateway(
    *, membership: Membership, gateway: str, references
) -> list[InvoiceItem]:
    """Return and lock the membership's items that a gateway invoice lists by reference."""
    if not references:
        return []
    return list(
        InvoiceItem.objects.select_for_update()
        .filter(membership=membership, gateway=gateway, gateway_reference__in=list(references))
        .order_by("id")
    )


def pending_items(membership: Membership) -> list[InvoiceItem]:
    """Return and lock the membership's items that wait for the next invoice."""
    return list(
        InvoiceItem.objects.select_for_update()
        .filter(membership=membership, status=Status.PENDING)
        .order_by("id")
    )


def total(items) -> Decimal:
    return sum((item.amount for item in items), ZERO)


def sync_invoice_item(*, item: InvoiceItem) -> InvoiceItem:
    """Move the gateway toward the item's state: held there while pending, removed after.

    A pending item is added once (the gateway returns its id, or "" when it does not bill
    the membership, and then a later sync tries again). A void item, or one billed on an
    invoice that the gateway did not issue, is removed once. Raises GatewayError when the
    gateway fails, so the task retries, and leaves the row unchanged.
    """
    gateway = get_gateway()
    with transaction.atomic():
        item = (
            InvoiceItem.objects.select_for_update(of=("self",))
            .select_related("membership__member", "invoice")
            .get(pk=item.pk)
        )
        if item.status == Status.PENDING:
            if not item.gateway_reference:
                reference = gateway.add_invoice_item(item=item)
                if reference:
                    item.gateway = gateway.name
                    item.gateway_reference = reference
                    item.save(update_fields=["gateway", "gateway_reference", "updated_at"])
            return item

        if not item.gateway_reference or item.gateway_removed_at is not None:
            return item
        billed_by_gateway = (
            item.status == Status.INVOICED
            and item.invoice.gateway == item.gateway
            and bool(item.invoice.gateway_reference)
        )
        if billed_by_gateway:
            return item
        if item.gateway != gateway.name:
            logger.warning(
                "Invoice item %s is at the %s gateway, but PAYMENT_GATEWAY is %s; not removed",
                item.pk,
                item.gateway,
                gateway.name,
            )
            return item
        gateway.remove_invoice_item(item=item)
        item.gateway_removed_at = timezone.now()
        item.save(update_fields=["gateway_removed_at", "updated_at"])
    logger.info("Invoice item %s removed at the %s gateway", item.pk, item.gateway)
    return item


def sync_membership_items(*, membership: Membership) -> None:
    """Queue a sync of the membership's pending items that the gateway does not hold yet.

    Runs when a membership's subscription starts at the gateway, so charges made while
    nothing billed it reach its next invoice.
    """
    waiting = InvoiceItem.objects.filter(
        membership=membership, status=Status.PENDING, gateway_reference=""
    )
    for item in waiting:
        _sync_after_commit(item)
