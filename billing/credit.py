"""The meeting-room credit ledger: grants, spends, refunds, adjustments and expiry.

The ledger is append-only. A lot is an entry that adds credit: a grant or a positive
adjustment, with `lot` empty. Every entry that takes credit away or gives it back names the
lot it applies to, so a lot's remaining credit is its amount plus the entries drawn from it.
Every function that reads remaining credit and then writes locks the member's row first,
so two spends, or a spend and an expiry, never act on the same remaining amount.

`billing.services` re-exports these functions; import them from there.
"""

import datetime
import logging
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from members import services as members_services
from members.models import Member

from .errors import BillingError, InsufficientCreditError
from .models import ZERO, CreditEntry
from .money import format_usd

logger = logging.getLogger(__name__)

Kind = CreditEntry.Kind


# Amount columns have 10 digits with 2 after the point.
MAX_AMOUNT = Decimal("100000000")


def to_money(value, *, name: str) -> Decimal:
    """Return `value` as a Decimal with two places; raise BillingError for anything else.

    Floats are rejected because money in this project is never a float, and amounts with
    fractions of a cent are rejected instead of being rounded silently.
    """
    if isinstance(value, float | bool) or value is None:
        raise BillingError(
            _("The %(name)s %(value)r is not an amount of money; give a Decimal such as 25.00.")
            % {"name": name, "value": value}
        )
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as error:
        raise BillingError(
            _("The %(name)s %(value)r is not an amount of money; give a number such as 25.00.")
            % {"name": name, "value": value}
        ) from error
    if amount.is_finite() and abs(amount) >= MAX_AMOUNT:
        raise BillingError(
            _("The %(name)s %(value)s is too large; amounts must be under %(max)s.")
            % {"name": name, "value": value, "max": MAX_AMOUNT}
        )
    if not amount.is_finite() or amount != amount.quantize(ZERO):
        raise BillingError(
            _("The %(name)s %(value)s has fractions of a cent; round it to two places.")
            % {"name": name, "value": value}
        )
    return amount.quantize(ZERO)


def _positive_money(value, *, name: str) -> Decimal:
    amount = to_money(value, name=name)
    if amount <= 0:
        raise BillingError(
            _("The %(name)s must be more than zero, not %(value)s.")
            % {"name": name, "value": format_usd(amount)}
        )
    return amount


def _lock_member(member: Member) -> Member:
    return Member.objects.select_for_update().get(pk=member.pk)


def _draw(
    *,
    member: Member,
    amount: Decimal,
    kind: str,
    today: datetime.date,
    reference: str = "",
    reason: str = "",
    actor: AbstractBaseUser | None = None,
) -> list[CreditEntry]:
    """Take `amount` from the member's live lots, oldest-expiring first, one entry per lot.

    The caller holds the member's row lock. Raises InsufficientCreditError when the live
    lots together hold less than `amount`.
    """
    lots = list(CreditEntry.objects.filter(member=member).lots().live(today))
    balance = sum((lot.remaining for lot in lots), ZERO)
    if balance < amount:
        raise InsufficientCreditError(
            _(
                "Member %(member)s has %(balance)s of meeting-room credit, less than the "
                "%(amount)s requested. Use a smaller amount or add credit first."
            )
            % {"member": member.pk, "balance": format_usd(balance), "amount": format_usd(amount)},
            balance=balance,
            amount=amount,
        )

    entries = []
    left = amount
    for lot in lots:
        if left == 0:
            break
        taken = min(lot.remaining, left)
        left -= taken
        entries.append(
            CreditEntry.objects.create(
                member=member,
                kind=kind,
                amount=-taken,
                lot=lot,
                period_start=lot.period_start,
                reference=reference,
                reason=reason,
                created_by=actor,
            )
        )
    return entries


