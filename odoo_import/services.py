"""Writes of the Odoo import: plans, members, memberships and access keys.

`run_import` takes the records of a source and brings them into the portal. It sends no
email, makes no payment gateway call and no lock system call:

- memberships are written as rows with their `MembershipEvent`, not through the lifecycle
  services, so `members.events.membership_changed` (which makes the access app sync
  keys) is never sent;
- access keys are issued and recomputed with `queue_sync=False`, so they stay pending
  and the periodic reconcile pushes them to the lock system later.

Every row written remembers its Odoo record (`Member.odoo_partner_id`,
`Membership.odoo_ref`), so a second run finds it again and updates only what changed.
"""

import datetime
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import DataError, IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from access import services as access_services
from access.models import AccessEvent, AccessKey
from members import services as members_services
from members.models import Member, Membership, MembershipEvent, Plan
from members.periods import add_months

from .parsing import months_covered
from .records import ImportReport, Line, Outcome, Partner, Product, prepare
from .sources import OdooData

logger = logging.getLogger(__name__)

State = Membership.State
ZERO = Decimal("0.00")
CENT = Decimal("0.01")
IMPORT_CAUSE = "imported from Odoo"
UPDATE_CAUSE = "updated from Odoo"


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False
    batch_size: int = 200
    key_kind: str = AccessKey.Kind.FOB


class PartnerConflict(Exception):
    """The partner cannot become a member; the message states why and what to fix."""


