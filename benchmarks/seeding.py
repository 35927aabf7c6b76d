"""A large, realistic data set for the benchmarks, generated deterministically and COPY-loaded.

Everything is dated relative to an anchor day (`today`, a local date) and to the clock
of midnight at its start, so the same seed and anchor give the same rows. The data set
contains the work that the scheduled jobs find on the anchor day, as if they had not run
for a few days: past-due memberships whose grace period ended, paid pending memberships
whose start came, commitment ends and scheduled cancellations that came, credit lots
past their date, keys waiting for the door system, stuck outbox rows and payment events
whose processing task was lost.
"""

import base64
import dataclasses
import datetime
import random
import zoneinfo
from collections import Counter, defaultdict
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model

from access.models import AccessEvent, AccessKey
from billing.gateways import get_gateway
from billing.models import (
    CreditEntry,
    GatewayCustomer,
    GatewaySubscription,
    Invoice,
    InvoiceItem,
    Payment,
    WebhookEvent,
)
from bookings.models import Booking, CalendarFeed, Room, RoomHours
from members.models import Member, Membership, MembershipApplication, MembershipEvent, Plan
from members.periods import add_months, billing_period, period_containing
from outbox.catalog import ACCOUNT_TEMPLATE
from outbox.models import OutboxEmail

from .loader import Table, write_tables

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
State = Membership.State

# Share of members by the state of their latest membership. Members in "cancelled" or
# "ended" have no current membership.
STATE_MIX = (
    (State.ACTIVE, 0.62),
    (State.PAST_DUE, 0.07),
    (State.SUSPENDED, 0.04),
    (State.PENDING, 0.05),
    (State.CANCELLED, 0.09),
    (State.ENDED, 0.13),
)

# Plans besides the migration's Hot Desk, upserted by slug.
EXTRA_PLANS = (
    {
        "slug": "dedicated-desk",
        "name": "Dedicated Desk",
        "monthly_price": Decimal("400.00"),
        "included_credit": Decimal("200.00"),
        "renewal_policy": Plan.RenewalPolicy.RENEW_TERM,
        "sort_order": 2,
    },
    {
        "slug": "private-office",
        "name": "Private Office",
        "monthly_price": Decimal("950.00"),
        "included_credit": Decimal("400.00"),
        "renewal_policy": Plan.RenewalPolicy.END,
        "sort_order": 3,
    },
    {
        "slug": "community",
        "name": "Community",
        "monthly_price": Decimal("60.00"),
        "included_credit": ZERO,
        "renewal_policy": Plan.RenewalPolicy.MONTH_TO_MONTH,
        "sort_order": 4,
    },
)
PLAN_WEIGHTS = {"hot-desk": 0.6, "dedicated-desk": 0.25, "private-office": 0.05, "community": 0.1}

FIRST_NAMES = [
    "Ana",
    "Luis",
    "Carmen",
    "José",
    "María",
    "Carlos",
    "Sofía",
    "Miguel",
    "Isabel",
    "Javier",
    "Lucía",
    "Pedro",
    "Valeria",
    "Diego",
    "Gabriela",
    "Andrés",
    "Paola",
    "Ricardo",
    "Natalia",
    "Fernando",
    "Camila",
    "Jorge",
    "Elena",
    "Rafael",
    "Daniela",
    "Héctor",
    "Marisol",
    "Ángel",
    "Yesenia",
    "Alexis",
    "Noemí",
    "Iván",
    "Beatriz",
    "Rubén",
    "Zoe",
    "Omar",
    "Wanda",
    "Edwin",
    "Keila",
]
LAST_NAMES = [
    "Rivera",
    "Santiago",
    "Rodríguez",
    "Torres",
    "Ortiz",
    "Cruz",
    "Díaz",
    "Morales",
    "Vázquez",
    "Colón",
    "Reyes",
    "Ramos",
    "Martínez",
    "Hernández",
    "López",
    "González",
    "Pérez",
    "Sánchez",
    "Medina",
    "Figueroa",
    "Rosario",
    "Ayala",
    "Negrón",
    "Acevedo",
    "Marrero",
    "Quiñones",
    "Pagán",
    "Meléndez",
    "Velázquez",
    "Irizarry",
    "Burgos",
    "Maldonado",
    "Padilla",
]
COMPANIES = (
    "", "", "", "Isla Labs", "Boricua Devs", "Caribe Cloud", "Coquí Analytics", "Freelance",
    "Mofongo Media", "Yunque Ventures", "Old San Juan Studio", "Tropical Data",
)  # fmt: skip
KEY_KINDS = (AccessKey.Kind.FOB, AccessKey.Kind.FOB, AccessKey.Kind.CARD, AccessKey.Kind.MOBILE)
MANUAL_METHODS = (Payment.Method.CASH, Payment.Method.CHECK, Payment.Method.ATH_MOVIL)

# Days of jobs that did not run: the seed leaves this much work for each job.
BACKLOG_DAYS = 3


@dataclasses.dataclass
class SeedResult:
    counts: dict[str, int]
    plan_ids: dict[str, int]
    sample_member_ids: list[int]


@dataclasses.dataclass
class _Membership:
    id: int
    member_id: int
    plan: Plan
    state: str
    start: datetime.date
    commitment_end: datetime.date
    end_date: datetime.date | None
    gateway_paid: bool
    # period number -> (invoice id, status, period start, period end)
    invoices: dict = dataclasses.field(default_factory=dict)