def grant_period_credit(*, invoice, today: datetime.date | None = None) -> CreditEntry | None:
    """Grant the membership's credit for the period `invoice` pays, once per invoice.

    The amount is the membership's credit snapshot. The lot expires when the period ends,
    or never when the plan lets credit roll over. Returns None, and writes nothing, when
    the grant already exists, the credit is zero, or the invoice is not for a period.
    """
    membership = invoice.membership
    if invoice.kind != invoice.Kind.PERIOD or membership.included_credit <= 0:
        return None
    if not membership.is_current:
        # Money that arrives after a cancellation buys no meeting rooms; staff refund it.
        logger.warning(
            "No credit granted for invoice %s: membership %s is %s, so the payment needs review",
            invoice.pk,
            membership.pk,
            membership.state,
        )
        return None
    # The caller holds the membership's row lock in its transaction, and no caller goes
    # on after an error here, so a savepoint would only cost two round trips.
    with transaction.atomic(savepoint=False):
        if CreditEntry.objects.filter(invoice=invoice, kind=Kind.GRANT).exists():
            return None
        expires_on = None if membership.plan.credit_rolls_over else invoice.period_end
        grant = CreditEntry.objects.create(
            member_id=membership.member_id,
            kind=Kind.GRANT,
            amount=membership.included_credit,
            period_start=invoice.period_start,
            expires_on=expires_on,
            invoice=invoice,
            reference=f"invoice:{invoice.pk}",
        )
    logger.info(
        "Credit %s granted to member %s for invoice %s (membership %s), expires %s",
        grant.amount,
        membership.member_id,
        invoice.pk,
        membership.pk,
        expires_on or "never",
    )
    return grant


def spend_credit(
    *,
    member: Member,
    amount: Decimal,
    reference: str,
    actor: AbstractBaseUser | None = None,
) -> list[CreditEntry]:
    """Spend `amount` of the member's credit for `reference` (for example "booking:42").

    Draws from live lots oldest-expiring first and writes one spend entry per lot drawn.
    Raises InsufficientCreditError naming the balance when the live credit is short, and
    BillingError when `reference` already has credit spent that was not refunded, so that
    a retried call never charges twice.
    """
    amount = _positive_money(amount, name=_("amount to spend"))
    reference = reference.strip()
    if not reference:
        raise BillingError(
            _("Give a reference for the spend (for example the booking), so it can be refunded.")
        )
    today = members_services.local_today()

    with transaction.atomic():
        member = _lock_member(member)
        outstanding = _outstanding_by_lot(member=member, reference=reference)
        if outstanding:
            raise BillingError(
                _(
                    "Member %(member)s already spent %(amount)s of credit for %(reference)s. "
                    "Refund that first, or use a new reference."
                )
                % {
                    "member": member.pk,
                    "amount": format_usd(sum(outstanding.values(), ZERO)),
                    "reference": reference,
                }
            )
        entries = _draw(
            member=member,
            amount=amount,
            kind=Kind.SPEND,
            today=today,
            reference=reference,
            actor=actor,
        )

    logger.info(
        "Member %s spent credit %s for %s from lots %s",
        member.pk,
        amount,
        reference,
        [entry.lot_id for entry in entries],
    )
    return entries


def _outstanding_by_lot(*, member: Member, reference: str) -> dict[int, Decimal]:
    """Return, per lot, the credit that spends with `reference` drew and no refund returned."""
    rows = (
        CreditEntry.objects.filter(
            member=member, reference=reference, kind__in=[Kind.SPEND, Kind.REFUND]
        )
        .values("lot_id")
        .annotate(net=Sum("amount"))
        .order_by("lot_id")
    )
    outstanding = defaultdict(lambda: ZERO)
    for row in rows:
        net = Decimal(row["net"]).quantize(ZERO)
        if net < 0:
            outstanding[row["lot_id"]] = -net
    return dict(outstanding)


def refund_credit(
    *, member: Member, reference: str, actor: AbstractBaseUser | None = None
) -> list[CreditEntry]:
    """Give back what the spends with `reference` drew, to the lots they drew it from.

    Returns the refund entries; an empty list when nothing is left to refund, so calling it
    again is harmless. Credit refunded into a lot that has already expired expires at once.
    The refund entry is followed by an expire entry for the same amount, so a refund never
    extends credit past the date of the period it was granted for.
    """
    reference = reference.strip()
    if not reference:
        raise BillingError(_("Give the reference of the spend to refund."))
    today = members_services.local_today()

    refunds = []
    with transaction.atomic():
        member = _lock_member(member)
        outstanding = _outstanding_by_lot(member=member, reference=reference)
        lots = CreditEntry.objects.in_bulk(outstanding.keys())
        for lot_id in sorted(outstanding):
            lot = lots[lot_id]
            refund = CreditEntry.objects.create(
                member=member,
                kind=Kind.REFUND,
                amount=outstanding[lot_id],
                lot=lot,
                period_start=lot.period_start,
                reference=reference,
                created_by=actor,
            )
            refunds.append(refund)
            if lot.expires_on is not None and lot.expires_on <= today:
                CreditEntry.objects.create(
                    member=member,
                    kind=Kind.EXPIRE,
                    amount=-refund.amount,
                    lot=lot,
                    period_start=lot.period_start,
                    reference=reference,
                    reason=_("Refunded after the credit expired on %(date)s.")
                    % {"date": date_format(lot.expires_on)},
                    created_by=actor,
                )
                logger.info(
                    "Member %s: refund %s for %s went to lot %s, expired on %s, and expired",
                    member.pk,
                    refund.amount,
                    reference,
                    lot.pk,
                    lot.expires_on,
                )

    if refunds:
        logger.info(
            "Member %s refunded credit %s for %s",
            member.pk,
            sum((entry.amount for entry in refunds), ZERO),
            reference,
        )
    return refunds


