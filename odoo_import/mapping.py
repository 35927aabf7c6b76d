"""The mapping of Odoo membership lines, and free members, to portal memberships.

`line_target` maps one line to the membership row it should be today, and
`choose_current` decides which of a member's rows is the current one and what becomes
of the others. Nothing here reads or writes the database.
"""

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext_noop

from billing.money import CENT
from cpr_portal.messages import Message
from members.models import Membership, Plan
from members.periods import add_months

from .parsing import months_covered
from .records import Line, Partner, state_word

State = Membership.State
ZERO = Decimal("0.00")

# The membership fields the import writes, and records in `odoo_imported`.
MEMBERSHIP_FIELDS = (
    "plan",
    "monthly_price",
    "contract_months",
    "start_date",
    "commitment_end",
    "end_date",
    "cancel_at",
    "state",
)


def stored(value):
    """Return `value` as `odoo_imported` records it: JSON that compares equal when equal."""
    if isinstance(value, Plan):
        return value.pk
    if isinstance(value, datetime.date | Decimal):
        return str(value)
    return value


# Ranks of the memberships that can be a member's current one; the lowest rank wins.
RANK_ACTIVE = 0  # paid, and its period covers today
RANK_FREE = 1  # the contact is a free member in Odoo
RANK_PAST_DUE = 2  # invoiced or waiting, and its period covers today
RANK_PAID_AHEAD = 3  # paid, and its period starts after today
RANK_PENDING = 4  # invoiced or waiting, and it starts after today


@dataclass
class Target:
    """The membership row that one Odoo record should become."""

    odoo_ref: str
    ref: str
    plan: Plan
    state: str
    start_date: datetime.date
    commitment_end: datetime.date
    contract_months: int
    monthly_price: Decimal
    end_date: datetime.date | None = None
    cancel_at: datetime.date | None = None
    rank: tuple | None = None
    reason: str = ""
    paid: bool = False
    upcoming: bool = False
    from_line: bool = True

    def make_history(self, current: "Target", reason: str) -> None:
        """Turn a would-be current membership into history, because `current` is current.

        A paid line that has started ends where `current` starts; any other line never
        took effect, so it is cancelled on its start date.
        """
        if self.paid and not self.upcoming:
            self.state = State.ENDED
            self.end_date = max(self.start_date, min(self.commitment_end, current.start_date))
        else:
            self.state = State.CANCELLED
            self.end_date = self.start_date
        self.cancel_at = None
        self.rank = None
        self.reason = f"{self.reason}; {reason}"

    def values(self) -> dict:
        return {name: stored(getattr(self, name)) for name in MEMBERSHIP_FIELDS}


def _period_text(line: Line) -> str:
    return f"{line.start} to {line.last_day or 'open end'}"


def line_target(line: Line, plan: Plan, today: datetime.date) -> Target | None:
    """Map one Odoo line to a membership row, or return None for a line Odoo counts as none.

    Paid and free lines are active while their period covers today, ended after it, and
    candidates to be the pending membership before it. Invoiced and waiting lines are
    past due while their period covers today, pending before it, and cancelled (never
    paid) after it. Canceled lines, and lines whose cancel date has come, are cancelled;
    old lines ended. A line without an end date is a monthly fee whose period never ends.
    """
    if line.last_day is not None:
        months = months_covered(line.start, line.last_day)
        commitment_end = line.last_day + datetime.timedelta(days=1)
        monthly = line.price / months
    else:
        months = plan.contract_months
        commitment_end = add_months(line.start, months)
        monthly = line.price
    price = ZERO if line.state == "free" else monthly.quantize(CENT, ROUND_HALF_UP)
    target = Target(
        odoo_ref=line.odoo_ref,
        ref=line.ref,
        plan=plan,
        state=State.PENDING,
        start_date=line.start,
        commitment_end=commitment_end,
        contract_months=months,
        monthly_price=price,
        reason=f"Odoo line {line.odoo_id}: {line.state}, {_period_text(line)}, fee {line.price}",
        paid=line.state in ("paid", "free"),
        upcoming=line.start > today,
    )
    period_over = line.last_day is not None and line.last_day < today
    if line.state == "canceled":
        target.state = State.CANCELLED
        target.end_date = _within(line.cancel_date or line.start, line)
    elif line.cancel_date is not None and line.cancel_date <= today:
        target.state = State.CANCELLED
        target.end_date = _within(line.cancel_date, line)
        target.cancel_at = line.cancel_date
    elif line.state == "old":
        target.state = State.ENDED
        target.end_date = line.last_day or line.start
    elif target.paid:
        if period_over:
            target.state = State.ENDED
            target.end_date = line.last_day
        elif target.upcoming:
            target.rank = (RANK_PAID_AHEAD, line.start.toordinal())
        else:
            target.state = State.ACTIVE
            target.rank = (RANK_ACTIVE, -line.start.toordinal())
    elif line.state in ("invoiced", "waiting"):
        if period_over:
            target.state = State.CANCELLED
            target.end_date = line.last_day
            target.reason += "; its period ended unpaid"
        elif target.upcoming:
            target.rank = (RANK_PENDING, line.start.toordinal())
        else:
            target.state = State.PAST_DUE
            target.rank = (RANK_PAST_DUE, -line.start.toordinal())
    else:
        return None
    if target.rank is not None:
        target.rank = (*target.rank, -line.odoo_id)
        target.cancel_at = line.cancel_date
    return target


