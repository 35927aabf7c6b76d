"""Steps of the HTTP benchmark that run inside Django, against the benchmark database.

bench/http_bench.py runs each step as `python bench/django_steps.py STEP ...` with the
benchmark server's environment, so every step reads the same settings and database as
the server it measures. Each step writes JSON to the file given with --out.

Steps:
  prepare          create the sessions and pick the rows the pages are requested for
  queries          request every page in-process and count its status and SQL queries
  webhook-payloads write signed Stripe invoice.paid deliveries, one unique event a line
  webhook-counts   count the rows the webhook deliveries created
  profile          profile requests of one page with pyinstrument (for a kept database)
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The Stripe invoice.paid event in the shape of API version 2025-03-31.basil, the same
# fixture the webhook tests sign.
INVOICE_PAID_FIXTURE = PROJECT_DIR / "tests" / "billing" / "stripe_payloads" / "invoice_paid.json"
# Prefix of the event, invoice and payment ids of the benchmark's webhook deliveries.
BENCH_ID_PREFIX = "bench"
# The search of the admin lists' growth probes. seed_scale's member emails end in
# ".<number>@example.com", so this matches one member in ten: a few rows at a few dozen
# members, a full page (100 rows) from a few hundred on.
PROBE_SEARCH = "1@example.com"


def setup_django() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpr_portal.settings")
    import django

    django.setup()


def write_json(path: str, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


# --- prepare ---------------------------------------------------------------------------


def staff_session() -> str:
    """Return a session key of seed_scale's superuser, signed in with two factors."""
    from django.contrib.auth import get_user_model

    from benchmarks import logins

    staff = get_user_model().objects.filter(username=logins.STAFF_USERNAME).first()
    if staff is None:
        raise SystemExit(
            f"error: the benchmark database has no staff user {logins.STAFF_USERNAME!r}. "
            "Seed it with `manage.py seed_scale` first."
        )
    return logins.signed_in_session(staff, with_mfa=True)


def member_session(member) -> str:
    from benchmarks import logins

    return logins.signed_in_session(member.user, with_mfa=False)


def sample_member():
    """Return the member with a login and an active membership who has the most invoices.

    The member with the longest history is the hardest case for the member's pages.
    """
    from django.db.models import Count

    from members.models import Member, Membership

    member = (
        Member.objects.filter(
            user__isnull=False,
            memberships__state=Membership.State.ACTIVE,
        )
        .annotate(invoice_count=Count("memberships__invoices", distinct=True))
        .order_by("-invoice_count", "pk")
        .first()
    )
    if member is None:
        raise SystemExit(
            "error: the benchmark database has no member with a login and an active "
            "membership. Seed it with `manage.py seed_scale` first."
        )
    return member


def prepare(args) -> None:
    from access.models import AccessKey
    from bookings.models import Room
    from members.models import Membership

    member = sample_member()
    membership = member.memberships.filter(state=Membership.State.ACTIVE).first()
    room = Room.objects.order_by("pk").first()
    if room is None:
        raise SystemExit("error: the benchmark database has no meeting room to show.")
    key = AccessKey.objects.filter(member=member).first()

    # Searches by the sample member's last name, which matches a realistic share of rows,
    # together with a filter, as staff use the lists.
    term = member.last_name
    key_term = key.number if key is not None else term

    def admin_page(name: str, changelist: str, search: str, list_filter: dict) -> dict:
        # The measured path searches like staff do and lists a few rows at any size. The
        # probe lists more rows at a larger data set, so a query a row shows in its count.
        return {
            "name": name,
            "path": f"{changelist}?" + urlencode({"q": search, **list_filter}),
            "probe": f"{changelist}?" + urlencode({"q": PROBE_SEARCH, **list_filter}),
            "kind": "admin",
            "session": "staff",
        }

    fixture = {
        "staff_session": staff_session(),
        "member_session": member_session(member),
        "member_id": member.pk,
        "membership_id": membership.pk,
        "room_id": room.pk,
        "pages": [
            {"name": "bare", "path": "/bench/bare/", "kind": "floor", "session": None},
            {"name": "layout", "path": "/bench/layout/", "kind": "reference", "session": None},
            {"name": "home", "path": "/", "kind": "public", "session": None},
            {"name": "apply", "path": "/apply/", "kind": "public", "session": None},
            {
                "name": "dashboard (invoices, credit history)",
                "path": "/portal/",
                "kind": "member",
                "session": "member",
            },
            {
                "name": "membership history",
                "path": f"/portal/memberships/{membership.pk}/",
                "kind": "member",
                "session": "member",
            },
            {
                "name": "my bookings",
                "path": "/portal/bookings/",
                "kind": "member",
                "session": "member",
            },
            {
                "name": "room week",
                "path": f"/portal/rooms/{room.pk}/week/",
                "kind": "member",
                "session": "member",
            },
            admin_page(
                "admin members", "/admin/members/member/", term, {"current_state": "active"}
            ),
            admin_page(
                "admin memberships",
                "/admin/members/membership/",
                term,
                {"state__exact": "active"},
            ),
            admin_page(
                "admin invoices", "/admin/billing/invoice/", term, {"status__exact": "paid"}
            ),
            admin_page(
                "admin keys", "/admin/access/accesskey/", key_term, {"status__exact": "active"}
            ),
        ],
    }
    write_json(args.out, fixture)


