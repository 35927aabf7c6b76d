"""Read-side queries of billing that the portal and the back office share.

Each function issues a fixed number of queries whatever the size of a member's invoice
or credit history, so a long-standing member's dashboard costs what a new one's does.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Max, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from members import services as members_services
from members.models import Member, Membership, Plan
from members.periods import billing_period

from .gateways import get_gateway
from .models import MONEY, ZERO, CreditEntry, GatewayCustomer, Invoice, InvoiceItem

ONE_DAY = datetime.timedelta(days=1)

# How many invoices and credit entries the dashboard lists, newest first.
PORTAL_INVOICE_LIMIT = 24
PORTAL_CREDIT_HISTORY_LIMIT = 20

# Memberships in these states can be paid online from the portal.
# Suspended members pay too, because paying reinstates them.
PAYABLE_STATES = (
    Membership.State.PENDING,
    Membership.State.PAST_DUE,
    Membership.State.SUSPENDED,
)


def last_day_before(day: datetime.date | None) -> datetime.date | None:
    """Return the day before `day`: the last day of a period that ends (exclusive) on `day`."""
    return day - ONE_DAY if day is not None else None


def safe_link(url: str) -> str:
    """Return `url` when it is an http(s) address, else "".

    Hosted invoice URLs arrive in gateway payloads, and a page must never render a
    `javascript:` or other scheme from there as a link.
    """
    return url if url.startswith(("https://", "http://")) else ""


# --- Next payment --------------------------------------------------------------------------


@dataclass(frozen=True)
class NextPayment:
    """The next payment of a membership: its amount, the period it covers and its due date.

    `invoice` is the open invoice being asked for, or None when the next period has no
    invoice yet. `period_end` is the first day after the period, as on invoices.
    """

    amount: Decimal
    period_start: datetime.date
    period_end: datetime.date
    invoice: Invoice | None = None
    #: The part of `amount` that is one-off charges (room overage) waiting for the invoice.
    items_amount: Decimal = ZERO

    @property
    def due_on(self) -> datetime.date:
        return self.period_start


def next_payment(membership: Membership) -> NextPayment | None:
    """Return the next payment of a current membership, or None when nothing more is billed.

    Follows the order in which `billing.services.record_manual_payment` settles invoices.
    The oldest open invoice comes first, at its own amount. Without one, the next payment
    is for the period after the last invoiced one (period 1 when there is none), at the
    signed monthly price plus the invoice items waiting for it (room overage), with its
    dates from `members.periods`. No new period is billed from a scheduled cancellation
    or end date on, or after the commitment end of a plan that does not renew. Reads
    `membership.plan`. Issues one query when an invoice is open, three otherwise.
    """
    if not membership.is_current:
        return None
    open_invoices = membership.invoices.filter(status=Invoice.Status.OPEN)
    open_invoice = open_invoices.order_by("period_start", "id").first()
    if open_invoice is not None:
        return NextPayment(
            amount=open_invoice.amount,
            period_start=open_invoice.period_start,
            period_end=open_invoice.period_end,
            invoice=open_invoice,
        )

    last_number = membership.invoices.filter(kind=Invoice.Kind.PERIOD).aggregate(
        number=Max("period_number")
    )["number"]
    period = billing_period(membership.start_date, (last_number or 0) + 1)
    stops_on = [day for day in (membership.cancel_at, membership.end_date) if day is not None]
    if membership.plan.renewal_policy == Plan.RenewalPolicy.END:
        stops_on.append(membership.commitment_end)
    if any(period.start >= day for day in stops_on):
        return None
    items = membership.invoice_items.filter(status=InvoiceItem.Status.PENDING).aggregate(
        total=Coalesce(Sum("amount"), Value(ZERO), output_field=MONEY)
    )["total"]
    return NextPayment(
        amount=membership.monthly_price + items,
        period_start=period.start,
        period_end=period.end,
        items_amount=items,
    )


# --- Invoices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice as shown to the member: the period's first and last day, and a safe link."""

    invoice: Invoice
    link: str

    @property
    def period_last_day(self) -> datetime.date:
        return last_day_before(self.invoice.period_end)


