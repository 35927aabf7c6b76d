"""The pieces of bench/run that decide its results: webhook signatures and the checks."""

import importlib.util
import sys
from pathlib import Path

import pytest
import stripe

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def load_bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


django_steps = load_bench_module("django_steps")
budgets = load_bench_module("budgets")


def test_webhook_signature_verifies_with_stripe():
    body = b'{"id": "evt_bench_1", "type": "invoice.paid"}'
    header = django_steps.stripe_signature(body, "whsec_bench_secret", 1_700_000_000)

    stripe.WebhookSignature.verify_header(body, header, "whsec_bench_secret", tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, header, "whsec_other", tolerance=None)


@pytest.mark.django_db
def test_webhook_payload_pays_membership(hot_desk):
    from billing.gateways.stripe_payloads import normalize_stripe_event
    from members.periods import billing_period
    from tests.factories import MembershipFactory

    membership = MembershipFactory(plan=hot_desk)
    period = billing_period(membership.start_date, 3)
    payload = django_steps.invoice_paid_event(
        event_id="evt_bench_run_1",
        invoice_id="in_bench_run_1",
        membership=membership,
        period=period,
        amount_cents=25000,
    )

    event = normalize_stripe_event(payload)

    assert event.event_id == "evt_bench_run_1"
    assert event.membership_id == membership.pk
    assert event.invoice_reference == "in_bench_run_1"
    assert event.period_start == period.start


def page(**overrides) -> dict:
    values = {
        "path": "/",
        "kind": "public",
        "status": 200,
        "queries": 3,
        "queries_small": 3,
        "p50_ms": 6.0,
        "p95_ms": 12.0,
        "requests": 100,
        "unexpected_status": 0,
        "socket_errors": 0,
        "timeouts": 0,
    }
    return values | overrides


def webhooks(**counts) -> dict:
    values = {
        "webhook_events": 10,
        "webhook_statuses": {"processed": 10},
        "paid_invoices": 10,
        "payments": 10,
        "duplicate_payments": 0,
    }
    return {
        "events_accepted": 10,
        "processed_per_second": 250.0,
        "unexpected_status": 0,
        "counts": values | counts,
    }


def results(pages: dict, hooks: dict) -> dict:
    floor = {"p50_ms": 4.0, "p95_ms": 8.0}
    return {
        "members": 300,
        "small_members": 30,
        "floor_runs": [floor, floor],
        "pages": pages,
        "webhooks": hooks,
    }


def test_budgets_compare_with_bare_view():
    run = results(
        {
            "home": page(p50_ms=6.0, p95_ms=12.0),
            "dashboard": page(kind="member", p50_ms=6.1, p95_ms=12.0),
            "admin": page(kind="admin", p95_ms=24.0, queries=5, queries_small=5),
        },
        webhooks(),
    )

    budgets.evaluate(run)

    assert run["pages"]["home"]["ratio_p50"] == 1.5
    assert run["pages"]["home"]["met"] is True
    assert run["pages"]["dashboard"]["met"] is False
    assert run["pages"]["admin"]["met"] is True
    assert run["webhooks"]["met"] is True
    assert budgets.check_problems(run) == []


def test_check_fails_on_growing_queries_and_status():
    run = results(
        {
            "admin": page(kind="admin", queries=6, queries_small=5),
            "home": page(status=302),
        },
        webhooks(),
    )

    budgets.evaluate(run)
    problems = budgets.check_problems(run)

    assert run["pages"]["admin"]["met"] is False
    assert any("admin issues 6 queries with 300 members but 5 with 30" in p for p in problems)
    assert any("home (/) answered 302" in p for p in problems)


def test_check_fails_on_payment_applied_twice():
    run = results({"home": page()}, webhooks(payments=11, duplicate_payments=1))

    budgets.evaluate(run)
    problems = budgets.check_problems(run)

    assert run["webhooks"]["processed_once"] is False
    assert any("1 invoices were paid more than once" in p for p in problems)


def probe(rows: int, rows_small: int, queries: int = 5, queries_small: int = 5) -> dict:
    return {
        "probe": "/admin/access/accesskey/?q=1%40example.com",
        "probe_status": 200,
        "probe_queries": queries,
        "probe_queries_small": queries_small,
        "probe_rows": rows,
        "probe_rows_small": rows_small,
    }