def run_import(
    *,
    data: OdooData,
    options: ImportOptions,
    report: ImportReport,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `data` and return `report` with an outcome for every record.

    Each batch of `options.batch_size` partners is committed on its own, so an
    interrupted run keeps the finished batches and can be run again. A dry run does the
    same work inside one transaction that is rolled back at the end, so its report
    matches what a real run would do. `on_batch` is called with the number of partners
    in each finished batch.
    """
    report.warnings.extend(data.warnings)
    logger.info("Odoo import from %s started (dry run: %s)", data.source, options.dry_run)
    outer = transaction.atomic() if options.dry_run else nullcontext()
    with outer:
        prepared = prepare(data, report)
        plans = import_plans(products=prepared.products, report=report)
        context = _Context(
            plans=plans,
            plans_by_name=_plans_by_name(),
            today=members_services.local_today(),
            now=timezone.now(),
            key_kind=options.key_kind,
        )
        partners = prepared.partners
        for start in range(0, len(partners), options.batch_size):
            batch = partners[start : start + options.batch_size]
            with transaction.atomic():
                for partner in batch:
                    report.extend(_import_partner_isolated(partner, context))
            if on_batch:
                on_batch(len(batch))
        if options.dry_run:
            transaction.set_rollback(True)
    logger.info(
        "Odoo import from %s finished (dry run: %s): %s",
        data.source,
        options.dry_run,
        ", ".join(f"{entity} {verb} {count}" for (entity, verb), count in report.counts.items()),
    )
    return report


# --- Plans --------------------------------------------------------------------------------


def _plans_by_name() -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    for plan in Plan.objects.order_by("pk"):
        plans.setdefault(plan.name.strip().lower(), plan)
    return plans


def _unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "odoo-plan"
    slug = base
    suffix = 1
    while Plan.objects.filter(slug=slug).exists():
        suffix += 1
        slug = f"{base}-{suffix}"
    return slug


def import_plans(*, products: list[Product], report: ImportReport) -> dict:
    """Match each membership product to a plan by name (ignoring case), or create the plan.

    A created plan is inactive and not public, for staff to review. Its monthly price is
    the product's list price divided by the months of the product's membership period, or
    the list price itself when the product has no period. It includes no meeting-room
    credit.
    Returns the plans by product id.
    """
    plans: dict = {}
    with transaction.atomic():
        by_name = _plans_by_name()
        for product in products:
            plan = by_name.get(product.name.lower())
            if plan is not None:
                plans[product.key] = plan
                report.add(
                    "plan", "unchanged", product.ref, f"matches plan {plan.pk} {plan.name!r}"
                )
                continue
            months = product.months or Plan._meta.get_field("contract_months").default
            monthly = product.list_price
            if product.months:
                monthly = (product.list_price / product.months).quantize(CENT, ROUND_HALF_UP)
            plan = Plan.objects.create(
                name=product.name,
                slug=_unique_slug(product.name),
                monthly_price=monthly,
                contract_months=months,
                included_credit=ZERO,
                is_active=False,
                is_public=False,
                description=(
                    f"Created by the Odoo import from {product.ref}. Review the price, contract "
                    "length and meeting-room credit before making it active."
                ),
            )
            by_name[product.name.lower()] = plan
            plans[product.key] = plan
            report.add(
                "plan",
                "created",
                product.ref,
                f"new inactive plan {plan.name!r} at ${monthly}/month, {months} months",
            )
    return plans


# --- Partners -----------------------------------------------------------------------------


@dataclass
class _Context:
    plans: dict
    plans_by_name: dict
    today: datetime.date
    now: datetime.datetime
    key_kind: str


def _import_partner_isolated(partner: Partner, context: _Context) -> list[Outcome]:
    """Import one partner in a savepoint; a conflict undoes only that partner's writes."""
    outcomes: list[Outcome] = []
    try:
        with transaction.atomic():
            _import_partner(partner, context, outcomes)
    except PartnerConflict as conflict:
        reason = str(conflict)
    except (IntegrityError, DataError) as error:
        logger.exception("The database rejected the import of Odoo %s", partner.ref)
        reason = f"the database rejected the import: {error}".strip()
    else:
        return outcomes
    skipped = [
        Outcome("membership", "skipped", line.ref, f"its {partner.ref} is not imported")
        for line in partner.lines
    ]
    return [Outcome("member", "conflict", partner.ref, reason), *skipped]


def _import_partner(partner: Partner, context: _Context, outcomes: list[Outcome]) -> None:
    member = _upsert_member(partner, outcomes)
    memberships_changed = _import_memberships(member, partner, context, outcomes)
    _import_keys(member, partner, context, outcomes, memberships_changed)


# --- Members ------------------------------------------------------------------------------


def _member_since(partner: Partner) -> datetime.date | None:
    starts = [line.start for line in partner.lines if line.state != "canceled"]
    candidates = [partner.start_date, partner.membership_start, *starts]
    dates = [date for date in candidates if date is not None]
    return min(dates) if dates else None


def _upsert_member(partner: Partner, outcomes: list[Outcome]) -> Member:
    """Find the partner's member by Odoo id, then by email ignoring case, or create one.

    Empty Odoo values never clear what the portal holds, and an email that differs only
    in letter case is left as it is.
    """
    member = Member.objects.select_for_update().filter(odoo_partner_id=partner.odoo_id).first()
    if member is None:
        member = Member.objects.select_for_update().filter(email__iexact=partner.email).first()
        if member is not None and member.odoo_partner_id is not None:
            raise PartnerConflict(
                f"the email {partner.email} belongs to member {member.pk}, imported from "
                f"partner {member.odoo_partner_id}; merge the two contacts in Odoo"
            )
    elif member.email.lower() != partner.email.lower():
        other = Member.objects.filter(email__iexact=partner.email).exclude(pk=member.pk).first()
        if other is not None:
            raise PartnerConflict(
                f"the new email {partner.email} belongs to member {other.pk}; give the contact "
                "another email in Odoo or merge the two members"
            )
        if member.user_id is not None:
            # The login signs in with the member's email, so only the back office, which
            # moves the login along, may change it.
            raise PartnerConflict(
                f"member {member.pk} signs in as {member.email}, and Odoo now has "
                f"{partner.email}; change the email on the member's page in the back office"
            )

    since = _member_since(partner)
    values = {
        "first_name": partner.first_name,
        "last_name": partner.last_name,
        "email": partner.email,
        "phone": partner.phone,
        "company": partner.company,
    }
    if member is None:
        member = Member.objects.create(
            **values, member_since=since, odoo_partner_id=partner.odoo_id
        )
        outcomes.append(
            Outcome(
                "member",
                "created",
                partner.ref,
                f"new member {member.full_name} <{member.email}>",
            )
        )
        logger.debug("Member %s created from Odoo %s", member.pk, partner.ref)
        return member

    changes = {}
    for name, value in values.items():
        current = getattr(member, name)
        if not value or current == value:
            continue
        if name == "email" and current.lower() == value.lower():
            continue
        changes[name] = (current, value)
    if since is not None and (member.member_since is None or since < member.member_since):
        changes["member_since"] = (member.member_since, since)
    if member.odoo_partner_id != partner.odoo_id:
        changes["odoo_partner_id"] = (member.odoo_partner_id, partner.odoo_id)

    if not changes:
        outcomes.append(Outcome("member", "unchanged", partner.ref, f"member {member.pk}"))
        return member
    for name, (_old, new) in changes.items():
        setattr(member, name, new)
    member.save(update_fields=[*changes, "updated_at"])
    described = ", ".join(f"{name} {old!r} → {new!r}" for name, (old, new) in changes.items())
    if "odoo_partner_id" in changes and changes["odoo_partner_id"][0] is None:
        described = f"linked by email; {described}"
    outcomes.append(Outcome("member", "updated", partner.ref, f"member {member.pk}: {described}"))
    logger.debug("Member %s updated from Odoo %s: %s", member.pk, partner.ref, ", ".join(changes))
    return member


# --- Memberships --------------------------------------------------------------------------

# Ranks of the memberships that can be a member's current one; the lowest rank wins.
RANK_ACTIVE = 0  # paid, and its period covers today
RANK_FREE = 1  # the contact is a free member in Odoo
RANK_PAID_AHEAD = 2  # paid, and its period starts after today
RANK_PAST_DUE = 3  # invoiced or waiting, and its start date has passed
RANK_PENDING = 4  # invoiced or waiting, and it starts after today


@dataclass
class _Target:
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

    def make_history(self, today: datetime.date, reason: str) -> None:
        """Turn a would-be current membership into history: ended if paid, else cancelled."""
        paid = self.state == State.ACTIVE
        self.state = State.ENDED if paid else State.CANCELLED
        self.end_date = max(self.start_date, min(self.commitment_end, today))
        self.cancel_at = None
        self.rank = None
        self.reason = f"{self.reason}; {reason}"


def _period_text(line: Line) -> str:
    return f"{line.start} to {line.last_day or 'open end'}"


def _line_target(line: Line, plan: Plan, today: datetime.date) -> _Target | None:
    """Map one Odoo line to a membership row, or return None for a line Odoo counts as none.

    Paid (and free) lines are active while their period covers today, and ended after it.
    Invoiced and waiting lines are pending before their start date, and past due from it.
    Canceled lines, and lines whose cancel date has come, are cancelled. Old lines ended.
    """
    if line.last_day is not None:
        months = months_covered(line.start, line.last_day)
        commitment_end = line.last_day + datetime.timedelta(days=1)
    else:
        months = plan.contract_months
        commitment_end = add_months(line.start, months)
    price = ZERO if line.state == "free" else (line.price / months).quantize(CENT, ROUND_HALF_UP)
    target = _Target(
        odoo_ref=line.odoo_ref,
        ref=line.ref,
        plan=plan,
        state=State.PENDING,
        start_date=line.start,
        commitment_end=commitment_end,
        contract_months=months,
        monthly_price=price,
        reason=f"Odoo line {line.odoo_id}: {line.state}, {_period_text(line)}, fee {line.price}",
    )
    history_end = max(line.start, min(line.last_day or today, today))
    if line.state == "canceled" or (line.cancel_date and line.cancel_date <= today):
        target.state = State.CANCELLED
        target.end_date = max(line.start, line.cancel_date or history_end)
    elif line.state == "old":
        target.state = State.ENDED
        target.end_date = history_end
    elif line.state in ("paid", "free"):
        if line.last_day is not None and line.last_day < today:
            target.state = State.ENDED
            target.end_date = line.last_day
        else:
            target.state = State.ACTIVE
            ahead = line.start > today
            target.rank = (RANK_PAID_AHEAD if ahead else RANK_ACTIVE, -line.start.toordinal())
    elif line.state in ("invoiced", "waiting"):
        if line.start > today:
            target.state = State.PENDING
            target.rank = (RANK_PENDING, line.start.toordinal())
        else:
            target.state = State.PAST_DUE
            target.rank = (RANK_PAST_DUE, -line.start.toordinal())
    else:
        return None
    if target.rank is not None:
        target.rank = (*target.rank, -line.odoo_id)
        if line.cancel_date is not None:
            target.cancel_at = line.cancel_date
    return target


def _free_target(partner: Partner, context: _Context, outcomes: list[Outcome]) -> _Target | None:
    """Return the zero-price active membership of a free member, or None with the reason."""
    plan = context.plans_by_name.get(partner.membership_type.lower())
    if plan is None and partner.lines:
        plan = context.plans[partner.lines[-1].product.key]
    if plan is None:
        outcomes.append(
            Outcome(
                "membership",
                "conflict",
                partner.ref,
                "the contact is a free member, but its membership type "
                f"{partner.membership_type!r} names no plan and it has no membership line; "
                "set the membership type to a plan name in Odoo",
            )
        )
        return None
    starts = [line.start for line in partner.lines]
    start = partner.start_date or partner.membership_start or (min(starts) if starts else None)
    if start is None:
        outcomes.append(
            Outcome(
                "membership",
                "conflict",
                partner.ref,
                "the contact is a free member without a start date; set the start date "
                "(or the membership start) in Odoo",
            )
        )
        return None
    return _Target(
        odoo_ref=f"res.partner,{partner.odoo_id}",
        ref=partner.ref,
        plan=plan,
        state=State.ACTIVE,
        start_date=start,
        commitment_end=add_months(start, plan.contract_months),
        contract_months=plan.contract_months,
        monthly_price=ZERO,
        rank=(RANK_FREE, -start.toordinal(), 0),
        reason=f"Odoo partner {partner.odoo_id}: free member since {start}",
    )


def _describe(target: _Target) -> str:
    text = (
        f"{target.plan.name}, {target.state}, {target.start_date} to {target.commitment_end}, "
        f"${target.monthly_price}/month"
    )
    if target.end_date:
        text += f", ended {target.end_date}"
    if target.cancel_at:
        text += f", cancels {target.cancel_at}"
    return text


def _import_memberships(
    member: Member, partner: Partner, context: _Context, outcomes: list[Outcome]
) -> bool:
    """Create or update the member's imported memberships; return whether any row changed.

    At most one becomes current: the one with the lowest rank. Every other line becomes
    history, and those rows are written first, so the database never contains two current
    memberships of one member.
    """
    targets: list[_Target] = []
    for line in partner.lines:
        target = _line_target(line, context.plans[line.product.key], context.today)
        if target is None:
            outcomes.append(
                Outcome(
                    "membership",
                    "skipped",
                    line.ref,
                    "Odoo counts the line as no membership (state none)",
                )
            )
            continue
        targets.append(target)

    has_active = any(target.rank and target.rank[0] == RANK_ACTIVE for target in targets)
    free_ref = f"res.partner,{partner.odoo_id}"
    if (partner.free or partner.state == "free") and not has_active:
        free = _free_target(partner, context, outcomes)
        if free is not None:
            targets.append(free)

    candidates = sorted((target for target in targets if target.rank), key=lambda t: t.rank)
    current = candidates[0] if candidates else None
    for target in candidates[1:]:
        target.make_history(context.today, f"{current.ref} is the current membership")

    refs = [target.odoo_ref for target in targets] + [free_ref]
    existing = {
        row.odoo_ref: row
        for row in Membership.objects.select_for_update().filter(odoo_ref__in=refs)
    }
    changed = False
    for target in targets:
        if target is current:
            continue
        changed |= _write_target(member, target, existing.get(target.odoo_ref), context, outcomes)

    if current is None or current.odoo_ref != free_ref:
        changed |= _end_free_membership(existing.get(free_ref), context, outcomes)

    if current is not None:
        blocking = (
            Membership.objects.filter(member=member, state__in=Membership.CURRENT_STATES)
            .exclude(odoo_ref=current.odoo_ref)
            .first()
        )
        if blocking is not None:
            outcomes.append(
                Outcome(
                    "membership",
                    "conflict",
                    current.ref,
                    f"member {member.pk} already has current membership {blocking.pk} "
                    f"({blocking.get_state_display()}), which is not from this Odoo record, so "
                    f"this one ({_describe(current)}) is not imported; end or cancel "
                    f"membership {blocking.pk} first",
                )
            )
        else:
            changed |= _write_target(
                member, current, existing.get(current.odoo_ref), context, outcomes
            )

    if not partner.lines and not (partner.free or partner.state == "free"):
        outcomes.append(Outcome("membership", "skipped", partner.ref, _no_line_reason(partner)))
    return changed


def _no_line_reason(partner: Partner) -> str:
    if partner.associate_id:
        return (
            f"the contact has no membership line; Odoo gives it the membership of associate "
            f"member {partner.associate_id}, which the portal does not share, so give the "
            "member a membership of their own"
        )
    return f"the contact has no membership line (Odoo state {partner.state})"


def _write_target(
    member: Member,
    target: _Target,
    row: Membership | None,
    context: _Context,
    outcomes: list[Outcome],
) -> bool:
    """Create or update the row for `target`; return whether it changed."""
    if row is not None and row.member_id != member.pk:
        outcomes.append(
            Outcome(
                "membership",
                "conflict",
                target.ref,
                f"it was imported as membership {row.pk} of member {row.member_id}, but Odoo now "
                f"lists it under another partner; move it back in Odoo or fix it by hand",
            )
        )
        return False

    values = {
        "plan": target.plan,
        "monthly_price": target.monthly_price,
        "contract_months": target.contract_months,
        "start_date": target.start_date,
        "commitment_end": target.commitment_end,
        "end_date": target.end_date,
        "state": target.state,
    }
    current_state = target.state in Membership.CURRENT_STATES
    if target.cancel_at is not None or not current_state:
        values["cancel_at"] = target.cancel_at

    if row is None:
        row = Membership.objects.create(
            member=member,
            odoo_ref=target.odoo_ref,
            included_credit=target.plan.included_credit,
            state_changed_at=context.now,
            **values,
        )
        MembershipEvent.objects.create(
            membership=row,
            from_state="",
            to_state=row.state,
            cause=IMPORT_CAUSE,
            reason=target.reason,
        )
        outcomes.append(
            Outcome("membership", "created", target.ref, f"{_describe(target)} ({target.reason})")
        )
        logger.debug("Membership %s created from Odoo %s", row.pk, target.ref)
        return True

    changes = {
        name: (getattr(row, name), value)
        for name, value in values.items()
        if getattr(row, name) != value
    }
    if not changes:
        outcomes.append(Outcome("membership", "unchanged", target.ref, f"membership {row.pk}"))
        return False

    previous_state = row.state
    for name, (_old, new) in changes.items():
        setattr(row, name, new)
    fields = [*changes, "updated_at"]
    if "state" in changes:
        row.state_changed_at = context.now
        fields.append("state_changed_at")
        if row.state != State.PAST_DUE and row.grace_until is not None:
            row.grace_until = None
            fields.append("grace_until")
        MembershipEvent.objects.create(
            membership=row,
            from_state=previous_state,
            to_state=row.state,
            cause=UPDATE_CAUSE,
            reason=target.reason,
        )
    row.save(update_fields=fields)
    described = ", ".join(
        f"{name} {_short(old)} → {_short(new)}" for name, (old, new) in changes.items()
    )
    outcomes.append(
        Outcome("membership", "updated", target.ref, f"membership {row.pk}: {described}")
    )
    logger.debug("Membership %s updated from Odoo %s: %s", row.pk, target.ref, ", ".join(changes))
    return True


def _short(value) -> str:
    return value.name if isinstance(value, Plan) else str(value)


def _end_free_membership(
    row: Membership | None, context: _Context, outcomes: list[Outcome]
) -> bool:
    """End a free membership imported earlier once Odoo no longer makes it current."""
    if row is None or not row.is_current:
        return False

    previous = row.state
    row.state = State.ENDED
    row.end_date = max(row.start_date, context.today)
    row.cancel_at = None
    row.grace_until = None
    row.state_changed_at = context.now
    row.save(
        update_fields=[
            "state",
            "end_date",
            "cancel_at",
            "grace_until",
            "state_changed_at",
            "updated_at",
        ]
    )
    MembershipEvent.objects.create(
        membership=row,
        from_state=previous,
        to_state=row.state,
        cause=UPDATE_CAUSE,
        reason="the contact is no longer the current free member in Odoo",
    )

    partner_id = row.odoo_ref.split(",", 1)[1]
    outcomes.append(
        Outcome(
            "membership",
            "updated",
            f"partner {partner_id}",
            f"membership {row.pk}: free membership {previous} → ended {row.end_date}",
        )
    )
    return True


# --- Access keys --------------------------------------------------------------------------


def _import_keys(
    member: Member,
    partner: Partner,
    context: _Context,
    outcomes: list[Outcome],
    memberships_changed: bool,
) -> None:
    """Recompute the member's keys after membership changes, and record the Odoo key.

    Nothing is queued for the lock system: keys changed or created here stay pending
    until the periodic reconcile pushes them.
    """
    refreshed: set[int] = set()
    if memberships_changed:
        for key in access_services.refresh_member_keys(
            member_id=member.pk,
            cause=AccessEvent.Cause.STAFF,
            queue_sync=False,
            reason_prefix=f"{UPDATE_CAUSE}: ",
        ):
            refreshed.add(key.pk)
            outcomes.append(
                Outcome(
                    "key",
                    "updated",
                    partner.ref,
                    f"key {key.number}: now {key.status}, wanted {key.wanted_state}",
                )
            )

    number = access_services.normalize_key_number(partner.access_key)
    if not number:
        return
    own = member.access_keys.filter(number__iexact=number).order_by("-pk").first()
    if own is not None:
        if own.status == AccessKey.Status.RETURNED:
            outcomes.append(
                Outcome(
                    "key",
                    "skipped",
                    partner.ref,
                    f"key {number} was returned in the portal, so it is not recorded again",
                )
            )
        elif own.pk not in refreshed:
            outcomes.append(Outcome("key", "unchanged", partner.ref, f"key {own.number}"))
        return

    if access_services.current_membership(member.pk) is None:
        outcomes.append(
            Outcome(
                "key",
                "skipped",
                partner.ref,
                f"key {number}: the member has no current membership, so no key is recorded",
            )
        )
        return
    other_key = member.access_keys.filter(
        status__in=(AccessKey.Status.ACTIVE, AccessKey.Status.SUSPENDED)
    ).first()
    if other_key is not None:
        outcomes.append(
            Outcome(
                "key",
                "conflict",
                partner.ref,
                f"Odoo lists key {number}, but member {member.pk} has key {other_key.number}; mark "
                "that key returned or lost in the portal if it was replaced",
            )
        )
        return
    try:
        key = access_services.issue_key(
            member=member,
            number=number,
            kind=context.key_kind,
            actor=None,
            event_note=f"{IMPORT_CAUSE} (partner {partner.odoo_id})",
            queue_sync=False,
        )
    except access_services.AccessError as error:
        outcomes.append(Outcome("key", "conflict", partner.ref, f"key {number}: {error}"))
        return
    outcomes.append(
        Outcome(
            "key",
            "created",
            partner.ref,
            f"{key.kind} {key.number}, {key.status}, waiting for the next sync",
        )
    )
