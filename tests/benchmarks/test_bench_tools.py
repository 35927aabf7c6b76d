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
