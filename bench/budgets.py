"""Budgets of the HTTP benchmark, and the checks of its CI run.

Each page is compared with the bare view measured in the same run (the mean of its runs
at the start, between the groups of pages and at the end):
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
        if page.get("probe_queries_small") is not None:
            constant = constant and page["probe_queries"] == page["probe_queries_small"]
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
    sent = webhooks.get("events_sent")
    if sent is not None and accepted > sent:
        problems.append(
            f"{accepted} webhook events accepted but only {sent} sent; the counts disagree"
        )
    if webhooks["unexpected_status"]:
        problems.append(f"{webhooks['unexpected_status']} webhook deliveries did not get 200")
    return problems


def probe_problems(name: str, page: dict, results: dict) -> list[str]:
    """Return what is wrong with a list page's growth probe (none for other pages)."""
    if "probe" not in page or page["probe_queries_small"] is None:
        return []
    large, small = results["members"], results["small_members"]
    problems = []
    if page["probe_status"] != 200:
        problems.append(f"{name}: {page['probe']} answered {page['probe_status']}, expected 200")
    rows, rows_small = page["probe_rows"], page["probe_rows_small"]
    if rows_small is not None and not rows > rows_small:
        problems.append(
            f"{name}: {page['probe']} lists {rows} rows with {large} members and {rows_small} "
            f"with {small}, so a query a row would not show; choose sizes where the larger "
            "data set lists more rows"
        )
    if page["probe_queries"] != page["probe_queries_small"]:
        problems.append(
            f"{name}: {page['probe']} issues {page['probe_queries']} queries for {rows} rows "
            f"with {large} members but {page['probe_queries_small']} for {rows_small} rows "
            f"with {small}"
        )
    return problems


def check_problems(results: dict) -> list[str]:
    """Return what the CI run fails on: statuses, growing query counts, webhook rows.

    A list page's growth probe must list more rows at the large data set than at the
    small one. Otherwise equal query counts would not rule out a query a row.
    """
    problems = []
    if not results.get("small_members"):
        problems.append("no small data set (--small-members 0), so query counts were not compared")
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
        problems.extend(probe_problems(name, page, results))
        if page["queries_small"] is not None and page["queries"] != page["queries_small"]:
            problems.append(
                f"{name} issues {page['queries']} queries with {results['members']} members "
                f"but {page['queries_small']} with {results['small_members']}"
            )
    if "webhooks" in results:
        problems.extend(webhook_problems(results["webhooks"]))
    return problems
