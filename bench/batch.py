#!/usr/bin/env python3
"""Time the portal's batch work over a whole seeded data set, and write the numbers as JSON.

    .venv/bin/python bench/batch.py --members 10000 --json bench/results/batch-10000.json

The run (re)creates a PostgreSQL database whose name contains "bench" (default
`cpr_bench_batch` on 127.0.0.1) and fills it with `manage.py seed_scale`. It then times,
in this order: the stuck payment events that grant credit, the scheduled membership jobs
(activation, the grace-period check, term ends, scheduled cancellations), credit
expiry, access-key reconciliation, the outbox sweep and the sending of the emails it
queued, commitment reminders, a backup, a restore of that backup, and `import_odoo` of
about 1,000 partners from a local XML-RPC server. Email goes to Django's in-memory
backend, the door system is the tracking-only backend, and Celery tasks go to an
in-process broker that no worker reads, so nothing leaves the machine.

`run_batch()` does the same for callers in Python. The JSON has the shape
{"machine": {...}, "date": ..., "members": N, "seed": S, "batch": {name: {"seconds": x,
"queries": q, "items": n, ...}}}.
"""

import argparse
import contextlib
import datetime
import io
import json
import multiprocessing
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cpr_bench_batch"
# Partners of every kind that the Odoo import handles; 111 per kind gives about 1,000.
ODOO_PER_KIND = 111


def configure_environment(database_url: str) -> None:
    """Set the production-like settings of the run before Django starts."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "cpr_portal.settings",
            # The project's .env may name real services; the run reads none of it.
            "CPR_READ_DOTENV": "false",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url,
            # Local only: in-memory mail, an in-process broker, no door system, the fake
            # gateway. Tasks are queued, not run, as a beat task queues them for the workers;
            # the worker's share is timed in its own steps (outbox_send, access_reconcile).
            "EMAIL_URL": "memorymail://",
            "CELERY_BROKER_URL": "memory://",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CACHE_URL": "locmemcache://bench",
            "ACCESS_BACKEND": "access.backends.tracking.TrackingBackend",
            "PAYMENT_GATEWAY": "billing.gateways.fake.FakeGateway",
            "DJANGO_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def recreate_database(database_url: str) -> None:
    """Drop and create the benchmark database; only a name containing "bench" is accepted."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(
            f"error: the benchmark drops and recreates its database, and {name!r} does not "
            "contain 'bench'. Pass --database-url with a database name such as cpr_bench_batch."
        )
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def machine_info() -> dict:
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