def test_check_fails_when_probe_lists_no_more_rows():
    """Equal query counts prove nothing when both sizes list the same rows."""
    run = results(
        {
            "admin keys": page(kind="admin", **probe(rows=1, rows_small=1)),
            "admin members": page(kind="admin", **probe(rows=30, rows_small=3)),
            "home": page(),
        },
        webhooks(),
    )

    budgets.evaluate(run)
    problems = budgets.check_problems(run)

    assert problems == [
        "admin keys: /admin/access/accesskey/?q=1%40example.com lists 1 rows with 300 "
        "members and 1 with 30, so a query a row would not show; choose sizes where the "
        "larger data set lists more rows"
    ]


def test_check_fails_on_query_a_row_in_probe():
    run = results(
        {"admin keys": page(kind="admin", **probe(30, 3, queries=35, queries_small=8))},
        webhooks(),
    )

    budgets.evaluate(run)
    problems = budgets.check_problems(run)

    assert run["pages"]["admin keys"]["met"] is False
    assert problems == [
        "admin keys: /admin/access/accesskey/?q=1%40example.com issues 35 queries for 30 rows "
        "with 300 members but 8 for 3 rows with 30"
    ]


def test_check_fails_without_a_small_data_set():
    run = results({"home": page(queries_small=None)}, webhooks())
    run["small_members"] = 0

    budgets.evaluate(run)

    assert budgets.check_problems(run) == [
        "no small data set (--small-members 0), so query counts were not compared"
    ]


def test_check_fails_accepted_over_sent():
    hooks = webhooks()
    hooks["events_sent"] = 9
    run = results({"home": page()}, hooks)

    budgets.evaluate(run)

    assert "10 webhook events accepted but only 9 sent; the counts disagree" in (
        budgets.check_problems(run)
    )


@pytest.mark.django_db
def test_changelist_rows_are_counted(staff_client):
    from tests.factories import MemberFactory

    MemberFactory.create_batch(3)
    response = staff_client.get("/admin/members/member/")

    assert django_steps.listed_rows(response) == 3
    assert django_steps.listed_rows(staff_client.get("/")) is None


def test_deploy_check_warns_about_benchmark_views(settings):
    from benchmarks.checks import check_benchmark_views

    settings.DEBUG = False
    settings.CPR_BENCHMARK_VIEWS = True
    warnings = check_benchmark_views(None)
    assert [warning.id for warning in warnings] == ["benchmarks.W001"]

    settings.CPR_BENCHMARK_VIEWS = False
    assert check_benchmark_views(None) == []
    settings.DEBUG = True
    settings.CPR_BENCHMARK_VIEWS = True
    assert check_benchmark_views(None) == []


def test_deploy_check_is_registered(settings):
    from django.core.checks import run_checks

    settings.DEBUG = False
    settings.CPR_BENCHMARK_VIEWS = True

    ids = {message.id for message in run_checks(include_deployment_checks=True)}

    assert "benchmarks.W001" in ids


def test_summary_shows_probes_floor_and_webhook_counts():
    report = load_bench_module("report")
    hooks = webhooks() | {
        "events_requested": 12,
        "events_sent": 10,
        "events_answered": 9,
        "accepted_per_second": 100.0,
    }
    run = results(
        {"admin keys": page(kind="admin", requests_per_second=50.0, **probe(30, 3))}, hooks
    )
    budgets.evaluate(run)

    text = report.summary(run)

    assert (
        "growth probe of admin keys: queries 5 → 5 for rows 3 → 30 "
        "(/admin/access/accesskey/?q=1%40example.com)" in text
    )
    assert "bare view p50/p95 of each run, in order: 4.0/8.0 ms, 4.0/8.0 ms" in text
    assert "webhooks: 10 of 12 sent, 9 answered, 10 distinct events accepted" in text


def test_report_shows_batch_growth():
    report = load_bench_module("report")
    small = {"members": 1000, "batch": {"outbox_sweep": {"seconds": 0.5, "items": 100}}}
    large = {"members": 10000, "batch": {"outbox_sweep": {"seconds": 4.0, "items": 1000}}}
    run = results({}, webhooks()) | {"batch": large, "batch_small": small}

    text = "\n".join(report.batch_growth_lines(run))

    assert "Growth of the batch jobs" in text
    assert "| outbox_sweep | 0.5 | 4.0 | 8.0 | 5.0 → 4.0 |" in text


def test_seed_step_has_no_batch_budget():
    report = load_bench_module("report")
    jobs = {"batch": {"seed_scale": {"seconds": 21.5}, "credit_expiry": {"seconds": 12.0}}}

    lines = report.batch_table(jobs)

    assert "| seed_scale | 21.5 | — |" in "\n".join(lines)
    assert "| credit_expiry | 12.0 | **missed** |" in "\n".join(lines)