def _within(day: datetime.date, line: Line) -> datetime.date:
    """Return `day` moved into the line's period."""
    day = max(day, line.start)
    return min(day, line.last_day) if line.last_day else day


def next_term_end(start: datetime.date, months: int, today: datetime.date) -> datetime.date:
    """Return the first end of a term of `months` from `start` that is after `today`."""
    terms = 1
    while add_months(start, terms * months) <= today:
        terms += 1
    return add_months(start, terms * months)


def free_target(partner: Partner, plan: Plan, start: datetime.date, today: datetime.date) -> Target:
    """Return the zero-price membership of a free member: active, or pending until `start`."""
    reason = f"Odoo partner {partner.odoo_id}: free member since {start}"
    if start > today:
        reason += "; pending until it starts"
    return Target(
        odoo_ref=f"res.partner,{partner.odoo_id}",
        ref=partner.ref,
        plan=plan,
        state=State.PENDING if start > today else State.ACTIVE,
        start_date=start,
        # A free member commits to nothing, so the term runs to the next term end.
        commitment_end=next_term_end(start, plan.contract_months, today),
        contract_months=plan.contract_months,
        monthly_price=ZERO,
        rank=(RANK_FREE, -start.toordinal(), 0),
        reason=reason,
        paid=True,
        upcoming=start > today,
        from_line=False,
    )


def describe(target: Target) -> Message:
    """Describe the membership `target` would be, for an outcome detail."""
    params = {
        "plan": target.plan.name,
        "state": state_word(target.state),
        "start": target.start_date,
        "end": target.commitment_end,
        "price": target.monthly_price,
    }
    if target.end_date and target.cancel_at:
        text = gettext_noop(
            "%(plan)s, %(state)s, %(start)s to %(end)s, $%(price)s/month, ended %(ended)s, "
            "cancels %(cancels)s"
        )
    elif target.end_date:
        text = gettext_noop(
            "%(plan)s, %(state)s, %(start)s to %(end)s, $%(price)s/month, ended %(ended)s"
        )
    elif target.cancel_at:
        text = gettext_noop(
            "%(plan)s, %(state)s, %(start)s to %(end)s, $%(price)s/month, cancels %(cancels)s"
        )
    else:
        text = gettext_noop("%(plan)s, %(state)s, %(start)s to %(end)s, $%(price)s/month")
    if target.end_date:
        params["ended"] = target.end_date
    if target.cancel_at:
        params["cancels"] = target.cancel_at
    return Message(text, **params)


def _can_renew(current: Target, upcoming: Target) -> bool:
    """Return whether `upcoming`, a paid line, extends `current` as its next term.

    As `members.services.renew_membership` does, only an active or past-due membership
    without a scheduled cancellation renews, on the same plan, and only when the
    upcoming line starts by the end of the current commitment.
    """
    return (
        current.from_line
        and current.state in (State.ACTIVE, State.PAST_DUE)
        and current.cancel_at is None
        and upcoming.plan == current.plan
        and upcoming.start_date <= current.commitment_end
    )


def choose_current(targets: list[Target]) -> tuple[Target | None, list[tuple[Target, str]]]:
    """Pick the member's current membership and decide what each other candidate becomes.

    The candidate with the lowest rank is current. A paid line that has not started yet
    is current only when nothing else is, and then it is pending. Another candidate that
    has started becomes history. One that starts later is not imported now: a paid one
    that follows the current membership on the same plan renews it (its commitment end
    moves to the end of that line), and any other waits for a run after its start.
    Returns the current target, and the later ones with the reason they wait.
    """
    candidates = sorted((target for target in targets if target.rank), key=lambda t: t.rank)
    if not candidates:
        return None, []
    current = candidates[0]
    if current.rank[0] == RANK_PAID_AHEAD:
        current.reason += (
            f"; paid, but it starts on {current.start_date}, so it is pending until then: "
            "run the import again on or after that day to make it active, or activate it "
            "in the back office"
        )
    later: list[tuple[Target, str]] = []
    for target in sorted(candidates[1:], key=lambda t: (t.start_date, t.rank)):
        if not target.upcoming:
            target.make_history(current, f"{current.ref} is the current membership")
        elif target.paid and _can_renew(current, target):
            current.commitment_end = max(current.commitment_end, target.commitment_end)
            current.reason += f"; renewed by {target.ref} until {current.commitment_end}"
            later.append(
                (
                    target,
                    f"paid renewal from {target.start_date}: recorded as the next term of "
                    f"{current.ref}, whose commitment now ends {current.commitment_end}",
                )
            )
        else:
            later.append(
                (
                    target,
                    f"it starts on {target.start_date}, after today, while {current.ref} is the "
                    "current membership; run the import again once it starts to bring it in",
                )
            )
    return current, later
