"""`manage.py seed_scale`: fill PostgreSQL with a large, realistic data set for benchmarks."""

import argparse
import datetime
import time
from pathlib import Path

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from access.models import AccessEvent, AccessKey
from benchmarks import logins
from benchmarks.loader import truncate
from benchmarks.seeding import Seeder, membership_state_counts
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
from members.models import Member, Membership, MembershipApplication, MembershipEvent
from outbox.models import OutboxEmail

# Tables that --flush empties. Plans stay (the seed updates its plans by slug), and so do the
# install token of the backups and Django's own tables.
FLUSHED_MODELS = [
    AccessEvent, AccessKey, Booking, CalendarFeed, RoomHours, Room, CreditEntry,
    InvoiceItem, Payment, Invoice, GatewaySubscription, GatewayCustomer, WebhookEvent,
    OutboxEmail, MembershipEvent, Membership, MembershipApplication, Member, Authenticator,
    SocialAccount, EmailAddress, Session, get_user_model(),
]  # fmt: skip

DEFAULT_PASSWORD = "bench-password-2026"
# The maximum --members: 100 times the benchmark's 10,000 members, a few minutes and
# several gigabytes of memory.
MAX_MEMBERS = 1_000_000


def _date(value: str) -> datetime.date:
    # argparse turns ArgumentTypeError into a usage error; a CommandError raised here would
    # escape as a traceback.
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use YYYY-MM-DD") from None


def _members(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= MAX_MEMBERS:
        raise argparse.ArgumentTypeError(
            f"{value} is not between 1 and {MAX_MEMBERS:,}; seed at most {MAX_MEMBERS:,} "
            "members at a time"
        )
    return number


class Command(BaseCommand):
    help = (
        "Fill the PostgreSQL database with N members and their memberships, invoices, "
        "payments, credit, keys, room bookings and emails, for the benchmarks. The same "
        "--seed and --today give the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--members",
            type=_members,
            default=10_000,
            help=f"Members to create (10000; at most {MAX_MEMBERS}).",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument(
            "--today",
            type=_date,
            default=None,
            help="The day the data is built around (YYYY-MM-DD); default: today, local time.",
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="Delete the members, logins and everything that hangs off them first.",
        )
        parser.add_argument(
            "--password",
            default=DEFAULT_PASSWORD,
            help="Password of the staff login and the sample member logins.",
        )
        parser.add_argument(
            "--sessions",
            type=Path,
            default=None,
            help="Write signed-in session keys (staff with two factors, sample members) here.",
        )

    def handle(self, *args, members, seed, today, flush, password, sessions, **options):
        if connection.vendor != "postgresql":
            raise CommandError(
                f"seed_scale loads with PostgreSQL's COPY, but DATABASE_URL points at "
                f"{connection.vendor}. Set DATABASE_URL=postgres://… and run it again."
            )
        if not 1 <= members <= MAX_MEMBERS:
            raise CommandError(f"--members must be between 1 and {MAX_MEMBERS:,}, not {members}.")
        if sessions is not None and not sessions.parent.is_dir():
            raise CommandError(
                f"--sessions {sessions}: the folder {sessions.parent} does not exist."
            )
        existing = Member.objects.count()
        if existing and not flush:
            raise CommandError(
                f"The database {connection.settings_dict['NAME']} already has {existing} "
                "members. Run with --flush to delete them (and everything else seed_scale "
                "writes) first."
            )
        today = today or timezone.localdate()
        started = time.monotonic()

        def progress(message):
            self.stdout.write(f"[{time.monotonic() - started:6.1f}s] {message}")

        with transaction.atomic():
            if flush:
                progress(f"Deleting {existing} members and their data (--flush)")
                truncate(FLUSHED_MODELS)
            # Dated from the anchor day like every seeded row, not from the clock. The staff
            # user comes first: the Seeder numbers its users after the highest id.
            joined = datetime.datetime.combine(
                today - datetime.timedelta(days=400),
                datetime.time(9, 0),
                tzinfo=timezone.get_current_timezone(),
            )
            staff = logins.ensure_staff(password=password, seed=seed, joined=joined)
            seeder = Seeder(members=members, seed=seed, today=today, progress=progress)
            result = seeder.run(staff_id=staff.pk)
            samples = list(
                Member.objects.filter(pk__in=result.sample_member_ids).values_list(
                    "user_id", flat=True
                )
            )
            sample_users = logins.set_member_passwords(user_ids=samples, password=password)
        progress("Analyzing tables")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

        self.stdout.write(
            self.style.SUCCESS(f"Seeded {members} members for {today} (seed {seed}).")
        )
        self.stdout.write("Rows written per table:")
        for label, count in sorted(result.counts.items()):
            self.stdout.write(f"  {label:<32} {count:>9}")
        states = membership_state_counts()
        self.stdout.write(
            "Memberships by state: "
            + ", ".join(f"{state} {count}" for state, count in sorted(states.items()))
        )
        self.stdout.write(
            f"Staff login: {logins.STAFF_EMAIL} / {password} "
            f"(TOTP secret {logins.totp_secret_for(seed)})"
        )
        self.stdout.write(
            "Member logins: " + ", ".join(user.email for user in sample_users) + f" / {password}"
        )
        if sessions is not None:
            logins.write_sessions(
                sessions, staff=staff, members=sample_users, password=password, seed=seed
            )
            self.stdout.write(f"Session cookies written to {sessions}")
        progress("Done")