class QueryCounter:
    """Counts the SQL statements sent on the default connection (a database wrapper)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class Runner:
    """Times named steps, counts their queries, and profiles them when asked."""

    def __init__(self, profile_dir: Path | None):
        self.results: dict[str, dict] = {}
        self.profile_dir = profile_dir

    def step(self, name: str, function, *, items=len):
        from django.db import connection

        counter = QueryCounter()
        profiler = None
        if self.profile_dir is not None:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        print(f"-- {name} ...", flush=True)
        started = time.perf_counter()
        cpu_started = time.process_time()
        with connection.execute_wrapper(counter):
            result = function()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        if profiler is not None:
            profiler.stop()
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            (self.profile_dir / f"{name}.txt").write_text(profiler.output_text(color=False))
            (self.profile_dir / f"{name}.html").write_text(profiler.output_html())
        # CPU seconds of this process: on a busy machine they vary less than wall time,
        # but leave out the database server's work and the subprocesses (pg_dump, psql).
        entry = {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "queries": counter.count,
        }
        if items is not None:
            entry["items"] = items(result)
        self.results[name] = entry
        print(
            f"   {name}: {seconds:.2f} s ({cpu_seconds:.2f} s CPU), {counter.count} queries, "
            f"{entry.get('items')} items"
        )
        return result


def run_batch(
    *,
    members: int,
    database_url: str = DEFAULT_DATABASE_URL,
    seed: int = 1,
    profile_dir: Path | None = None,
    keep_database: bool = False,
) -> dict:
    """Seed a fresh database with `members` members, time every batch job, return the JSON."""
    configure_environment(database_url)
    load_before = os.getloadavg()
    recreate_database(database_url)

    import django

    django.setup()
    from django.core.management import CommandError, call_command
    from django.db import connections

    from access.services import reconcile_all
    from billing import services as billing
    from members import services as members_services
    from outbox.services import deliver_email, sweep_outbox

    runner = Runner(profile_dir)
    call_command("migrate", verbosity=0)
    output = io.StringIO()
    runner.step(
        "seed_scale",
        lambda: call_command("seed_scale", members=members, seed=seed, stdout=output),
        items=lambda _result: members,
    )

    # The payment events whose task was lost arrived before the jobs below ran, so they
    # go first. Each one opens and pays an invoice and grants the period's credit.
    def process_all_stuck_events():
        processed = []
        while batch := billing.process_stuck_webhook_events():
            processed.extend(batch)
        return processed

    runner.step("credit_grants", process_all_stuck_events)
    runner.step("activate_due_memberships", billing.activate_due_memberships)
    runner.step("grace_period_suspensions", billing.suspend_overdue_memberships)
    runner.step("term_ends", billing.apply_term_ends)
    runner.step("scheduled_cancellations", members_services.apply_scheduled_cancellations)

    runner.step("credit_expiry", billing.expire_credit, items=lambda written: written)
    runner.step("access_reconcile", reconcile_all, items=lambda synced: synced)
    swept = runner.step("outbox_sweep", sweep_outbox)
    runner.step(
        "outbox_send",
        lambda: [deliver_email(email_id=email_id).status for email_id in swept],
    )
    runner.step("commitment_reminders", billing.queue_commitment_reminders)

    with tempfile.TemporaryDirectory(prefix="cpr-bench-") as work:
        work_dir = Path(work)
        backups = work_dir / "backups"
        backups.mkdir()
        runner.step(
            "backup",
            lambda: call_command("backup", output=backups, stdout=io.StringIO()),
            items=lambda _result: None,
        )
        archive = next(backups.glob("backup_*.tar.gz"))
        runner.results["backup"]["archive_bytes"] = archive.stat().st_size
        connections.close_all()
        runner.step(
            "restore",
            lambda: call_command(
                "restore",
                archive,
                force=True,
                safety_dir=work_dir / "safety",
                stdout=io.StringIO(),
            ),
            items=lambda _result: None,
        )
        connections.close_all()
        runner.results["odoo_import"] = run_odoo_import(runner, call_command, CommandError)

    load_after = os.getloadavg()
    if not keep_database:
        connections.close_all()
        drop_database(database_url)
    return {
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "members": members,
        "seed": seed,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "batch": runner.results,
    }


def run_odoo_import(runner: Runner, call_command, command_error) -> dict:
    """Serve about 1,000 Odoo partners on 127.0.0.1 and time one import of them."""
    from django.db import connections
    from django.utils import timezone

    from tests.odoo_import.dataset import Dataset, build_large_space
    from tests.odoo_import.fake_odoo import FakeOdoo

    dataset = Dataset(timezone.localdate())
    build_large_space(dataset, per_kind=ODOO_PER_KIND)
    odoo = FakeOdoo()
    odoo.load(dataset)
    # The server runs in a child process, as Odoo runs on its own machine, so that its
    # XML-RPC work does not share this process's interpreter lock with the import.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    addresses = context.Queue()
    server = context.Process(target=_serve_odoo, args=(odoo, addresses), daemon=True)
    server.start()
    url = addresses.get(timeout=60)
    os.environ["ODOO_PASSWORD"] = odoo.password
    exit_status = {"code": 0}

    def run():
        try:
            call_command(
                "import_odoo",
                url=url,
                db=odoo.database,
                username=odoo.login,
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            )
        except command_error as error:
            # Status 2 means some records were conflicts (the data set has a few on purpose).
            exit_status["code"] = error.returncode
            if error.returncode != 2:
                raise

    try:
        runner.step("odoo_import", run, items=lambda _result: len(dataset.partners))
    finally:
        server.terminate()
        server.join(timeout=10)
    entry = runner.results["odoo_import"]
    entry["exit_status"] = exit_status["code"]
    return entry


def _serve_odoo(odoo, addresses) -> None:
    """Start the fake Odoo server in this (child) process and serve until terminated."""
    addresses.put(odoo.start())
    odoo._thread.join()


def drop_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def growth_table(small: dict, large: dict) -> str:
    """Return a Markdown table of each step's seconds in two runs and how much it grew.

    Growth is large seconds / small seconds, so with 1,000 and 10,000 members a factor
    of 10 or less is linear or better. The jobs' work grows with the members, so the
    milliseconds per item (for steps that count items) show the cost of one unit of work.
    """
    ratio = large["members"] / small["members"]
    lines = [
        f"| step | {small['members']:,} members (s) | {large['members']:,} members (s) "
        f"| growth (linear = {ratio:g}) | ms per item | queries at {large['members']:,} |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in large["batch"].items():
        before_entry = small["batch"].get(name, {})
        before = before_entry.get("seconds")
        after = entry["seconds"]
        growth = f"{after / before:.1f}" if before else "n/a"
        per_item = "n/a"
        if before_entry.get("items") and entry.get("items"):
            per_item = (
                f"{1000 * before / before_entry['items']:.1f} → {1000 * after / entry['items']:.1f}"
            )
        lines.append(
            f"| {name} | {before if before is not None else 'n/a'} | {after} | {growth} "
            f"| {per_item} | {entry.get('queries', '')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="Members to seed.")
    parser.add_argument("--json", type=Path, help="Write the results to this JSON file.")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to drop, recreate and use; its name must contain 'bench'.",
    )
    parser.add_argument("--seed", type=int, default=1, help="Random seed of the data set.")
    parser.add_argument(
        "--profile", type=Path, help="Write a pyinstrument profile of each step to this folder."
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="Leave the database for a look afterwards."
    )
    parser.add_argument(
        "--growth",
        nargs=2,
        type=Path,
        metavar=("SMALL_JSON", "LARGE_JSON"),
        help="Print a Markdown table comparing two result files, and run nothing.",
    )
    args = parser.parse_args(argv)
    if args.growth:
        small, large = (json.loads(path.read_text()) for path in args.growth)
        print(growth_table(small, large))
        return 0
    if args.members < 1:
        parser.error(f"--members must be at least 1, not {args.members}")
    result = run_batch(
        members=args.members,
        database_url=args.database_url,
        seed=args.seed,
        profile_dir=args.profile,
        keep_database=args.keep_database,
    )
    text = json.dumps(result, indent=2) + "\n"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
        print(f"Results written to {args.json}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