# --- queries -------------------------------------------------------------------------------


def listed_rows(response) -> int | None:
    """Return how many rows an admin changelist shows on its page, None for other pages."""
    changelist = (getattr(response, "context_data", None) or {}).get("cl")
    if changelist is None:
        return None
    return len(changelist.result_list)


def request_counted(client, path: str) -> tuple:
    """Request `path` in-process; return the response and its number of SQL queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # One request first, so that lazily filled caches (ContentType, translations) do not
    # count against the page.
    client.get(path, secure=True)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, secure=True)
    return response, len(queries.captured_queries)


def count_queries(args) -> None:
    """Request each page in-process and record its status and number of SQL queries.

    A page with a growth probe (the admin lists) also records the probe's queries and
    the rows it lists.
    """
    from django.conf import settings
    from django.test import Client

    fixture = json.loads(Path(args.fixture).read_text())
    results = {}
    for page in fixture["pages"]:
        client = Client()
        if page["session"]:
            client.cookies[settings.SESSION_COOKIE_NAME] = fixture[f"{page['session']}_session"]
        response, queries = request_counted(client, page["path"])
        results[page["name"]] = {
            "path": page["path"],
            "status": response.status_code,
            "queries": queries,
        }
        if page.get("probe"):
            probe, probe_queries = request_counted(client, page["probe"])
            results[page["name"]] |= {
                "probe": page["probe"],
                "probe_status": probe.status_code,
                "probe_queries": probe_queries,
                "probe_rows": listed_rows(probe),
            }
    write_json(args.out, results)


# --- webhooks ------------------------------------------------------------------------------


def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    """Return a Stripe-Signature header: HMAC-SHA256 of "<t>.<body>", Stripe's v1 scheme."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def day_start(day: datetime.date) -> int:
    from django.utils import timezone

    start = datetime.datetime.combine(day, datetime.time.min, timezone.get_default_timezone())
    return int(start.timestamp())


def invoice_paid_event(
    *, event_id: str, invoice_id: str, membership, period, amount_cents: int
) -> dict:
    """Return a Stripe invoice.paid event for one billing period of `membership`."""
    event = json.loads(INVOICE_PAID_FIXTURE.read_text())
    now = int(time.time())
    event["id"] = event_id
    event["created"] = now
    invoice = event["data"]["object"]
    invoice["id"] = invoice_id
    metadata = {"membership_id": str(membership.pk)}
    invoice["parent"]["subscription_details"]["metadata"] = metadata
    subscription = f"sub_{BENCH_ID_PREFIX}_{membership.pk}"
    invoice["parent"]["subscription_details"]["subscription"] = subscription
    line = invoice["lines"]["data"][0]
    line["invoice"] = invoice_id
    line["metadata"] = dict(metadata)
    line["period"] = {"start": day_start(period.start), "end": day_start(period.end)}
    line["amount"] = amount_cents
    invoice["amount_due"] = amount_cents
    invoice["amount_paid"] = amount_cents
    invoice["status_transitions"]["paid_at"] = now
    for payment in invoice.get("payments", {}).get("data", []):
        payment["invoice"] = invoice_id
        payment["payment"]["payment_intent"] = f"pi_{invoice_id}"
    return event


