"""Writes of the Odoo import: plans, members, memberships and access keys.

`run_import` takes the records of a source and brings them into the portal. It sends no
email, makes no payment gateway call and no lock system call:

- memberships are created as rows with their `MembershipEvent`, and their later state
  changes go through `members.services.record_imported_state`, which allows only the
  moves of the state machine and does not send `members.events.membership_changed`
  (which makes the access app sync keys);
- access keys are issued and recomputed with `queue_sync=False`, so they stay pending
  and the periodic reconcile pushes them to the lock system later.

Every row written remembers its Odoo record (`Member.odoo_partner_id`,
`Membership.odoo_ref`, `Plan.odoo_product_id`) and, in `odoo_imported`, the values the
import wrote to it. A later run writes a field only when Odoo's value differs from that
record and the portal still contains the recorded value. A field changed in the portal since
then is kept, and reported as a skip.
"""

import datetime
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_noop

from access import services as access_services
from access.models import AccessEvent, AccessKey
from billing.money import CENT
from cpr_portal.messages import Message, MessageError
from members import services as members_services
from members.models import Member, Membership, MembershipEvent, Plan

from .mapping import (
    MEMBERSHIP_FIELDS,
    RANK_ACTIVE,
    State,
    Target,
    choose_current,
    describe,
    free_target,
    line_target,
    stored,
)
from .records import ImportReport, Outcome, Partner, Product, kind_word, prepare, state_word
from .sources import OdooData

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")
IMPORT_CAUSE = "imported from Odoo"
UPDATE_CAUSE = "updated from Odoo"

# The member fields the import writes, and records in `odoo_imported`.
MEMBER_FIELDS = ("first_name", "last_name", "email", "phone", "company", "member_since")
# Fields that the portal sets together with the state: while the portal's state differs
# from the imported one, Odoo does not change them either.
STATE_FIELDS = ("end_date", "cancel_at")
MISSING = object()


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False
    batch_size: int = 200
    key_kind: str = AccessKey.Kind.FOB


class PartnerConflict(MessageError):
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
            plans_by_name=_plans_by_name(prepared.products, plans),
            today=members_services.local_today(),
            now=timezone.now(),
            key_kind=options.key_kind,
        )
        partners = prepared.partners
        for start in range(0, len(partners), options.batch_size):
            batch = partners[start : start + options.batch_size]
            with transaction.atomic():
                rows = _BatchRows(batch)
                for partner in batch:
                    report.extend(_import_partner_isolated(partner, context, rows))
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


# --- Recorded values ----------------------------------------------------------------------


def _merge(
    names: tuple[str, ...], portal: dict, odoo: dict, recorded: dict, *, hold: tuple = ()
) -> tuple[list[str], list[str], dict]:
    """Decide, field by field, what a run writes over a row it imported before.

    `portal`, `odoo` and `recorded` hold stored values: the row's, Odoo's now, and what
    the import wrote last time. A field missing from `odoo` is left alone. A field that
    Odoo changed is written while the portal still contains the recorded value, or when
    nothing was recorded. Otherwise the portal value is kept. Fields in `hold` that Odoo
    changed are kept too.
    Returns the fields to write, the fields kept, and the values to record.
    """
    write, kept, new_record = [], [], dict(recorded)
    for name in names:
        if name not in odoo:
            continue
        new, current, old = odoo[name], portal[name], recorded.get(name, MISSING)
        if new == old:
            continue
        if current == new:
            new_record[name] = new
        elif name in hold or (old is not MISSING and current != old):
            kept.append(name)
        else:
            write.append(name)
            new_record[name] = new
    return write, kept, new_record


# --- Plans --------------------------------------------------------------------------------


def _plans_by_name(products: list[Product], plans: dict) -> dict[str, Plan]:
    """Return the plans by lower-case name: their own names, then their products' names."""
    by_name: dict[str, Plan] = {}
    for plan in Plan.objects.order_by("pk"):
        by_name.setdefault(plan.name.strip().lower(), plan)
    for product in products:
        if product.key in plans:
            by_name.setdefault(product.name.lower(), plans[product.key])
    return by_name


def _unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "odoo-plan"
    slug = base
    suffix = 1
    while Plan.objects.filter(slug=slug).exists():
        suffix += 1
        slug = f"{base}-{suffix}"
    return slug