def member_invoices(member: Member) -> QuerySet[Invoice]:
    """Return the invoices of all the member's memberships, newest period first."""
    return Invoice.objects.filter(membership__member=member).order_by(
        "-period_start", "-period_number", "-id"
    )


def invoice_lines(invoices) -> list[InvoiceLine]:
    return [
        InvoiceLine(invoice=invoice, link=safe_link(invoice.hosted_url)) for invoice in invoices
    ]


# --- Credit ledger -------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditLot:
    """A grant or positive adjustment that still has credit left and has not expired."""

    entry: CreditEntry
    remaining: Decimal

    @property
    def expires_on(self) -> datetime.date | None:
        return self.entry.expires_on

    @property
    def valid_until(self) -> datetime.date | None:
        """The last day the lot can be spent; `expires_on` is the first day it cannot."""
        return last_day_before(self.entry.expires_on)


def credit_balance(member: Member, *, today: datetime.date | None = None) -> Decimal:
    """Return the credit the member can spend on `today` (1 query).

    The balance is the sum of the ledger entries, leaving out lots past their expiry date
    that the expiry task has not written off yet (see `CreditEntryQuerySet.balance`).
    """
    return CreditEntry.objects.balance(member=member, today=today or members_services.local_today())


def live_credit_lots(member: Member, *, today: datetime.date | None = None) -> list[CreditLot]:
    """Return the member's lots with credit left on `today`, soonest expiry first (1 query)."""
    lots = (
        CreditEntry.objects.filter(member=member)
        .lots()
        .live(today or members_services.local_today())
    )
    return [CreditLot(entry=lot, remaining=lot.remaining) for lot in lots]


@dataclass(frozen=True)
class CreditLine:
    """One ledger entry as shown to the member, with a lot's last day to spend it."""

    entry: CreditEntry

    @property
    def valid_until(self) -> datetime.date | None:
        """The last day a grant or positive adjustment can be spent; None for other entries."""
        if self.entry.lot_id is not None or self.entry.amount <= 0:
            return None
        return last_day_before(self.entry.expires_on)


def credit_history(member: Member) -> QuerySet[CreditEntry]:
    """Return the member's ledger entries, newest first."""
    return CreditEntry.objects.filter(member=member).order_by("-created_at", "-id")


# --- Member portal -------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalBilling:
    """Everything the dashboard's payments and credit sections show for one member."""

    next_payment: NextPayment | None
    invoices: list[InvoiceLine]
    more_invoices: bool
    can_pay: bool
    can_manage_card: bool
    credit_balance: Decimal
    credit_lots: list[CreditLot] = field(default_factory=list)
    credit_history: list[CreditLine] = field(default_factory=list)
    more_credit_history: bool = False


def _first(items: list, limit: int) -> tuple[list, bool]:
    """Split a list read with `limit + 1` rows into the first `limit` and whether more exist."""
    return items[:limit], len(items) > limit


def portal_billing(
    member: Member, membership: Membership | None, *, today: datetime.date | None = None
) -> PortalBilling:
    """Load the dashboard's billing data for `member` in a fixed number of queries.

    Five queries without a current membership and six to eight with one (see
    `next_payment`), whatever the number of invoices and ledger entries.

    `membership` is the member's current membership (None when there is none), with its
    plan loaded. Every query filters on `member`, so nothing of another member is read.
    """
    invoices, more_invoices = _first(
        list(member_invoices(member)[: PORTAL_INVOICE_LIMIT + 1]), PORTAL_INVOICE_LIMIT
    )
    history, more_history = _first(
        list(credit_history(member)[: PORTAL_CREDIT_HISTORY_LIMIT + 1]),
        PORTAL_CREDIT_HISTORY_LIMIT,
    )

    upcoming = next_payment(membership) if membership is not None else None
    has_customer = GatewayCustomer.objects.filter(
        member=member, gateway=get_gateway().name
    ).exists()
    return PortalBilling(
        next_payment=upcoming,
        invoices=invoice_lines(invoices),
        more_invoices=more_invoices,
        can_pay=membership is not None and membership.state in PAYABLE_STATES,
        can_manage_card=has_customer,
        credit_balance=credit_balance(member, today=today),
        credit_lots=live_credit_lots(member, today=today),
        credit_history=[CreditLine(entry=entry) for entry in history],
        more_credit_history=more_history,
    )