def adjust_credit(
    *,
    member: Member,
    amount: Decimal,
    reason: str,
    actor: AbstractBaseUser | None,
    expires_on: datetime.date | None = None,
) -> list[CreditEntry]:
    """Add or take away credit by hand, with the reason kept on the entry.

    A positive amount becomes a new lot, expiring on `expires_on` (never when empty). A
    negative amount draws from live lots the way a spend does, and raises
    InsufficientCreditError when the member has less than that.
    """
    amount = to_money(amount, name=_("adjustment"))
    reason = reason.strip()
    if not reason:
        raise BillingError(
            _("Give a reason for adjusting the credit of member %(member)s.")
            % {"member": member.pk}
        )
    if amount == 0:
        raise BillingError(_("An adjustment of $0.00 changes nothing; give a non-zero amount."))
    today = members_services.local_today()
    if expires_on is not None and expires_on <= today:
        raise BillingError(
            _(
                "The expiry date %(date)s is not after today (%(today)s), so the credit could "
                "never be used. Give a later date, or none for credit that never expires."
            )
            % {"date": date_format(expires_on), "today": date_format(today)}
        )
    if amount < 0 and expires_on is not None:
        raise BillingError(_("Only credit that is added can have an expiry date."))

    with transaction.atomic():
        member = _lock_member(member)
        if amount > 0:
            entries = [
                CreditEntry.objects.create(
                    member=member,
                    kind=Kind.ADJUST,
                    amount=amount,
                    expires_on=expires_on,
                    reason=reason,
                    created_by=actor,
                )
            ]
        else:
            entries = _draw(
                member=member,
                amount=-amount,
                kind=Kind.ADJUST,
                today=today,
                reason=reason,
                actor=actor,
            )

    logger.info(
        "Member %s credit adjusted by %s by user %s",
        member.pk,
        amount,
        getattr(actor, "pk", None),
    )
    return entries


def expire_credit(*, today: datetime.date | None = None) -> int:
    """Write an expire entry for each lot past its date with credit left; return how many.

    A lot whose `expires_on` is on or before `today` has expired. Running this again writes
    nothing new, because an expired lot has no credit left once its entry exists.
    """
    today = today or members_services.local_today()
    due = (
        CreditEntry.objects.lots()
        .with_remaining()
        .filter(expires_on__isnull=False, expires_on__lte=today, remaining__gt=0)
        .values_list("member_id", flat=True)
        .distinct()
    )
    written = 0
    for member_id in sorted(set(due)):
        written += _expire_member_lots(member_id=member_id, today=today)
    return written


def _expire_member_lots(*, member_id: int, today: datetime.date) -> int:
    with transaction.atomic():
        Member.objects.select_for_update().get(pk=member_id)
        lots = list(
            CreditEntry.objects.filter(member_id=member_id)
            .lots()
            .with_remaining()
            .filter(expires_on__isnull=False, expires_on__lte=today, remaining__gt=0)
            .order_by("expires_on", "id")
        )
        for lot in lots:
            CreditEntry.objects.create(
                member_id=member_id,
                kind=Kind.EXPIRE,
                amount=-lot.remaining,
                lot=lot,
                period_start=lot.period_start,
            )
            logger.info(
                "Member %s: credit %s of lot %s expired on %s",
                member_id,
                lot.remaining,
                lot.pk,
                lot.expires_on,
            )
    return len(lots)