def import_plans(*, products: list[Product], report: ImportReport) -> dict:
    """Find the plan of each membership product, or create it.

    A plan is found by the product's Odoo id, which it keeps, so that renaming the plan
    or the product changes nothing. Without one, a plan with the product's name
    (ignoring case) is linked to the product. A created plan is inactive and not public,
    for staff to review. Its monthly price is the product's list price divided by the
    months of the product's membership period, or the list price itself when the
    product has no period. It includes no meeting-room credit.
    Returns the plans by product id.
    """
    plans: dict = {}
    with transaction.atomic():
        linked = {plan.odoo_product_id: plan for plan in Plan.objects.exclude(odoo_product_id=None)}
        by_name: dict[str, Plan] = {}
        for plan in Plan.objects.order_by("pk"):
            by_name.setdefault(plan.name.strip().lower(), plan)
        for product in products:
            odoo_id = product.key if isinstance(product.key, int) else None
            plan = linked.get(odoo_id) if odoo_id is not None else None
            if plan is not None:
                plans[product.key] = plan
                if plan.name.strip().lower() != product.name.lower():
                    detail = Message(
                        gettext_noop("plan %(id)s %(name)r (Odoo names the product %(product)r)"),
                        id=plan.pk,
                        name=plan.name,
                        product=product.name,
                    )
                else:
                    detail = Message(
                        gettext_noop("plan %(id)s %(name)r"), id=plan.pk, name=plan.name
                    )
                report.add("plan", "unchanged", product.ref, detail)
                continue
            plan = by_name.get(product.name.lower())
            if plan is not None:
                plans[product.key] = plan
                if odoo_id is not None and plan.odoo_product_id is None:
                    plan.odoo_product_id = odoo_id
                    plan.save(update_fields=["odoo_product_id", "updated_at"])
                    linked[odoo_id] = plan
                    report.add(
                        "plan",
                        "updated",
                        product.ref,
                        Message(
                            gettext_noop(
                                "plan %(id)s %(name)r has the product's name; linked to it"
                            ),
                            id=plan.pk,
                            name=plan.name,
                        ),
                    )
                else:
                    report.add(
                        "plan",
                        "unchanged",
                        product.ref,
                        Message(
                            gettext_noop("matches plan %(id)s %(name)r"), id=plan.pk, name=plan.name
                        ),
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
                odoo_product_id=odoo_id,
                description=(
                    f"Created by the Odoo import from {product.ref}. Review the price, contract "
                    "length and meeting-room credit before making it active."
                ),
            )
            by_name[product.name.lower()] = plan
            if odoo_id is not None:
                linked[odoo_id] = plan
            plans[product.key] = plan
            report.add(
                "plan",
                "created",
                product.ref,
                Message(
                    gettext_noop(
                        "new inactive plan %(name)r at $%(price)s/month; contract length in "
                        "months: %(months)d"
                    ),
                    name=plan.name,
                    price=monthly,
                    months=months,
                ),
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

    @property
    def grace_until(self) -> datetime.date:
        """The last day of access of a membership the import makes past due."""
        return self.today + datetime.timedelta(days=settings.CPR_GRACE_PERIOD_DAYS)


def _membership_refs(partner: Partner) -> list[str]:
    """Return the Odoo records of every membership row the partner can have."""
    return [line.odoo_ref for line in partner.lines] + [f"res.partner,{partner.odoo_id}"]


def _email_key(email: str) -> str | None:
    """Return the key of an email in `_BatchRows`, or None to look it up in the database.

    Only ASCII is folded in Python, where `str.upper` and PostgreSQL's UPPER agree.
    """
    return email.upper() if email.isascii() else None


class _BatchRows:
    """The members and imported memberships that a batch of partners starts from.

    They are read, and locked, in three queries before the batch writes, instead of
    three queries per partner. Each lookup key (an Odoo id, an email, the Odoo record of
    a membership) is served from them only once: a partner's writes, or the rollback of
    its conflict, may change what it looked up, so a later lookup of the same key, or of
    a member or membership already handed out, reads the database as before.
    """

    def __init__(self, partners: list[Partner]):
        self._used: set[tuple] = set()
        self._members_by_odoo_id: dict[int, Member] = {}
        for member in Member.objects.select_for_update().filter(
            odoo_partner_id__in=[partner.odoo_id for partner in partners]
        ):
            self._members_by_odoo_id.setdefault(member.odoo_partner_id, member)
        emails = {_email_key(partner.email) for partner in partners} - {None}
        self._members_by_email: dict[str, Member] = {}
        for member in (
            Member.objects.select_for_update()
            .annotate(email_key=Upper("email"))
            .filter(email_key__in=emails)
        ):
            self._members_by_email.setdefault(member.email_key, member)
        self._refs = {ref for partner in partners for ref in _membership_refs(partner)}
        self._memberships = {
            row.odoo_ref: row
            for row in Membership.objects.select_for_update().filter(odoo_ref__in=self._refs)
        }

    def _first_use(self, key: tuple) -> bool:
        if key in self._used:
            return False
        self._used.add(key)
        return True

    def _hand_out(self, member: Member | None) -> Member | None:
        if member is not None:
            self._used.add(("odoo", member.odoo_partner_id))
            self._used.add(("email", _email_key(member.email)))
        return member

    def member_by_odoo_id(self, odoo_id: int) -> Member | None:
        if self._first_use(("odoo", odoo_id)):
            member = self._members_by_odoo_id.get(odoo_id)
        else:
            member = Member.objects.select_for_update().filter(odoo_partner_id=odoo_id).first()
        return self._hand_out(member)

    def member_by_email(self, email: str) -> Member | None:
        key = _email_key(email)
        if key is not None and self._first_use(("email", key)):
            member = self._members_by_email.get(key)
        else:
            member = Member.objects.select_for_update().filter(email__iexact=email).first()
        return self._hand_out(member)

    def memberships(self, refs: list[str]) -> dict[str, Membership]:
        """Return the memberships imported from `refs`, by Odoo record."""
        keys = {("ref", ref) for ref in refs}
        if keys & self._used or not self._refs.issuperset(refs):
            rows = Membership.objects.select_for_update().filter(odoo_ref__in=refs)
            found = {row.odoo_ref: row for row in rows}
        else:
            found = {ref: self._memberships[ref] for ref in refs if ref in self._memberships}
        self._used |= keys
        return found


@dataclass
class _NewMember:
    """A member that this partner's import created.

    It has no access keys, and no memberships but those created for it here, so what the
    import would look up about it is known without a query.
    """

    memberships: list[Membership] = field(default_factory=list)

    def current_memberships(self) -> list[Membership]:
        return [row for row in self.memberships if row.state in Membership.CURRENT_STATES]

    def current_membership(self) -> Membership | None:
        """Return the newest current membership, as `access.services.current_membership` does."""
        return max(self.current_memberships(), key=lambda row: row.pk, default=None)


def _import_partner_isolated(
    partner: Partner, context: _Context, rows: _BatchRows
) -> list[Outcome]:
    """Import one partner in a savepoint; a conflict undoes only that partner's writes."""
    outcomes: list[Outcome] = []
    try:
        with transaction.atomic():
            _import_partner(partner, context, rows, outcomes)
    except PartnerConflict as conflict:
        reason = conflict.message
    except (IntegrityError, DataError) as error:
        logger.exception("The database rejected the import of Odoo %s", partner.ref)
        reason = Message(
            gettext_noop("the database rejected the import: %(error)s"), error=str(error).strip()
        )
    else:
        return outcomes
    skipped = [
        Outcome(
            "membership",
            "skipped",
            line.ref,
            Message(gettext_noop("its %(partner)s is not imported"), partner=partner.ref),
        )
        for line in partner.lines
    ]
    return [Outcome("member", "conflict", partner.ref, reason), *skipped]


def _import_partner(
    partner: Partner, context: _Context, rows: _BatchRows, outcomes: list[Outcome]
) -> None:
    member, created = _upsert_member(partner, rows, outcomes)
    new = _NewMember() if created else None
    memberships_changed = _import_memberships(member, partner, context, rows, new, outcomes)
    _import_keys(member, partner, context, new, outcomes, memberships_changed)


# --- Members ------------------------------------------------------------------------------


def _member_since(partner: Partner) -> datetime.date | None:
    starts = [line.start for line in partner.lines if line.state != "canceled"]
    candidates = [partner.start_date, partner.membership_start, *starts]
    dates = [date for date in candidates if date is not None]
    return min(dates) if dates else None


def _member_values(member: Member) -> dict:
    values = {name: stored(getattr(member, name)) for name in MEMBER_FIELDS}
    values["email"] = member.email.lower()  # letter case alone is no change
    return values


def _describe_kept(obj, names: list[str], odoo: dict) -> Message | None:
    if not names:
        return None
    fields = [
        Message(
            gettext_noop("%(field)s %(portal)s (Odoo now %(odoo)s)"),
            field=name,
            portal=_short(getattr(obj, name)),
            odoo=_short(odoo[name]),
        )
        for name in names
    ]
    return Message(gettext_noop("kept portal change: %(fields)s"), fields=fields)


def _merge_outcome(
    entity: str, ref: str, label: Message, described: str | Message, kept: Message | None
) -> Outcome:
    """Return the outcome of a run over a row imported before.

    `described` lists the changes written and `kept` the portal changes kept. The row is
    updated when anything was written, skipped when portal changes were only kept, and
    otherwise unchanged.
    """
    if described and kept:
        detail = Message(
            gettext_noop("%(label)s: %(changes)s; %(kept)s"),
            label=label,
            changes=described,
            kept=kept,
        )
        return Outcome(entity, "updated", ref, detail)
    if described:
        detail = Message(gettext_noop("%(label)s: %(changes)s"), label=label, changes=described)
        return Outcome(entity, "updated", ref, detail)
    if kept:
        detail = Message(gettext_noop("%(label)s: %(changes)s"), label=label, changes=kept)
        return Outcome(entity, "skipped", ref, detail)
    return Outcome(entity, "unchanged", ref, label)


def _upsert_member(
    partner: Partner, rows: _BatchRows, outcomes: list[Outcome]
) -> tuple[Member, bool]:
    """Find the partner's member by Odoo id, then by email ignoring case, or create one.

    Empty Odoo values never clear what the portal holds, and an email that differs only
    in letter case is left as it is. On a later run, a field changes only if Odoo
    changed it and the portal did not (see `_merge`).
    Returns the member and whether it was created.
    """
    member = rows.member_by_odoo_id(partner.odoo_id)
    linking = False
    if member is None:
        member = rows.member_by_email(partner.email)
        if member is not None and member.odoo_partner_id is not None:
            raise PartnerConflict(
                gettext_noop(
                    "the email %(email)s belongs to member %(member)s, imported from partner "
                    "%(partner)s; merge the two contacts in Odoo"
                ),
                email=partner.email,
                member=member.pk,
                partner=member.odoo_partner_id,
            )
        linking = member is not None

    since = _member_since(partner)
    values = {
        "first_name": partner.first_name,
        "last_name": partner.last_name,
        "email": partner.email,
        "phone": partner.phone,
        "company": partner.company,
        "member_since": since,
    }
    odoo = {name: stored(value) for name, value in values.items() if value}
    if "email" in odoo:
        odoo["email"] = odoo["email"].lower()
    if member is None:
        member = Member.objects.create(
            **values, odoo_partner_id=partner.odoo_id, odoo_imported=odoo
        )
        outcomes.append(
            Outcome(
                "member",
                "created",
                partner.ref,
                Message(
                    gettext_noop("new member %(name)s <%(email)s>"),
                    name=member.full_name,
                    email=member.email,
                ),
            )
        )
        logger.debug("Member %s created from Odoo %s", member.pk, partner.ref)
        return member, True

    portal = _member_values(member)
    write, kept, record = _merge(
        MEMBER_FIELDS, portal, odoo, {} if linking else member.odoo_imported or {}
    )
    if linking and "member_since" in write and member.member_since and since > member.member_since:
        write.remove("member_since")  # the portal knew the person earlier
    if "email" in write:
        _check_email_change(member, partner)

    changes = {name: (getattr(member, name), values[name]) for name in write}
    fields = list(write)
    for name in write:
        setattr(member, name, values[name])
    if linking:
        member.odoo_partner_id = partner.odoo_id
        fields.append("odoo_partner_id")
    if record != member.odoo_imported:
        member.odoo_imported = record
        fields.append("odoo_imported")
    if fields:
        member.save(update_fields=[*fields, "updated_at"])

    described = ", ".join(f"{name} {old!r} → {new!r}" for name, (old, new) in changes.items())
    if linking:
        described = Message(
            gettext_noop("linked by email; %(changes)s"),
            changes=described or Message(gettext_noop("no field changed")),
        )
    outcome = _merge_outcome(
        "member",
        partner.ref,
        Message(gettext_noop("member %(id)s"), id=member.pk),
        described,
        _describe_kept(member, kept, values),
    )
    outcomes.append(outcome)
    if outcome.verb == "updated":
        logger.debug("Member %s updated from Odoo %s: %s", member.pk, partner.ref, described)
    return member, False


def _check_email_change(member: Member, partner: Partner) -> None:
    other = Member.objects.filter(email__iexact=partner.email).exclude(pk=member.pk).first()
    if other is not None:
        raise PartnerConflict(
            gettext_noop(
                "the new email %(email)s belongs to member %(member)s; give the contact "
                "another email in Odoo or merge the two members"
            ),
            email=partner.email,
            member=other.pk,
        )
    if member.user_id is not None:
        # The login signs in with the member's email, so only the back office, which
        # moves the login along, may change it.
        raise PartnerConflict(
            gettext_noop(
                "member %(member)s signs in as %(email)s, and Odoo now has %(odoo_email)s; "
                "change the email on the member's page in the back office"
            ),
            member=member.pk,
            email=member.email,
            odoo_email=partner.email,
        )


# --- Memberships --------------------------------------------------------------------------


def _free_target(partner: Partner, context: _Context, outcomes: list[Outcome]) -> Target | None:
    """Return the free membership of a free member, or None with the reason as a conflict."""
    plan = context.plans_by_name.get(partner.membership_type.lower())
    if plan is None and partner.lines:
        plan = context.plans[partner.lines[-1].product.key]
    if plan is None:
        outcomes.append(
            Outcome(
                "membership",
                "conflict",
                partner.ref,
                Message(
                    gettext_noop(
                        "the contact is a free member, but its membership type %(type)r names "
                        "no plan and it has no membership line; set the membership type to a "
                        "plan name in Odoo"
                    ),
                    type=partner.membership_type,
                ),
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
                Message(
                    gettext_noop(
                        "the contact is a free member without a start date; set the start date "
                        "(or the membership start) in Odoo"
                    )
                ),
            )
        )
        return None
    return free_target(partner, plan, start, context.today)


def _import_memberships(
    member: Member,
    partner: Partner,
    context: _Context,
    rows: _BatchRows,
    new: _NewMember | None,
    outcomes: list[Outcome],
) -> bool:
    """Create or update the member's imported memberships; return whether any row changed.

    At most one becomes current (see `choose_current`). History rows are written first,
    so the database never contains two current memberships of one member.
    """
    targets: list[Target] = []
    for line in partner.lines:
        target = line_target(line, context.plans[line.product.key], context.today)
        if target is None:
            outcomes.append(
                Outcome(
                    "membership",
                    "skipped",
                    line.ref,
                    Message(gettext_noop("Odoo counts the line as no membership (state none)")),
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

    current, later = choose_current(targets)
    waiting = {id(target) for target, _reason in later}
    existing = rows.memberships([target.odoo_ref for target in targets] + [free_ref])
    changed = False
    for target in targets:
        if target is current or id(target) in waiting:
            continue
        changed |= _write_target(
            member, target, existing.get(target.odoo_ref), context, new, outcomes
        )
    for target, reason in later:
        row = existing.get(target.odoo_ref)
        if row is None:
            outcomes.append(Outcome("membership", "skipped", target.ref, reason))
            continue
        # An earlier run imported it, as the current membership: it gives way now.
        target.make_history(current, reason)
        changed |= _write_target(member, target, row, context, new, outcomes)

    if current is None or current.odoo_ref != free_ref:
        changed |= _end_free_membership(existing.get(free_ref), context, outcomes)

    if current is not None:
        if new is not None:
            others = [row for row in new.current_memberships() if row.odoo_ref != current.odoo_ref]
            # The first row in Membership's ordering (newest start, then highest id).
            blocking = max(others, key=lambda row: (row.start_date, row.pk), default=None)
        else:
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
                    Message(
                        gettext_noop(
                            "member %(member)s already has current membership %(blocking)s "
                            "(%(state)s), which is not from this Odoo record, so this one "
                            "(%(membership)s) is not imported; end or cancel membership "
                            "%(blocking)s first"
                        ),
                        member=member.pk,
                        blocking=blocking.pk,
                        state=state_word(blocking.state),
                        membership=describe(current),
                    ),
                )
            )
        else:
            changed |= _write_target(
                member, current, existing.get(current.odoo_ref), context, new, outcomes
            )

    if not partner.lines and not (partner.free or partner.state == "free"):
        outcomes.append(Outcome("membership", "skipped", partner.ref, _no_line_reason(partner)))
    return changed


def _no_line_reason(partner: Partner) -> Message:
    if partner.left_out_lines:
        return Message(
            gettext_noop(
                "none of the contact's membership lines could be imported (%(lines)s; see the "
                "report on each), so the member has no membership"
            ),
            lines=", ".join(partner.left_out_lines),
        )
    if partner.associate_id:
        return Message(
            gettext_noop(
                "the contact has no membership line; Odoo gives it the membership of associate "
                "member %(associate)s, which the portal does not share, so give the member a "
                "membership of their own"
            ),
            associate=partner.associate_id,
        )
    return Message(
        gettext_noop("the contact has no membership line (Odoo state %(state)s)"),
        state=partner.state,
    )


def _membership_values(row: Membership) -> dict:
    values = {name: stored(getattr(row, name)) for name in MEMBERSHIP_FIELDS if name != "plan"}
    values["plan"] = row.plan_id
    return values


def _write_target(
    member: Member,
    target: Target,
    row: Membership | None,
    context: _Context,
    new: _NewMember | None,
    outcomes: list[Outcome],
) -> bool:
    """Create or update the row for `target`; return whether it changed."""
    if row is not None and row.member_id != member.pk:
        outcomes.append(
            Outcome(
                "membership",
                "conflict",
                target.ref,
                Message(
                    gettext_noop(
                        "it was imported as membership %(membership)s of member %(member)s, but "
                        "Odoo now lists it under another partner; move it back in Odoo or fix it "
                        "by hand"
                    ),
                    membership=row.pk,
                    member=row.member_id,
                ),
            )
        )
        return False

    if row is None:
        row = Membership.objects.create(
            member=member,
            odoo_ref=target.odoo_ref,
            included_credit=target.plan.included_credit,
            state_changed_at=context.now,
            grace_until=context.grace_until if target.state == State.PAST_DUE else None,
            odoo_imported=target.values(),
            **{name: getattr(target, name) for name in MEMBERSHIP_FIELDS},
        )
        MembershipEvent.objects.create(
            membership=row,
            from_state="",
            to_state=row.state,
            cause=IMPORT_CAUSE,
            reason=target.reason,
        )
        if new is not None:
            new.memberships.append(row)
        # NOTE: the reason stays English in every language, because it is also the reason
        # of the MembershipEvent and mapping builds it from English parts.
        outcomes.append(
            Outcome(
                "membership",
                "created",
                target.ref,
                Message(
                    gettext_noop("%(membership)s (%(reason)s)"),
                    membership=describe(target),
                    reason=target.reason,
                ),
            )
        )
        logger.debug("Membership %s created from Odoo %s", row.pk, target.ref)
        return True

    recorded = row.odoo_imported or {}
    portal = _membership_values(row)
    portal_moved = "state" in recorded and portal["state"] != recorded["state"]
    write, kept, record = _merge(
        MEMBERSHIP_FIELDS,
        portal,
        target.values(),
        recorded,
        hold=STATE_FIELDS if portal_moved else (),
    )
    odoo = {name: getattr(target, name) for name in MEMBERSHIP_FIELDS}
    if "state" in write and members_services.transition_to(row.state, target.state) is None:
        outcomes.append(
            Outcome(
                "membership",
                "skipped",
                target.ref,
                Message(
                    gettext_noop(
                        "membership %(id)s: Odoo now makes it %(state)s (%(reason)s), but the "
                        "portal does not move a %(current)s membership to %(state)s, so it is "
                        "unchanged; change it in the back office if needed"
                    ),
                    id=row.pk,
                    state=state_word(target.state),
                    reason=target.reason,
                    current=state_word(row.state),
                ),
            )
        )
        return False

    changes = {name: (getattr(row, name), odoo[name]) for name in write}
    values = {name: odoo[name] for name in write}
    if record != recorded:
        values["odoo_imported"] = record
    if "state" in write:
        grace = context.grace_until if target.state == State.PAST_DUE else None
        if row.grace_until != grace:
            values["grace_until"] = grace
        members_services.record_imported_state(
            membership=row,
            state=values.pop("state"),
            cause=UPDATE_CAUSE,
            reason=target.reason,
            extra_fields=values,
        )
    elif values:
        for name, value in values.items():
            setattr(row, name, value)
        row.save(update_fields=[*values, "updated_at"])

    described = ", ".join(
        f"{name} {_short(old)} → {_short(new)}" for name, (old, new) in changes.items()
    )
    outcome = _merge_outcome(
        "membership",
        target.ref,
        Message(gettext_noop("membership %(id)s"), id=row.pk),
        described,
        _describe_kept(row, kept, odoo),
    )
    outcomes.append(outcome)
    if outcome.verb == "updated":
        logger.debug("Membership %s updated from Odoo %s: %s", row.pk, target.ref, described)
    return bool(changes)


def _short(value) -> str:
    return value.name if isinstance(value, Plan) else str(value)


def _end_free_membership(
    row: Membership | None, context: _Context, outcomes: list[Outcome]
) -> bool:
    """End a free membership imported earlier once Odoo no longer makes it current.

    A free membership that the portal already ended or cancelled is left as it is, and
    one whose state the portal changed is kept.
    """
    if row is None or not row.is_current:
        return False
    partner_id = row.odoo_ref.split(",", 1)[1]
    recorded = row.odoo_imported or {}
    if recorded.get("state", row.state) != row.state:
        outcomes.append(
            Outcome(
                "membership",
                "skipped",
                f"partner {partner_id}",
                Message(
                    gettext_noop(
                        "membership %(id)s: kept portal change: the contact is no longer a free "
                        "member in Odoo, but the portal made the free membership %(state)s, so it "
                        "is not ended"
                    ),
                    id=row.pk,
                    state=state_word(row.state),
                ),
            )
        )
        return False
    previous = row.state
    end_date = max(row.start_date, context.today)
    members_services.record_imported_state(
        membership=row,
        state=State.ENDED,
        cause=UPDATE_CAUSE,
        reason="the contact is no longer the current free member in Odoo",
        extra_fields={
            "end_date": end_date,
            "cancel_at": None,
            "grace_until": None,
            "odoo_imported": {
                **recorded,
                "state": str(State.ENDED),
                "end_date": stored(end_date),
                "cancel_at": None,
            },
        },
    )
    outcomes.append(
        Outcome(
            "membership",
            "updated",
            f"partner {partner_id}",
            Message(
                gettext_noop("membership %(id)s: free membership %(previous)s → ended %(end)s"),
                id=row.pk,
                previous=state_word(previous),
                end=end_date,
            ),
        )
    )
    return True


# --- Access keys --------------------------------------------------------------------------

# How much door access a wanted state gives, to tell a key that would gain access.
ACCESS_LEVEL = {
    AccessKey.Wanted.REVOKED: 0,
    AccessKey.Wanted.SUSPENDED: 1,
    AccessKey.Wanted.ACTIVE: 2,
}


def _last_change_by_import(key: AccessKey) -> bool:
    event = key.events.order_by("-created_at", "-pk").first()
    return event is not None and event.reason.startswith((IMPORT_CAUSE, UPDATE_CAUSE))


def _refresh_keys(
    member: Member, partner: Partner, context: _Context, outcomes: list[Outcome]
) -> set[int]:
    """Recompute the member's keys after membership changes; return the ids of those changed.

    A key loses access whenever its membership no longer gives access. It gains access
    only if the import made its last change, so a key the portal suspended or revoked
    stays that way.
    """
    membership = access_services.current_membership(member.pk)
    allowed = []
    for key in member.access_keys.order_by("pk"):
        status, wanted, _reason = access_services.wanted_state_for(key, membership, context.today)
        if (status, wanted) == (key.status, key.wanted_state):
            continue
        gains = ACCESS_LEVEL[wanted] > ACCESS_LEVEL[key.wanted_state]
        if gains and not _last_change_by_import(key):
            outcomes.append(
                Outcome(
                    "key",
                    "skipped",
                    partner.ref,
                    Message(
                        gettext_noop(
                            "key %(number)s: kept portal change: the portal made it %(status)s, "
                            "so the import does not make it %(wanted)s; restore it in the back "
                            "office if the member should have access"
                        ),
                        number=key.number,
                        status=state_word(key.status),
                        wanted=state_word(wanted),
                    ),
                )
            )
            continue
        allowed.append(key.pk)
    if not allowed:
        return set()
    refreshed = access_services.refresh_member_keys(
        member_id=member.pk,
        cause=AccessEvent.Cause.STAFF,
        queue_sync=False,
        reason_prefix=f"{UPDATE_CAUSE}: ",
        key_ids=allowed,
    )
    for key in refreshed:
        outcomes.append(
            Outcome(
                "key",
                "updated",
                partner.ref,
                Message(
                    gettext_noop("key %(number)s: now %(status)s, wanted %(wanted)s"),
                    number=key.number,
                    status=state_word(key.status),
                    wanted=state_word(key.wanted_state),
                ),
            )
        )
    return {key.pk for key in refreshed}


def _import_keys(
    member: Member,
    partner: Partner,
    context: _Context,
    new: _NewMember | None,
    outcomes: list[Outcome],
    memberships_changed: bool,
) -> None:
    """Recompute the member's keys after membership changes, and record the Odoo key.

    Nothing is queued for the lock system: keys changed or created here stay pending
    until the periodic reconcile pushes them.
    """
    # A member created here has no keys to refresh, nor a key of its own yet.
    refresh = memberships_changed and new is None
    refreshed = _refresh_keys(member, partner, context, outcomes) if refresh else set()

    number = access_services.normalize_key_number(partner.access_key)
    if not number:
        return
    own = None
    if new is None:
        own = member.access_keys.filter(number__iexact=number).order_by("-pk").first()
    if own is not None:
        if own.status == AccessKey.Status.RETURNED:
            outcomes.append(
                Outcome(
                    "key",
                    "skipped",
                    partner.ref,
                    Message(
                        gettext_noop(
                            "key %(number)s was returned in the portal, so it is not recorded again"
                        ),
                        number=number,
                    ),
                )
            )
        elif own.pk not in refreshed:
            outcomes.append(
                Outcome(
                    "key",
                    "unchanged",
                    partner.ref,
                    Message(gettext_noop("key %(number)s"), number=own.number),
                )
            )
        return

    if new is not None:
        current = new.current_membership()
    else:
        current = access_services.current_membership(member.pk)
    if current is None:
        outcomes.append(
            Outcome(
                "key",
                "skipped",
                partner.ref,
                Message(
                    gettext_noop(
                        "key %(number)s: the member has no current membership, so no key is "
                        "recorded"
                    ),
                    number=number,
                ),
            )
        )
        return
    other_key = None
    if new is None:
        other_key = member.access_keys.filter(
            status__in=(AccessKey.Status.ACTIVE, AccessKey.Status.SUSPENDED)
        ).first()
    if other_key is not None:
        outcomes.append(
            Outcome(
                "key",
                "conflict",
                partner.ref,
                Message(
                    gettext_noop(
                        "Odoo lists key %(number)s, but member %(member)s has key %(other)s; mark "
                        "that key returned or lost in the portal if it was replaced"
                    ),
                    number=number,
                    member=member.pk,
                    other=other_key.number,
                ),
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
        detail = Message(gettext_noop("key %(number)s: %(error)s"), number=number, error=str(error))
        outcomes.append(Outcome("key", "conflict", partner.ref, detail))
        return
    outcomes.append(
        Outcome(
            "key",
            "created",
            partner.ref,
            Message(
                gettext_noop("%(kind)s %(number)s, %(status)s, waiting for the next sync"),
                kind=kind_word(key.kind),
                number=key.number,
                status=state_word(key.status),
            ),
        )
    )