def webhook_payloads(args) -> None:
    """Write `--count` signed invoice.paid deliveries, each a unique event, one a line.

    Each event pays a billing period that has no invoice yet, of the active memberships in
    turn, so every delivery does the full work of a payment: invoice, payment, credit.
    A line is `<Stripe-Signature header>\\t<JSON body>`.
    """
    from django.conf import settings
    from django.db.models import Max

    from billing.gateways.stripe_payloads import to_cents
    from members.models import Membership
    from members.periods import billing_period

    secret = settings.STRIPE_WEBHOOK_SECRET
    memberships = list(
        Membership.objects.filter(state=Membership.State.ACTIVE)
        .annotate(last_period=Max("invoices__period_number"))
        .order_by("pk")[: args.count]
    )
    if not memberships:
        raise SystemExit("error: no active membership to send invoice.paid events for.")
    timestamp = int(time.time())
    lines = []
    event_ids = []
    for number in range(args.count):
        membership = memberships[number % len(memberships)]
        period_number = (membership.last_period or 0) + 1 + number // len(memberships)
        period = billing_period(membership.start_date, period_number)
        invoice_id = f"in_{BENCH_ID_PREFIX}_{args.run}_{number}"
        event_id = f"evt_{BENCH_ID_PREFIX}_{args.run}_{number}"
        event = invoice_paid_event(
            event_id=event_id,
            invoice_id=invoice_id,
            membership=membership,
            period=period,
            amount_cents=to_cents(membership.monthly_price),
        )
        body = json.dumps(event, separators=(",", ":"))
        lines.append(f"{stripe_signature(body.encode(), secret, timestamp)}\t{body}")
        event_ids.append(event_id)
    Path(args.payloads).write_text("\n".join(lines) + "\n")
    write_json(args.out, {"events": len(event_ids), "memberships": len(memberships)})


def webhook_counts(args) -> None:
    """Count the webhook rows, invoices and payments that the run's deliveries created."""
    from django.db.models import Count

    from billing.models import Invoice, Payment, WebhookEvent

    event_prefix = f"evt_{BENCH_ID_PREFIX}_{args.run}_"
    invoice_prefix = f"in_{BENCH_ID_PREFIX}_{args.run}_"
    statuses = dict(
        WebhookEvent.objects.filter(event_id__startswith=event_prefix)
        .values_list("status")
        .annotate(count=Count("pk"))
    )
    counts = {
        "webhook_events": sum(statuses.values()),
        "webhook_statuses": statuses,
        "paid_invoices": Invoice.objects.filter(
            gateway_reference__startswith=invoice_prefix, status=Invoice.Status.PAID
        ).count(),
        "payments": Payment.objects.filter(
            invoice__gateway_reference__startswith=invoice_prefix
        ).count(),
        "duplicate_payments": Payment.objects.filter(
            invoice__gateway_reference__startswith=invoice_prefix
        )
        .values("invoice")
        .annotate(count=Count("pk"))
        .filter(count__gt=1)
        .count(),
    }
    write_json(args.out, counts)


def profile_page(args) -> None:
    """Request one page in-process `--requests` times under pyinstrument; print the profile."""
    from django.conf import settings
    from django.test import Client
    from pyinstrument import Profiler

    client = Client()
    if args.signed_in_as == "staff":
        client.cookies[settings.SESSION_COOKIE_NAME] = staff_session()
    elif args.signed_in_as == "member":
        client.cookies[settings.SESSION_COOKIE_NAME] = member_session(sample_member())
    client.get(args.path, secure=True)
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    with profiler:
        for _ in range(args.requests):
            response = client.get(args.path, secure=True)
    elapsed = (time.perf_counter() - started) / args.requests
    print(f"{args.path}: status {response.status_code}, {elapsed * 1000:.1f} ms a request")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    write_json(args.out, {"path": args.path, "ms_per_request": round(elapsed * 1000, 2)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("prepare")
    step.add_argument("--out", required=True)
    step = steps.add_parser("queries")
    step.add_argument("--fixture", required=True)
    step.add_argument("--out", required=True)
    step = steps.add_parser("webhook-payloads")
    step.add_argument("--count", type=int, required=True)
    step.add_argument("--run", required=True, help="Run id that makes the event ids unique.")
    step.add_argument("--payloads", required=True)
    step.add_argument("--out", required=True)
    step = steps.add_parser("webhook-counts")
    step.add_argument("--run", required=True)
    step.add_argument("--out", required=True)
    step = steps.add_parser("profile")
    step.add_argument("--path", required=True)
    step.add_argument(
        "--signed-in-as", choices=["anonymous", "member", "staff"], default="anonymous"
    )
    step.add_argument("--requests", type=int, default=50)
    step.add_argument("--out", required=True)
    args = parser.parse_args()

    setup_django()
    handlers = {
        "prepare": prepare,
        "queries": count_queries,
        "webhook-payloads": webhook_payloads,
        "webhook-counts": webhook_counts,
        "profile": profile_page,
    }
    handlers[args.step](args)


if __name__ == "__main__":
    main()