class Seeder:
    """Builds the rows in memory, then writes them with COPY in foreign-key order."""

    def __init__(self, *, members: int, seed: int, today: datetime.date, progress=None):
        self.count = members
        self.rng = random.Random(seed)
        self.today = today
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        # The seed's clock: the start of the anchor day, so every stored time is in the past
        # when the benchmark runs on the anchor day or later.
        self.clock = datetime.datetime.combine(today, datetime.time(0, 0), tzinfo=tz)
        self.tz = tz
        self.progress = progress or (lambda message: None)
        self.gateway = get_gateway().name
        self.users = Table(
            get_user_model(),
            [
                "password", "last_login", "is_superuser", "username", "first_name",
                "last_name", "email", "is_staff", "is_active", "date_joined",
            ],
        )  # fmt: skip
        self.email_addresses = Table(EmailAddress, ["user", "email", "verified", "primary"])
        self.members = Table(
            Member,
            [
                "first_name", "last_name", "email", "phone", "company", "bio",
                "directory_opt_in", "staff_notes", "user", "member_since", "odoo_partner_id",
                "odoo_imported", "language", "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.applications = Table(
            MembershipApplication,
            [
                "first_name", "last_name", "email", "phone", "company", "plan",
                "desired_start_date", "referral_source", "message", "language", "ip_address",
                "status", "decided_by", "decided_at", "decision_reason", "member", "user",
                "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.memberships = Table(
            Membership,
            [
                "member", "plan", "application", "monthly_price", "included_credit",
                "contract_months", "start_date", "commitment_end", "end_date", "cancel_at",
                "state", "state_changed_at", "grace_until", "odoo_ref", "odoo_imported",
                "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.membership_events = Table(
            MembershipEvent,
            ["membership", "from_state", "to_state", "actor", "cause", "reason", "created_at"],
        )
        self.customers = Table(GatewayCustomer, ["member", "gateway", "reference", "created_at"])
        self.subscriptions = Table(
            GatewaySubscription,
            ["membership", "gateway", "reference", "cancel_at", "ended_at", "created_at",
             "updated_at"],
        )  # fmt: skip
        self.invoices = Table(
            Invoice,
            [
                "membership", "kind", "period_number", "period_start", "period_end", "amount",
                "status", "gateway", "gateway_reference", "hosted_url", "paid_at",
                "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.invoice_items = Table(
            InvoiceItem,
            [
                "membership", "amount", "description", "reference", "status", "invoice",
                "gateway", "gateway_reference", "gateway_removed_at", "created_by",
                "created_at", "voided_at", "updated_at",
            ],
        )  # fmt: skip
        self.payments = Table(
            Payment,
            [
                "membership", "invoice", "amount", "method", "reference", "gateway",
                "received_at", "recorded_by", "note", "created_at",
            ],
        )  # fmt: skip
        self.webhook_events = Table(
            WebhookEvent,
            ["gateway", "event_id", "event_type", "payload", "status", "attempts", "error",
             "received_at", "processed_at"],
        )  # fmt: skip
        self.credit = Table(
            CreditEntry,
            ["member", "kind", "amount", "lot", "period_start", "expires_on", "invoice",
             "reference", "reason", "created_by", "created_at"],
        )  # fmt: skip
        self.rooms = Table(
            Room,
            ["name", "capacity", "hourly_rate", "slot_minutes", "min_minutes", "max_minutes",
             "is_active", "photo", "description", "description_es", "sort_order", "created_at",
             "updated_at"],
        )  # fmt: skip
        self.room_hours = Table(RoomHours, ["room", "weekday", "opens_at", "closes_at"])
        self.bookings = Table(
            Booking,
            [
                "member", "membership", "room", "start", "end", "status", "price",
                "credit_used", "overage", "booked_by", "created_at", "cancelled_at",
                "cancelled_by", "cancel_reason", "charge_kept", "updated_at",
            ],
        )  # fmt: skip
        self.feeds = Table(CalendarFeed, ["member", "token", "created_at", "rotated_at"])
        self.keys = Table(
            AccessKey,
            [
                "member", "number", "kind", "status", "staff_hold", "staff_hold_reason",
                "issued_at", "returned_at", "wanted_state", "backend_state", "sync_status",
                "sync_attempts", "last_error", "last_synced_at", "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.key_events = Table(
            AccessEvent,
            ["key", "cause", "actor", "from_status", "to_status", "from_wanted", "to_wanted",
             "reason", "created_at"],
        )  # fmt: skip
        self.outbox = Table(
            OutboxEmail,
            [
                "recipient", "template", "context", "language", "status", "attempts",
                "last_error", "next_attempt_at", "claimed_until", "expires_at", "subject",
                "body_text", "body_html", "claim_token", "sent_at", "message_id",
                "dedupe_key", "created_at", "updated_at",
            ],
        )  # fmt: skip
        self.tables = [
            self.users, self.email_addresses, self.members, self.applications,
            self.memberships, self.membership_events, self.customers, self.subscriptions,
            self.invoices, self.invoice_items, self.payments, self.webhook_events,
            self.credit, self.rooms, self.room_hours, self.bookings, self.feeds, self.keys,
            self.key_events, self.outbox,
        ]  # fmt: skip
        # membership id -> _Membership; member id -> current _Membership
        self.all_memberships: dict[int, _Membership] = {}
        self.current: dict[int, _Membership] = {}
        self.member_info: dict[int, tuple[str, str, str]] = {}
        # (membership id, period number) -> [lot id, remaining, expires_on, member id]
        self.lots: dict[tuple[int, int], list] = {}

    # --- helpers ------------------------------------------------------------------------

    def at(self, day: datetime.date, hour: int = 12, minute: int = 0) -> datetime.datetime:
        """Return an aware time on `day` in the space's time zone, never after the clock."""
        moment = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=self.tz)
        return min(moment, self.clock - datetime.timedelta(minutes=1))

    def days_ago(self, low: int, high: int) -> datetime.date:
        return self.today - datetime.timedelta(days=self.rng.randint(low, high))

    def pick_state(self) -> str:
        roll = self.rng.random()
        for state, share in STATE_MIX:
            roll -= share
            if roll < 0:
                return state
        return State.ENDED

    def pick_plan(self, plans: dict[str, Plan]) -> Plan:
        roll = self.rng.random()
        for slug, share in PLAN_WEIGHTS.items():
            roll -= share
            if roll < 0:
                return plans[slug]
        return plans["hot-desk"]

    # --- plans and rooms ----------------------------------------------------------------

    def ensure_plans(self) -> dict[str, Plan]:
        plans = {}
        hot_desk = Plan.objects.filter(slug="hot-desk").first()
        if hot_desk is None:
            hot_desk, _ = Plan.objects.update_or_create(
                slug="hot-desk",
                defaults={
                    "name": "Hot Desk",
                    "monthly_price": Decimal("250.00"),
                    "included_credit": Decimal("150.00"),
                    "contract_months": 12,
                    "sort_order": 1,
                },
            )
        plans["hot-desk"] = hot_desk
        for spec in EXTRA_PLANS:
            values = dict(spec)
            slug = values.pop("slug")
            plans[slug], _ = Plan.objects.update_or_create(slug=slug, defaults=values)
        return plans

    def build_rooms(self) -> list[tuple[int, Decimal, dict]]:
        """Rooms grow with the member count: one per 500 members, between 3 and 40."""
        count = max(3, min(40, self.count // 500))
        rooms = []
        created = self.at(self.today - datetime.timedelta(days=400))
        for number in range(1, count + 1):
            rate = Decimal(self.rng.choice((20, 25, 30, 40, 60))).quantize(CENT)
            room_id = self.rooms.add(
                name=f"Room {number:02d}",
                capacity=self.rng.choice((4, 6, 8, 12)),
                hourly_rate=rate,
                slot_minutes=30,
                min_minutes=30,
                max_minutes=240,
                is_active=True,
                photo="",
                description=f"Meeting room {number} on floor {1 + number % 3}.",
                description_es=f"Sala de reuniones {number} en el piso {1 + number % 3}.",
                sort_order=number,
                created_at=created,
                updated_at=created,
            )
            hours = {}
            for weekday in range(6):
                opens, closes = (
                    (datetime.time(8), datetime.time(20))
                    if weekday < 5
                    else (datetime.time(9), datetime.time(14))
                )
                self.room_hours.add(room=room_id, weekday=weekday, opens_at=opens, closes_at=closes)
                hours[weekday] = (opens, closes)
            rooms.append((room_id, rate, hours))
        return rooms

    # --- members, logins, applications --------------------------------------------------

    def build_members(self, plans: dict[str, Plan]) -> None:
        password = "!" + "seed-no-password"  # unusable: Django treats "!..." as no password
        for index in range(self.count):
            first = self.rng.choice(FIRST_NAMES)
            last = self.rng.choice(LAST_NAMES)
            email = f"{_ascii(first)}.{_ascii(last)}.{index + 1}@example.com".lower()
            state = self.pick_state()
            joined = self.days_ago(30, 1500)
            user_id = None
            if self.rng.random() < 0.85:
                user_id = self.users.add(
                    password=password,
                    last_login=self.at(self.days_ago(0, 60), 9)
                    if self.rng.random() < 0.6
                    else None,
                    is_superuser=False,
                    username=f"member{index + 1}",
                    first_name=first,
                    last_name=last,
                    email=email,
                    is_staff=False,
                    is_active=True,
                    date_joined=self.at(joined),
                )
                self.email_addresses.add(user=user_id, email=email, verified=True, primary=True)
            member_id = self.members.add(
                first_name=first,
                last_name=last,
                email=email,
                phone=f"787-555-{self.rng.randint(0, 9999):04d}",
                company=self.rng.choice(COMPANIES),
                bio="",
                directory_opt_in=self.rng.random() < 0.3,
                staff_notes="",
                user=user_id,
                member_since=None,
                odoo_partner_id=None,
                odoo_imported={},
                # Empty: the browser's language on the portal, English in emails.
                language="",
                created_at=self.at(joined),
                updated_at=self.at(joined),
            )
            self.member_info[member_id] = (first, last, email)
            self.build_memberships(member_id, state, plans, user_id)

        # Open and rejected applications from people who are not members.
        hot_desk = plans["hot-desk"]
        for index in range(max(1, self.count // 50)):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            created = self.at(self.days_ago(0, 20), 10)
            self.applications.add(
                first_name=first,
                last_name=last,
                email=f"applicant{index + 1}.{_ascii(last)}@example.org".lower(),
                phone="",
                company="",
                plan=hot_desk.pk,
                desired_start_date=self.today + datetime.timedelta(days=self.rng.randint(0, 40)),
                referral_source=self.rng.choice(MembershipApplication.ReferralSource.values),
                message="I would like a desk near the window.",
                language=self.rng.choice(("en", "es")),
                ip_address=f"10.0.{index // 250 % 250}.{index % 250 + 1}",
                status=MembershipApplication.Status.SUBMITTED,
                decided_by=None,
                decided_at=None,
                decision_reason="",
                member=None,
                user=None,
                created_at=created,
                updated_at=created,
            )
        for index in range(max(1, self.count // 30)):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            created = self.at(self.days_ago(20, 400), 10)
            self.applications.add(
                first_name=first,
                last_name=last,
                email=f"rejected{index + 1}@example.net",
                phone="",
                company="",
                plan=hot_desk.pk,
                desired_start_date=None,
                referral_source="",
                message="",
                language="en",
                ip_address=None,
                status=MembershipApplication.Status.REJECTED,
                decided_by=None,
                decided_at=created + datetime.timedelta(days=1),
                decision_reason="Incomplete contact details.",
                member=None,
                user=None,
                created_at=created,
                updated_at=created + datetime.timedelta(days=1),
            )

    def build_memberships(self, member_id, state, plans, user_id) -> None:
        plan = self.pick_plan(plans)
        rng = self.rng
        history_start = None
        # A fifth of the members had an earlier membership that ended.
        if rng.random() < 0.2 or state in (State.CANCELLED, State.ENDED):
            history_start = self.days_ago(500, 1600)
        if state in (State.CANCELLED, State.ENDED):
            start = history_start
            months = rng.randint(3, 24)
            end = min(add_months(start, months), self.days_ago(2, 30))
            if end <= start:
                end = start + datetime.timedelta(days=30)
            self.add_membership(member_id, plan, state, start, end_date=end, user_id=user_id)
            return
        if history_start is not None:
            history_end = history_start + datetime.timedelta(days=rng.randint(90, 360))
            self.add_membership(
                member_id, plan, State.ENDED, history_start, end_date=history_end, user_id=user_id
            )
            earliest = history_end + datetime.timedelta(days=rng.randint(1, 120))
        else:
            earliest = self.today - datetime.timedelta(days=1100)
        if state == State.PENDING:
            # Some paid and due today (the activation job's work), the rest waiting.
            if rng.random() < 0.3:
                start = self.today - datetime.timedelta(days=rng.randint(0, BACKLOG_DAYS))
            else:
                start = self.today + datetime.timedelta(days=rng.randint(1, 30))
        else:
            span = max((self.today - earliest).days, 31)
            start = self.today - datetime.timedelta(days=rng.randint(31, span))
        self.add_membership(member_id, plan, state, max(start, earliest), user_id=user_id)

    def add_membership(self, member_id, plan, state, start, *, end_date=None, user_id=None):
        rng = self.rng
        today = self.today
        commitment_end = add_months(start, plan.contract_months)
        cancel_at = None
        if state in (State.ACTIVE, State.PAST_DUE, State.SUSPENDED):
            while commitment_end <= today:
                commitment_end = add_months(commitment_end, plan.contract_months)
            roll = rng.random()
            if roll < 0.03 and plan.renewal_policy != Plan.RenewalPolicy.MONTH_TO_MONTH:
                # A commitment end that came in the last days: the term-end job's work.
                due = today - datetime.timedelta(days=rng.randint(0, BACKLOG_DAYS))
                start = add_months(due, -plan.contract_months)
                commitment_end = due
            elif roll < 0.05:
                cancel_at = today - datetime.timedelta(days=rng.randint(0, BACKLOG_DAYS))
                if cancel_at < start:
                    cancel_at = None
            elif roll < 0.08:
                cancel_at = commitment_end
        elif state == State.ENDED:
            commitment_end = max(commitment_end, end_date)
        grace_until = None
        if state == State.PAST_DUE:
            # About half of the grace periods ended before today: the suspension job's work.
            grace_until = today + datetime.timedelta(days=rng.randint(-6, 6))
        changed = self.at(min(today - datetime.timedelta(days=1), end_date or today))
        membership_id = self.memberships.add(
            member=member_id,
            plan=plan.pk,
            application=None,
            monthly_price=plan.monthly_price,
            included_credit=plan.included_credit,
            contract_months=plan.contract_months,
            start_date=start,
            commitment_end=commitment_end,
            end_date=end_date,
            cancel_at=cancel_at,
            state=state,
            state_changed_at=changed,
            grace_until=grace_until,
            odoo_ref="",
            odoo_imported={},
            created_at=self.at(start - datetime.timedelta(days=7)),
            updated_at=changed,
        )
        first, last, email = self.member_info[member_id]
        member_since = self.members.get(member_id, "member_since")
        if member_since is None or start < member_since:
            self.members.set(member_id, member_since=start)
        if rng.random() < 0.7:
            created = self.at(start - datetime.timedelta(days=10), 10)
            application_id = self.applications.add(
                first_name=first,
                last_name=last,
                email=email,
                phone="",
                company="",
                plan=plan.pk,
                desired_start_date=start,
                referral_source=rng.choice(MembershipApplication.ReferralSource.values),
                message="",
                language="en",
                ip_address=None,
                status=MembershipApplication.Status.APPROVED,
                decided_by=None,
                decided_at=created + datetime.timedelta(days=2),
                decision_reason="",
                member=member_id,
                user=user_id,
                created_at=created,
                updated_at=created + datetime.timedelta(days=2),
            )
            self.memberships.set(membership_id, application=application_id)

        paid = plan.monthly_price > 0 and not (state == State.CANCELLED and rng.random() < 0.3)
        record = _Membership(
            id=membership_id,
            member_id=member_id,
            plan=plan,
            state=state,
            start=start,
            commitment_end=commitment_end,
            end_date=end_date,
            gateway_paid=rng.random() < 0.8,
        )
        self.all_memberships[membership_id] = record
        if state in Membership.CURRENT_STATES:
            self.current[member_id] = record
        self.add_membership_events(record, cancel_at)
        if paid or state == State.PENDING:
            self.build_invoices(record)

    def add_membership_events(self, record: _Membership, cancel_at) -> None:
        start_at = self.at(record.start - datetime.timedelta(days=7))
        path = [("", State.PENDING, "application approved")]
        if record.state != State.PENDING:
            path.append((State.PENDING, State.ACTIVE, "payment received"))
        if record.state in (State.PAST_DUE, State.SUSPENDED):
            path.append((State.ACTIVE, State.PAST_DUE, "payment failed"))
        if record.state == State.SUSPENDED:
            path.append((State.PAST_DUE, State.SUSPENDED, "grace period over"))
        if record.state == State.ENDED:
            path.append((State.ACTIVE, State.ENDED, "term ended"))
        if record.state == State.CANCELLED:
            path.append((State.ACTIVE, State.CANCELLED, "cancelled by staff"))
        for step, (from_state, to_state, cause) in enumerate(path):
            self.membership_events.add(
                membership=record.id,
                from_state=from_state,
                to_state=to_state,
                actor=None,
                cause=cause,
                reason="",
                created_at=start_at + datetime.timedelta(days=7 * step),
            )

    # --- billing ------------------------------------------------------------------------

    def build_invoices(self, record: _Membership) -> None:
        """Invoices for the periods of the last 12 months (and the first, for pending)."""
        today = self.today
        if record.state == State.PENDING:
            # Pending memberships starting within the backlog are paid: activation work.
            if record.start <= today:
                self.add_invoice(record, 1, Invoice.Status.PAID)
            elif self.rng.random() < 0.5:
                self.add_invoice(record, 1, Invoice.Status.OPEN)
            return
        last_day = record.end_date - datetime.timedelta(days=1) if record.end_date else today
        if last_day < record.start:
            return
        current = period_containing(record.start, last_day).number
        first = max(
            1,
            period_containing(
                record.start, max(record.start, today - datetime.timedelta(days=365))
            ).number,
        )
        for number in range(first, current + 1):
            status = Invoice.Status.PAID
            if (
                record.state == State.PAST_DUE
                and number == current
                or record.state == State.SUSPENDED
                and number >= current - 1
            ):
                status = Invoice.Status.OPEN
            elif record.state == State.CANCELLED and number == current:
                status = Invoice.Status.UNCOLLECTIBLE
            period = billing_period(record.start, number)
            if (
                record.state == State.ACTIVE
                and number == current
                and record.gateway_paid
                and self.gateway == "fake"
                and period.start >= today - datetime.timedelta(days=BACKLOG_DAYS - 1)
            ):
                # This period's payment event arrived but its task was lost: the stuck
                # event job will process it (invoice, payment and credit grant).
                self.add_stuck_payment_event(record, period)
                continue
            self.add_invoice(record, number, status)

    def add_invoice(self, record: _Membership, number: int, status: str) -> int:
        period = billing_period(record.start, number)
        gateway = self.gateway if record.gateway_paid else ""
        reference = self.invoice_reference(record.id, number) if gateway else ""
        issued = self.at(period.start, 1)
        paid_at = self.at(period.start, 2) if status == Invoice.Status.PAID else None
        invoice_id = self.invoices.add(
            membership=record.id,
            kind=Invoice.Kind.PERIOD,
            period_number=number,
            period_start=period.start,
            period_end=period.end,
            amount=record.plan.monthly_price,
            status=status,
            gateway=gateway,
            gateway_reference=reference,
            hosted_url="",
            paid_at=paid_at,
            created_at=issued,
            updated_at=paid_at or issued,
        )
        record.invoices[number] = (invoice_id, status, period.start, period.end)
        if status == Invoice.Status.PAID and record.plan.included_credit > 0:
            grant_id = self.credit.add(
                member=record.member_id,
                kind=CreditEntry.Kind.GRANT,
                amount=record.plan.included_credit,
                lot=None,
                period_start=period.start,
                expires_on=period.end,
                invoice=invoice_id,
                reference=f"invoice:{invoice_id}",
                reason="",
                created_by=None,
                created_at=paid_at,
            )
            self.lots[(record.id, number)] = [
                grant_id,
                record.plan.included_credit,
                period.end,
                record.member_id,
                period.start,
            ]
        return invoice_id

    def invoice_reference(self, membership_id: int, number: int) -> str:
        if self.gateway == "fake":
            return f"fake_in_{membership_id}_{number}"
        return f"in_seed{membership_id:08d}{number:03d}"

    def add_stuck_payment_event(self, record: _Membership, period) -> None:
        number = period.number
        created = self.clock - datetime.timedelta(hours=2, minutes=number % 50)
        event_id = f"fake_evt_paid_{record.id}_{number}"
        payload = {
            "id": event_id,
            "type": "payment.succeeded",
            "created": created.isoformat(),
            "data": {
                "membership_id": record.id,
                "invoice_reference": self.invoice_reference(record.id, number),
                "payment_reference": f"fake_pay_{record.id}_{number}",
                "amount": str(record.plan.monthly_price),
                "period_start": period.start.isoformat(),
                "period_end": period.end.isoformat(),
                "paid_at": created.isoformat(),
                "hosted_url": "",
                "item_references": [],
            },
        }
        self.webhook_events.add(
            gateway=self.gateway,
            event_id=event_id,
            event_type="payment.succeeded",
            payload=payload,
            status=WebhookEvent.Status.RECEIVED,
            attempts=0,
            error="",
            received_at=created,
            processed_at=None,
        )

    def build_payments_and_gateway(self) -> None:
        """Payments (with their processed events) for every paid invoice, after bookings."""
        index = self.invoices._index
        for row in self.invoices.rows:
            if row[index["status"]] != Invoice.Status.PAID:
                continue
            invoice_id = row[0]
            membership_id = row[index["membership"]]
            number = row[index["period_number"]]
            paid_at = row[index["paid_at"]]
            amount = Decimal(row[index["amount"]])
            record = self.all_memberships[membership_id]
            if record.gateway_paid:
                method, gateway = Payment.Method.GATEWAY, self.gateway
                reference = f"{self.gateway}_pay_{membership_id}_{number}"
            else:
                method, gateway = self.rng.choice(MANUAL_METHODS), ""
                reference = f"{method.upper()}-{invoice_id}"
            self.payments.add(
                membership=membership_id,
                invoice=invoice_id,
                amount=amount,
                method=method,
                reference=reference,
                gateway=gateway,
                received_at=paid_at,
                recorded_by=None,
                note="",
                created_at=paid_at,
            )
            if record.gateway_paid:
                event_id = f"{self.gateway}_evt_paid_{membership_id}_{number}"
                self.webhook_events.add(
                    gateway=self.gateway,
                    event_id=event_id,
                    event_type="payment.succeeded",
                    payload={
                        "id": event_id,
                        "type": "payment.succeeded",
                        "created": paid_at.isoformat(),
                        "data": {"membership_id": membership_id, "amount": str(amount)},
                    },
                    status=WebhookEvent.Status.PROCESSED,
                    attempts=1,
                    error="",
                    received_at=paid_at,
                    processed_at=paid_at,
                )
        customers = set()
        for record in self.all_memberships.values():
            if not record.gateway_paid or not record.invoices:
                continue
            created = self.at(record.start - datetime.timedelta(days=1))
            if record.member_id not in customers:
                customers.add(record.member_id)
                reference = (
                    f"fake_cus_{record.member_id}"
                    if self.gateway == "fake"
                    else f"cus_seed{record.member_id:08d}"
                )
                self.customers.add(
                    member=record.member_id,
                    gateway=self.gateway,
                    reference=reference,
                    created_at=created,
                )
            ended = None if record.state in Membership.CURRENT_STATES else self.at(record.end_date)
            self.subscriptions.add(
                membership=record.id,
                gateway=self.gateway,
                reference=(
                    f"fake_sub_{record.id}"
                    if self.gateway == "fake"
                    else f"sub_seed{record.id:08d}"
                ),
                cancel_at=None,
                ended_at=ended,
                created_at=created,
                updated_at=ended or created,
            )

    # --- rooms and credit ----------------------------------------------------------------

    def build_bookings(self, rooms) -> None:
        """Bookings from 3 months back to 3 months ahead, never overlapping in a room."""
        rng = self.rng
        bookers = [
            record
            for record in self.current.values()
            if record.state in (State.ACTIVE, State.PAST_DUE)
        ]
        if not bookers:
            return
        first_day = self.today - datetime.timedelta(days=91)
        for offset in range(182):
            day = first_day + datetime.timedelta(days=offset)
            for room_id, rate, hours in rooms:
                if day.weekday() not in hours:
                    continue
                opens, closes = hours[day.weekday()]
                slot = datetime.datetime.combine(day, opens, tzinfo=self.tz)
                closing = datetime.datetime.combine(day, closes, tzinfo=self.tz)
                while slot < closing:
                    if rng.random() < 0.55:
                        slot += datetime.timedelta(minutes=30 * rng.randint(1, 3))
                        continue
                    minutes = rng.choice((30, 60, 60, 90, 120))
                    end = min(slot + datetime.timedelta(minutes=minutes), closing)
                    record = rng.choice(bookers)
                    if record.start <= day:
                        self.add_booking(record, room_id, rate, slot, end)
                    slot = end

    def add_booking(self, record, room_id, rate, start, end) -> None:
        rng = self.rng
        hours = Decimal((end - start).total_seconds() / 3600).quantize(Decimal("0.01"))
        price = (rate * hours).quantize(CENT)
        booked_on = min(start.date() - datetime.timedelta(days=rng.randint(0, 6)), self.today)
        booked_on = max(booked_on, record.start)
        created = self.at(booked_on, 8)
        # The credit a member has on the day of booking pays, whatever the booking's date.
        lot = self.lots.get((record.id, period_containing(record.start, booked_on).number))
        credit_used = min(price, lot[1]) if lot else ZERO
        overage = price - credit_used
        cancelled = overage == 0 and credit_used > 0 and rng.random() < 0.08
        cancelled_at = None
        if cancelled:
            cancelled_at = min(created + datetime.timedelta(hours=2), self.clock)
        booking_id = self.bookings.add(
            member=record.member_id,
            membership=record.id,
            room=room_id,
            start=start,
            end=end,
            status=Booking.Status.CANCELLED if cancelled else Booking.Status.CONFIRMED,
            price=price,
            credit_used=credit_used,
            overage=overage,
            booked_by=None,
            created_at=created,
            cancelled_at=cancelled_at,
            cancelled_by=None,
            cancel_reason="Plans changed." if cancelled else "",
            charge_kept=False,
            updated_at=cancelled_at or created,
        )
        reference = f"booking:{booking_id}"
        if credit_used > 0:
            self.credit.add(
                member=record.member_id,
                kind=CreditEntry.Kind.SPEND,
                amount=-credit_used,
                lot=lot[0],
                period_start=lot[4],
                expires_on=None,
                invoice=None,
                reference=reference,
                reason="",
                created_by=None,
                created_at=created,
            )
            if cancelled:
                self.credit.add(
                    member=record.member_id,
                    kind=CreditEntry.Kind.REFUND,
                    amount=credit_used,
                    lot=lot[0],
                    period_start=lot[4],
                    expires_on=None,
                    invoice=None,
                    reference=reference,
                    reason="",
                    created_by=None,
                    created_at=cancelled_at,
                )
            else:
                lot[1] -= credit_used
        if overage > 0:
            self.add_overage_item(record, booked_on, overage, reference, created)

    def add_overage_item(self, record, booked_on, overage, reference, created) -> None:
        number = period_containing(record.start, booked_on).number
        next_invoice = record.invoices.get(number + 1)
        invoice_id = None
        status = InvoiceItem.Status.PENDING
        if next_invoice is not None and next_invoice[1] == Invoice.Status.PAID:
            invoice_id = next_invoice[0]
            status = InvoiceItem.Status.INVOICED
            amount = Decimal(self.invoices.get(invoice_id, "amount")) + overage
            self.invoices.set(invoice_id, amount=amount)
        self.invoice_items.add(
            membership=record.id,
            amount=overage,
            description=f"Meeting room overage ({reference})",
            reference=reference,
            status=status,
            invoice=invoice_id,
            gateway="",
            gateway_reference="",
            gateway_removed_at=None,
            created_by=None,
            created_at=created,
            voided_at=None,
            updated_at=created,
        )

    def build_credit_expiry_and_adjustments(self, staff_id: int | None) -> None:
        """Expire the lots past their date, except the last few days' (the expiry job's work)."""
        backlog_from = self.today - datetime.timedelta(days=BACKLOG_DAYS)
        for (_membership_id, _number), (lot_id, remaining, expires_on, member_id, start) in sorted(
            self.lots.items()
        ):
            if expires_on > self.today or remaining <= 0 or expires_on > backlog_from:
                continue
            self.credit.add(
                member=member_id,
                kind=CreditEntry.Kind.EXPIRE,
                amount=-remaining,
                lot=lot_id,
                period_start=start,
                expires_on=None,
                invoice=None,
                reference="",
                reason="",
                created_by=None,
                created_at=self.at(expires_on, 0, 25),
            )
        for member_id in sorted(self.current):
            if self.rng.random() < 0.05:
                self.credit.add(
                    member=member_id,
                    kind=CreditEntry.Kind.ADJUST,
                    amount=Decimal(self.rng.choice((25, 50, 75))).quantize(CENT),
                    lot=None,
                    period_start=None,
                    expires_on=self.today + datetime.timedelta(days=60),
                    invoice=None,
                    reference="",
                    reason="Goodwill credit after the air-conditioning outage.",
                    created_by=staff_id,
                    created_at=self.at(self.days_ago(1, 30)),
                )

    # --- access keys ----------------------------------------------------------------------

    def build_keys(self) -> None:
        """Build a key for each member who was ever active, some waiting for the door system."""
        rng = self.rng
        by_member: dict[int, list[_Membership]] = defaultdict(list)
        for record in self.all_memberships.values():
            by_member[record.member_id].append(record)
        Wanted, Status, Sync = AccessKey.Wanted, AccessKey.Status, AccessKey.Sync
        for member_id in sorted(by_member):
            current = self.current.get(member_id)
            if current is not None and current.state == State.PENDING:
                continue
            first_start = min(record.start for record in by_member[member_id])
            issued = self.at(first_start, 9)
            if current is None:
                last = max(by_member[member_id], key=lambda record: record.start)
                wanted, status = Wanted.REVOKED, Status.REVOKED
                if rng.random() < 0.3:
                    status = Status.RETURNED
                changed = self.at(last.end_date or self.today, 18)
            elif current.state in (State.ACTIVE, State.PAST_DUE):
                wanted, status = Wanted.ACTIVE, Status.ACTIVE
                changed = issued
            else:
                wanted, status = Wanted.SUSPENDED, Status.SUSPENDED
                changed = self.at(self.days_ago(1, 40), 3)
            roll = rng.random()
            sync, backend, attempts, error = Sync.IN_SYNC, wanted, 0, ""
            if roll < 0.08:
                # Changed lately and not yet pushed to the door system.
                sync, backend = (
                    Sync.PENDING,
                    rng.choice(["", *(v for v in Wanted.values if v != wanted)]),
                )
            elif roll < 0.09:
                sync, backend, attempts = Sync.FAILED, "", 8
                error = "Salto KS answered 503 Service Unavailable."
            key_id = self.keys.add(
                member=member_id,
                number=f"{rng.choice('ABCDEF')}{member_id:07d}",
                kind=rng.choice(KEY_KINDS),
                status=status,
                staff_hold=False,
                staff_hold_reason="",
                issued_at=issued,
                returned_at=changed if status == Status.RETURNED else None,
                wanted_state=wanted,
                backend_state=backend,
                sync_status=sync,
                sync_attempts=attempts,
                last_error=error,
                last_synced_at=changed if sync == Sync.IN_SYNC else None,
                created_at=issued,
                updated_at=changed,
            )
            self.key_events.add(
                key=key_id,
                cause=AccessEvent.Cause.STAFF,
                actor=None,
                from_status="",
                to_status=Status.ACTIVE,
                from_wanted="",
                to_wanted=Wanted.ACTIVE,
                reason="key issued",
                created_at=issued,
            )
            if status != Status.ACTIVE:
                self.key_events.add(
                    key=key_id,
                    cause=AccessEvent.Cause.PAYMENT
                    if status == Status.SUSPENDED
                    else AccessEvent.Cause.SCHEDULE,
                    actor=None,
                    from_status=Status.ACTIVE,
                    to_status=status,
                    from_wanted=Wanted.ACTIVE,
                    to_wanted=wanted,
                    reason="membership changed",
                    created_at=changed,
                )

    # --- outbox ---------------------------------------------------------------------------

    def build_outbox(self) -> None:
        """Sent history, plus rows the sweep must pick up: due, abandoned and expired."""
        rng = self.rng
        Status = OutboxEmail.Status
        sequence = 0

        def add(template, recipient, context, *, status, when, **extra):
            nonlocal sequence
            sequence += 1
            values = {
                "recipient": recipient,
                "template": template,
                "context": context,
                "language": "en",
                "status": status,
                "attempts": 0,
                "last_error": "",
                "next_attempt_at": when,
                "claimed_until": None,
                "expires_at": None,
                "subject": "",
                "body_text": "",
                "body_html": "",
                "claim_token": None,
                "sent_at": None,
                "message_id": f"<seed.{sequence}@code.pr>",
                "dedupe_key": f"seed:{template}:{sequence}",
                "created_at": when,
                "updated_at": when,
            }
            values.update(extra)
            self.outbox.add(**values)

        index = self.payments._index
        for row in self.payments.rows[-2 * self.count :]:
            record = self.all_memberships[row[index["membership"]]]
            first, _last, email = self.member_info[record.member_id]
            received = row[index["received_at"]]
            add(
                "payment_received",
                email,
                self.payment_context(first, row[0], row[index["amount"]], received),
                status=Status.SENT,
                when=received,
                sent_at=received + datetime.timedelta(seconds=5),
                attempts=1,
            )
        members = sorted(self.member_info)
        work = max(1, self.count // 40)
        for position in range(work):
            member_id = members[rng.randrange(len(members))]
            first, _last, email = self.member_info[member_id]
            due = self.clock - datetime.timedelta(hours=1, seconds=position)
            add(
                "membership_suspended",
                email,
                {"first_name": first, "plan_name": "Hot Desk"},
                status=Status.QUEUED,
                when=due,
                attempts=1,
                last_error="Connection refused by the relay.",
            )
        for position in range(max(1, self.count // 400)):
            member_id = members[rng.randrange(len(members))]
            first, _last, email = self.member_info[member_id]
            due = self.clock - datetime.timedelta(hours=1, seconds=position)
            add(
                "key_issued",
                email,
                {"first_name": first, "key_kind": "fob", "key_last_digits": "4321"},
                status=Status.SENDING,
                when=due,
                attempts=1,
                claimed_until=due + datetime.timedelta(minutes=10),
                claim_token=f"00000000-0000-4000-8000-{position:012d}",
            )
        for position in range(max(1, self.count // 200)):
            member_id = members[rng.randrange(len(members))]
            _first, _last, email = self.member_info[member_id]
            when = self.clock - datetime.timedelta(hours=3, seconds=position)
            add(
                ACCOUNT_TEMPLATE,
                email,
                {},
                status=Status.QUEUED,
                when=when,
                expires_at=when + datetime.timedelta(minutes=3),
                subject="[Code Puerto Rico] Sign-in code",
                body_text="Your sign-in code is 123456.",
            )
        for position in range(max(1, self.count // 500)):
            member_id = members[rng.randrange(len(members))]
            first, _last, email = self.member_info[member_id]
            when = self.clock - datetime.timedelta(days=2, seconds=position)
            add(
                "membership_reinstated",
                email,
                {"first_name": first, "plan_name": "Hot Desk"},
                status=Status.FAILED,
                when=when,
                attempts=20,
                last_error="550 5.1.1 Recipient address rejected",
            )

    @staticmethod
    def payment_context(first, payment_id, amount, received) -> dict:
        return {
            "first_name": first,
            "payment_id": payment_id,
            "amount": str(amount),
            "method": "Card (online)",
            "received_on": received.date().isoformat(),
        }

    def build_feeds(self) -> None:
        for member_id in sorted(self.current):
            if self.rng.random() < 0.2:
                token = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
                self.feeds.add(
                    member=member_id,
                    token=token,
                    created_at=self.at(self.days_ago(1, 200)),
                    rotated_at=None,
                )

    # --- the whole run --------------------------------------------------------------------

    def run(self, *, staff_id: int | None = None) -> SeedResult:
        plans = self.ensure_plans()
        self.progress("Generating members, memberships, invoices and credit")
        rooms = self.build_rooms()
        self.build_members(plans)
        self.progress(f"Generating bookings in {len(rooms)} rooms")
        self.build_bookings(rooms)
        self.build_payments_and_gateway()
        self.build_credit_expiry_and_adjustments(staff_id)
        self.progress("Generating access keys, outbox rows and calendar feeds")
        self.build_keys()
        self.build_outbox()
        self.build_feeds()
        self.progress("Writing rows with COPY")
        write_tables(
            self.tables,
            progress=lambda table: self.progress(f"  {table.model._meta.db_table}: {len(table)}"),
        )
        counts = {table.model._meta.label: len(table) for table in self.tables}
        samples = [
            record.member_id
            for record in sorted(self.current.values(), key=lambda record: record.member_id)
            if record.state == State.ACTIVE
            and self.members.get(record.member_id, "user") is not None
        ][:5]
        return SeedResult(
            counts=counts,
            plan_ids={slug: plan.pk for slug, plan in plans.items()},
            sample_member_ids=samples,
        )


def membership_state_counts() -> Counter:
    return Counter(Membership.objects.values_list("state", flat=True))


def _ascii(text: str) -> str:
    table = str.maketrans("áéíóúÁÉÍÓÚñÑü", "aeiouAEIOUnNu")
    return text.translate(table)
