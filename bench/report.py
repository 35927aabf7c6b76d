"""Render the results of a benchmark run: a console summary and the tables of BENCHMARKS.md.

write_benchmarks_md replaces the text between the two markers below in BENCHMARKS.md,
so the prose around the tables stays as written.
"""

import sys
from pathlib import Path

# The bench/ scripts import each other by module name, as http_bench.py does.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import growth_table  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = PROJECT_DIR / "BENCHMARKS.md"
START_MARKER = "<!-- bench/run results: start -->"
END_MARKER = "<!-- bench/run results: end -->"
# Budget of each batch job at 10,000 members.
BATCH_SECONDS = 10
# Steps that bench/batch.py times but that are set-up, not batch jobs of the portal, so the
# batch budget does not apply to them.
UNBUDGETED_STEPS = {"seed_scale"}


def _met(value) -> str:
    if value is None:
        return "—"
    return "met" if value else "**missed**"


def _queries(page: dict) -> str:
    if page["queries_small"] is None:
        return str(page["queries"])
    return f"{page['queries_small']} → {page['queries']}"


def pages_table(results: dict) -> list[str]:
    lines = [
        f"| page | path | status | queries ({results['small_members']} → "
        f"{results['members']} members) | p50 ms | p95 ms | req/s | p50 × bare | p95 × bare "
        "| budget | |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, page in results["pages"].items():
        lines.append(
            f"| {name} | `{page['path']}` | {page['status']} | {_queries(page)} "
            f"| {page['p50_ms']:.2f} | {page['p95_ms']:.2f} | {page['requests_per_second']:.0f} "
            f"| {page['ratio_p50']:.2f} | {page['ratio_p95']:.2f} | {page['budget']} "
            f"| {_met(page['met'])} |"
        )
    return lines


def webhooks_table(webhooks: dict) -> list[str]:
    counts = webhooks["counts"]
    return [
        "| distinct events accepted | accepted/s | processed/s | p50 ms | p95 ms "
        "| duplicates sent | webhook rows | paid invoices | payments | budget | |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        f"| {webhooks['events_accepted']} | {webhooks['accepted_per_second']} "
        f"| {webhooks['processed_per_second']} | {webhooks['p50_ms']:.2f} "
        f"| {webhooks['p95_ms']:.2f} | {webhooks['duplicates_sent']} "
        f"| {counts['webhook_events']} | {counts['paid_invoices']} | {counts['payments']} "
        f"| {webhooks['budget']} | {_met(webhooks['met'])} |",
    ]


def batch_table(batch: dict) -> list[str]:
    """Render the batch section that bench/batch.py wrote, whatever keys each job has."""
    jobs = batch.get("batch", batch)
    if not isinstance(jobs, dict) or not jobs:
        return ["bench/batch.py reported no jobs."]
    lines = [
        f"| job | seconds | under {BATCH_SECONDS} s | details |",
        "| --- | ---: | --- | --- |",
    ]
    for name, job in jobs.items():
        if not isinstance(job, dict):
            lines.append(f"| {name} | {job} | | |")
            continue
        seconds = job.get("seconds")
        if name in UNBUDGETED_STEPS or not isinstance(seconds, int | float):
            within = "—"
        else:
            within = _met(seconds < BATCH_SECONDS)
        details = ", ".join(f"{key}: {value}" for key, value in job.items() if key != "seconds")
        shown = "—" if seconds is None else seconds
        lines.append(f"| {name} | {shown} | {within} | {details} |")
    return lines


def batch_growth_lines(results: dict) -> list[str]:
    """Render how each batch job grew from the small batch run to the main one, if both ran."""
    if not (results.get("batch") and results.get("batch_small")):
        return []
    return [
        "Growth of the batch jobs (the same seed at both sizes):",
        "",
        growth_table(results["batch_small"], results["batch"]),
        "",
    ]


def render(results: dict, *, raw_path) -> str:
    machine = results["machine"]
    settings = results["settings"]
    lines = [
        START_MARKER,
        f"Run of {results['date']} with `{results['command']}` at {results['members']} "
        f"members (raw numbers: [{raw_path}]({raw_path})).",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu'] or 'unknown CPU'}), "
        f"{machine['memory_gib']} GiB memory, {machine['system']}, Python {machine['python']}. "
        f"Load average at the start {results['load_average_start']}, at the end "
        f"{results['load_average_end']} (1, 5, 15 minutes).",
        "",
        f"Load: wrk, {settings['connections']} connections, {settings['seconds_per_page']:g} s "
        f"a page; gunicorn {settings['gunicorn_workers']} workers × "
        f"{settings['gunicorn_threads']} threads; Celery worker concurrency "
        f"{settings['celery_concurrency']}. Seeding took {results['seed_seconds']} s. The bare "
        f"view's p50 is {results['floor']['p50_ms']} ms and its p95 "
        f"{results['floor']['p95_ms']} ms (mean of its runs, in order: "
        + ", ".join(f"{run['p50_ms']}/{run['p95_ms']} ms" for run in results["floor_runs"])
        + ").",
        "",
        *pages_table(results),
        "",
        "Stripe webhooks (signed `invoice.paid` deliveries, each a distinct event; then "
        "duplicates of the first ones):",
        "",
        *webhooks_table(results["webhooks"]),
        "",
    ]
    if results.get("batch"):
        lines += ["Batch jobs (bench/batch.py):", "", *batch_table(results["batch"]), ""]
    lines += batch_growth_lines(results)
    lines.append(END_MARKER)
    return "\n".join(lines)


def write_benchmarks_md(results: dict, *, raw_path) -> None:
    text = BENCHMARKS_MD.read_text()
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start == -1 or end == -1:
        raise SystemExit(
            f"error: {BENCHMARKS_MD} lacks the markers {START_MARKER!r} and {END_MARKER!r}; "
            "put them where the results belong."
        )
    rendered = render(results, raw_path=raw_path)
    BENCHMARKS_MD.write_text(text[:start] + rendered + text[end + len(END_MARKER) :])


def summary(results: dict) -> str:
    """Return a plain-text table of the run for the console."""
    lines = [
        f"{'page':40} {'status':>6} {'queries':>9} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} "
        f"{'x p50':>6} {'x p95':>6}  budget",
    ]
    for name, page in results["pages"].items():
        lines.append(
            f"{name:40} {page['status']:>6} {_queries(page):>9} {page['p50_ms']:>8.2f} "
            f"{page['p95_ms']:>8.2f} {page['requests_per_second']:>7.0f} "
            f"{page['ratio_p50']:>6.2f} {page['ratio_p95']:>6.2f}  {_met(page['met'])}"
        )
    for name, page in results["pages"].items():
        if "probe" in page:
            lines.append(
                f"growth probe of {name}: queries {page['probe_queries_small']} → "
                f"{page['probe_queries']} for rows {page['probe_rows_small']} → "
                f"{page['probe_rows']} ({page['probe']})"
            )
    lines.append(
        "bare view p50/p95 of each run, in order: "
        + ", ".join(f"{run['p50_ms']}/{run['p95_ms']} ms" for run in results["floor_runs"])
    )
    webhooks = results.get("webhooks")
    if webhooks:
        lines.append(
            f"webhooks: {webhooks['events_sent']} of {webhooks['events_requested']} sent, "
            f"{webhooks['events_answered']} answered, "
            f"{webhooks['events_accepted']} distinct events accepted, "
            f"{webhooks['accepted_per_second']}/s accepted, "
            f"{webhooks['processed_per_second']}/s processed, "
            f"processed once: {webhooks['processed_once']}, budget {_met(webhooks['met'])}"
        )
    return "\n".join(lines)
