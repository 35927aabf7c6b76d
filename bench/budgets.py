"""Budgets of the HTTP benchmark, and the checks of its CI run.

Each page is compared with the bare view measured in the same run (the mean of its runs
at the start and the end):
- public and member pages: p50 and p95 within 1.5 times the bare view's;
- admin changelists: p95 within 3 times the bare view's, and as many queries at the
  large data set as at the small one;
- webhooks: at least 200 distinct events processed a second, and every event, duplicates
  included, processed once.
"""

PAGE_RATIO = 1.5
ADMIN_P95_RATIO = 3.0
WEBHOOK_EVENTS_PER_SECOND = 200


def floor(results: dict) -> dict:
    runs = results["floor_runs"]
    return {
        "p50_ms": sum(run["p50_ms"] for run in runs) / len(runs),
        "p95_ms": sum(run["p95_ms"] for run in runs) / len(runs),
    }


def evaluate(results: dict) -> None:
    """Add each page's ratios to the bare view and whether it meets its budget."""
    base = floor(results)
    results["floor"] = {key: round(value, 2) for key, value in base.items()}
    for page in results["pages"].values():
        page["ratio_p50"] = round(page["p50_ms"] / base["p50_ms"], 2)
        page["ratio_p95"] = round(page["p95_ms"] / base["p95_ms"], 2)
        constant = page["queries_small"] is None or page["queries"] == page["queries_small"]
        page["queries_constant"] = constant
        if page["kind"] in ("public", "member"):
            page["budget"] = f"p50, p95 <= {PAGE_RATIO}x bare"
            page["met"] = page["ratio_p50"] <= PAGE_RATIO and page["ratio_p95"] <= PAGE_RATIO
        elif page["kind"] == "admin":
            page["budget"] = f"p95 <= {ADMIN_P95_RATIO:g}x bare, constant queries"
            page["met"] = page["ratio_p95"] <= ADMIN_P95_RATIO and constant
        else:
            # The bare view, and the layout view that shows the cost of base.html alone.
            page["budget"] = page["kind"]
            page["met"] = None

    webhooks = results.get("webhooks")
    if webhooks:
        problems = webhook_problems(webhooks)
        webhooks["processed_once"] = not problems
        webhooks["budget"] = f">= {WEBHOOK_EVENTS_PER_SECOND} distinct events/s, processed once"
        webhooks["met"] = (
            not problems and (webhooks["processed_per_second"] or 0) >= WEBHOOK_EVENTS_PER_SECOND
        )


def webhook_problems(webhooks: dict) -> list[str]:
    counts = webhooks["counts"]
    accepted = webhooks["events_accepted"]
    problems = []
    if accepted == 0:
        problems.append("no webhook event was accepted")
    if counts["webhook_events"] != accepted:
        problems.append(
            f"{counts['webhook_events']} webhook rows after the replay, expected {accepted}"
        )
    processed = counts["webhook_statuses"].get("processed", 0)
    if processed != accepted:
        problems.append(
            f"{processed} of {accepted} webhook events processed; statuses: "
            f"{counts['webhook_statuses']}"
        )
    if counts["paid_invoices"] != accepted or counts["payments"] != accepted:
        problems.append(
            f"{counts['paid_invoices']} paid invoices and {counts['payments']} payments for "
            f"{accepted} distinct invoice.paid events"
        )
    if counts["duplicate_payments"]:
        problems.append(f"{counts['duplicate_payments']} invoices were paid more than once")
    if webhooks["unexpected_status"]:
        problems.append(f"{webhooks['unexpected_status']} webhook deliveries did not get 200")
    return problems


def check_problems(results: dict) -> list[str]:
    """Return what the CI run fails on: statuses, growing query counts, webhook rows."""
    problems = []
    for name, page in results["pages"].items():
        if page["status"] != 200:
            problems.append(f"{name} ({page['path']}) answered {page['status']}, expected 200")
        if page["unexpected_status"] or page["socket_errors"] or page["timeouts"]:
            problems.append(
                f"{name}: {page['unexpected_status']} responses other than 200, "
                f"{page['socket_errors']} socket errors, {page['timeouts']} timeouts under load"
            )
        if page["requests"] == 0:
            problems.append(f"{name}: no request completed under load")
        if not page["queries_constant"]:
            problems.append(
                f"{name} issues {page['queries']} queries with {results['members']} members "
                f"but {page['queries_small']} with {results['small_members']}"
            )
    if "webhooks" in results:
        problems.extend(webhook_problems(results["webhooks"]))
    return problems
