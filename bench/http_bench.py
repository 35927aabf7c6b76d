"""The HTTP benchmark: seed a database, serve the portal the production way, load it.

`bench/run` calls this module; BENCHMARKS.md explains the command, its options and how
to read the results. The run creates its own PostgreSQL databases, serves the portal
with gunicorn (cpr_portal/gunicorn_conf.py, DEBUG off, PostgreSQL, Redis, a Celery
worker) on 127.0.0.1, drives each page with wrk, sends signed Stripe webhooks, then
removes what it created. Traffic goes to 127.0.0.1 only.
"""

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

import budgets  # noqa: E402
import report  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_DIR / "bench"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
RESULT_MARKER = "BENCH_JSON "

logger = logging.getLogger("bench")


class BenchError(Exception):
    """A step of the benchmark failed; the message names the step and what to do."""


# --- Machine and processes -------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def machine_facts() -> dict:
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run(command: list[str], *, env: dict, timeout: float, log_path: Path | None = None) -> str:
    """Run a command to completion and return its standard output, or raise BenchError."""
    logger.info("$ %s", " ".join(command))
    try:
        completed = subprocess.run(  # noqa: S603 - commands are built here, not from input
            command,
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(f"{command[:4]} timed out after {timeout:.0f} s.") from error
    if log_path is not None:
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise BenchError(
            f"{' '.join(command[:4])} failed with exit status {completed.returncode}:\n"
            f"{completed.stderr[-3000:] or completed.stdout[-3000:]}"
        )
    return completed.stdout


class Services:
    """The gunicorn server and the Celery worker of one run, stopped on exit."""

    def __init__(self, env: dict, log_dir: Path, port: int):
        self.env = env
        self.log_dir = log_dir
        self.port = port
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, command: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("w")
        logger.info("Starting %s: %s", name, " ".join(command))
        process = subprocess.Popen(  # noqa: S603 - commands are built here
            command,
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A process group of its own, so stopping it stops gunicorn's workers too.
            start_new_session=True,
        )
        self.processes.append(process)

    def start_all(self, *, worker_concurrency: int) -> None:
        self.start(
            "gunicorn",
            [
                str(VENV_BIN / "gunicorn"),
                "--config",
                "python:cpr_portal.gunicorn_conf",
                "--bind",
                f"{HOST}:{self.port}",
                "cpr_portal.wsgi",
            ],
        )
        self.start(
            "celery",
            [
                str(VENV_BIN / "celery"),
                "--app=cpr_portal",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={worker_concurrency}",
                f"--hostname=bench-{os.getpid()}@%h",
            ],
        )

    def wait_until_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{HOST}:{self.port}/healthz/"
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise BenchError(
                        f"{process.args[0]} exited with status {process.returncode} at start-up; "
                        f"see the logs in {self.log_dir}."
                    )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - local
            ):
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise BenchError(f"{url} did not return 200 within {timeout:.0f} s; see {self.log_dir}.")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within 20 s; killing it", process.args[0])
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()


# --- Databases ----------------------------------------------------------------------------------


class Databases:
    """PostgreSQL databases that the run creates, and drops on exit unless --keep-db is given."""

    def __init__(self, server_url: str, keep: bool):
        self.server_url = server_url.rstrip("/")
        self.keep = keep
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return f"{self.server_url}/{name}"

    def _admin(self):
        return psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)

    def create(self, name: str, *, template: str | None = None) -> None:
        with self._admin() as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if exists:
                raise BenchError(
                    f"Database {name!r} exists already. Drop it, or choose another name "
                    "with --database."
                )
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            connection.execute(statement)
        self.created.append(name)

    def drop(self, name: str) -> None:
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self.created.remove(name)

    def drop_if_exists(self, name: str) -> None:
        """Drop a database that another program created, unless --keep-db is given."""
        if self.keep:
            return
        with self._admin() as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def drop_all(self) -> None:
        if self.keep:
            if self.created:
                logger.info("Keeping databases %s (--keep-db)", ", ".join(self.created))
            return
        for name in list(self.created):
            try:
                self.drop(name)
            except psycopg.Error:
                logger.exception("Could not drop database %s; drop it by hand", name)


# --- The run ------------------------------------------------------------------------------------


def run_secrets() -> dict:
    """Return the secrets of one run, shared by the server and the steps (sessions are signed)."""
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "STRIPE_SECRET_KEY": "sk_test_bench_" + secrets.token_hex(8),
        "STRIPE_WEBHOOK_SECRET": "whsec_bench_" + secrets.token_hex(16),
    }


def server_env(
    args, *, database_url: str, port: int, static_root: Path, secret_values: dict
) -> dict:
    """Return the environment of a production server that talks to local services only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CPR_", "STRIPE_", "SALTO_", "CELERY_", "GUNICORN_"))
        and key not in ("DATABASE_URL", "CACHE_URL", "EMAIL_URL", "PAYMENT_GATEWAY")
    }
    env.update(
        {
            "DJANGO_DEBUG": "false",
            # testserver is the host of the in-process requests that count queries.
            "DJANGO_ALLOWED_HOSTS": f"{HOST},localhost,testserver",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DATABASE_URL": database_url,
            "CACHE_URL": args.redis_url,
            "CELERY_BROKER_URL": args.redis_url,
            # Emails are queued in the outbox and sent nowhere.
            "EMAIL_URL": "dummymail://",
            "PAYMENT_GATEWAY": "billing.gateways.stripe.StripeGateway",
            # The discard port of this machine: a call to Stripe fails here at once
            # instead of leaving the machine.
            "STRIPE_API_BASE": f"http://{HOST}:9",
            "CPR_SITE_URL": f"http://{HOST}:{port}",
            "CPR_BENCHMARK_VIEWS": "true",
            "GUNICORN_WORKERS": str(args.gunicorn_workers),
            "GUNICORN_THREADS": str(args.gunicorn_threads),
            "PYTHONDONTWRITEBYTECODE": "1",
            **secret_values,
        }
    )
    return env


def django_step(step: str, *arguments: str, env: dict, work: Path, timeout: float = 600) -> dict:
    out = work / f"{step}-{time.monotonic_ns()}.json"
    run(
        [sys.executable, str(BENCH_DIR / "django_steps.py"), step, *arguments, "--out", str(out)],
        env=env,
        timeout=timeout,
        log_path=work / "steps.log",
    )
    return json.loads(out.read_text())


def manage(*arguments: str, env: dict, work: Path, timeout: float = 1800) -> str:
    return run(
        [sys.executable, "manage.py", *arguments],
        env=env,
        timeout=timeout,
        log_path=work / "manage.log",
    )


def seed(members: int, *, args, env: dict, work: Path) -> float:
    started = time.monotonic()
    manage("seed_scale", "--members", str(members), "--seed", str(args.seed), env=env, work=work)
    return round(time.monotonic() - started, 1)


def flush_redis(redis_url: str) -> None:
    """Empty the run's Redis database (only the one numbered in --redis-url)."""
    import redis

    redis.Redis.from_url(redis_url, socket_timeout=5).flushdb()


def wrk(url: str, *, script: str, script_args: list[str], args, seconds: float) -> dict:
    command = [
        "wrk",
        f"--threads={args.wrk_threads}",
        f"--connections={args.connections}",
        f"--duration={seconds:g}s",
        "--timeout=10s",
        f"--script={BENCH_DIR / 'wrk' / script}",
        url,
        "--",
        *script_args,
    ]
    output = run(command, env=dict(os.environ), timeout=seconds + 60)
    for line in output.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise BenchError(f"wrk printed no result line for {url}:\n{output}")


def page_headers(page: dict, fixture: dict) -> list[str]:
    headers = ["X-Forwarded-Proto: https"]
    if page["session"]:
        headers.append(f"Cookie: sessionid={fixture[page['session'] + '_session']}")
    return headers


def measure_page(page: dict, *, fixture: dict, port: int, args) -> dict:
    url = f"http://{HOST}:{port}{page['path']}"
    headers = page_headers(page, fixture)
    # A short warm-up fills the workers' caches and connections before the measured run.
    wrk(url, script="page.lua", script_args=["200", *headers], args=args, seconds=1)
    result = wrk(
        url, script="page.lua", script_args=["200", *headers], args=args, seconds=args.seconds
    )
    seconds = result["duration_us"] / 1e6
    return {
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p95_ms": round(result["p95_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "requests": result["requests"],
        "requests_per_second": round(result["requests"] / seconds, 1) if seconds else 0,
        "unexpected_status": result["unexpected_status"],
        "socket_errors": result["socket_errors"],
        "timeouts": result["timeouts"],
    }


def webhook_rows(database_url: str, run_id: str) -> dict:
    """Count the run's webhook rows by status, with their first arrival and last processing."""
    pattern = f"evt_bench_{run_id}_%"
    with psycopg.connect(database_url, connect_timeout=10) as connection:
        statuses = dict(
            connection.execute(
                "SELECT status, count(*) FROM billing_webhookevent WHERE event_id LIKE %s "
                "GROUP BY status",
                [pattern],
            ).fetchall()
        )
        first_received, last_received, last_processed = connection.execute(
            "SELECT min(received_at), max(received_at), max(processed_at) "
            "FROM billing_webhookevent WHERE event_id LIKE %s",
            [pattern],
        ).fetchone()
    return {
        "statuses": statuses,
        "first_received": first_received,
        "last_received": last_received,
        "last_processed": last_processed,
    }


def wait_for_processing(database_url: str, run_id: str, *, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = webhook_rows(database_url, run_id)
        if not rows["statuses"].get("received"):
            return rows
        if time.monotonic() > deadline:
            raise BenchError(
                f"{rows['statuses'].get('received')} webhook events were still unprocessed "
                f"after {timeout:.0f} s; see the Celery worker's log."
            )
        time.sleep(0.5)


def measure_webhooks(*, env: dict, work: Path, port: int, args, run_id: str) -> dict:
    """Deliver unique signed invoice.paid events, then replay some; count what changed."""
    database_url = env["DATABASE_URL"]
    url = f"http://{HOST}:{port}/billing/webhooks/stripe/"
    payloads = work / "webhooks.tsv"
    django_step(
        "webhook-payloads",
        "--count",
        str(args.webhook_events),
        "--run",
        run_id,
        "--payloads",
        str(payloads),
        env=env,
        work=work,
    )
    delivery = wrk(
        url,
        script="webhooks.lua",
        script_args=[str(payloads), "200", str(args.wrk_threads)],
        args=args,
        seconds=args.webhook_seconds,
    )
    rows = wait_for_processing(database_url, run_id, timeout=args.webhook_drain_timeout)
    accepted = sum(rows["statuses"].values())
    receive_span = (rows["last_received"] - rows["first_received"]).total_seconds()
    process_span = (rows["last_processed"] - rows["first_received"]).total_seconds()

    replay = work / "webhooks-replay.tsv"
    duplicates = min(args.duplicates, accepted)
    django_step(
        "webhook-payloads",
        "--count",
        str(duplicates),
        "--run",
        run_id,
        "--payloads",
        str(replay),
        env=env,
        work=work,
    )
    replayed = wrk(
        url,
        script="webhooks.lua",
        script_args=[str(replay), "200", str(args.wrk_threads)],
        args=args,
        seconds=max(2.0, duplicates / 100),
    )
    wait_for_processing(database_url, run_id, timeout=args.webhook_drain_timeout)
    counts = django_step("webhook-counts", "--run", run_id, env=env, work=work)
    return {
        "events_sent": delivery["requests"],
        "events_accepted": accepted,
        "accepted_per_second": round(accepted / receive_span, 1) if receive_span else None,
        "processed_per_second": round(accepted / process_span, 1) if process_span else None,
        "p50_ms": round(delivery["p50_us"] / 1000, 2),
        "p95_ms": round(delivery["p95_us"] / 1000, 2),
        "unexpected_status": delivery["unexpected_status"] + replayed["unexpected_status"],
        "duplicates_sent": replayed["requests"],
        "counts": counts,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Seed a database, serve the portal with gunicorn on 127.0.0.1, load "
        "every benchmarked page with wrk, and write the results.",
    )
    parser.add_argument("--members", type=int, default=10_000, help="Members to seed (10000).")
    parser.add_argument(
        "--small-members",
        type=int,
        default=300,
        help="Members of the small data set whose query counts are compared (300; 0 skips).",
    )
    parser.add_argument("--seed", type=int, default=1, help="Random seed of seed_scale (1).")
    parser.add_argument("--seconds", type=float, default=10, help="Load per page, seconds (10).")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (4).")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1).")
    parser.add_argument("--gunicorn-workers", type=int, default=2, help="GUNICORN_WORKERS (2).")
    parser.add_argument("--gunicorn-threads", type=int, default=4, help="GUNICORN_THREADS (4).")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery processes (2).")
    parser.add_argument(
        "--webhook-events", type=int, default=3000, help="Distinct webhook events to send (3000)."
    )
    parser.add_argument(
        "--webhook-seconds", type=float, default=15, help="Maximum seconds of webhook load (15)."
    )
    parser.add_argument(
        "--webhook-drain-timeout",
        type=float,
        default=300,
        help="Seconds to wait for the worker to process the events (300).",
    )
    parser.add_argument(
        "--duplicates", type=int, default=500, help="Events delivered a second time (500)."
    )
    parser.add_argument(
        "--database",
        default=f"cpr_bench_{os.getpid()}",
        help="Name of the database to create (cpr_bench_<pid>); the small one adds _small.",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        help="PostgreSQL server, without a database name (BENCH_POSTGRES_URL).",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        help="Redis database for the cache and the broker; it is emptied (BENCH_REDIS_URL).",
    )
    parser.add_argument("--keep-db", action="store_true", help="Keep the databases afterwards.")
    parser.add_argument("--no-batch", action="store_true", help="Skip bench/batch.py.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="CI mode: fail unless every page returns 200, query counts do not grow "
        "with the data and webhooks are processed once. Timings are reported, not checked, "
        "and BENCHMARKS.md is left alone.",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=BENCH_DIR / "results", help="Raw JSON goes here."
    )
    args = parser.parse_args(argv)
    if args.members < 1 or args.small_members < 0:
        parser.error("--members must be at least 1 and --small-members at least 0.")
    return args


def count_queries(*, database: str, dbs: Databases, args, env_for, work: Path) -> dict:
    env = env_for(dbs.url(database))
    fixture = django_step("prepare", env=env, work=work)
    fixture_path = work / f"fixture-{database}.json"
    fixture_path.write_text(json.dumps(fixture))
    return fixture, django_step("queries", "--fixture", str(fixture_path), env=env, work=work)


def benchmark(args, work: Path) -> dict:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed. Install Debian's package: apt-get install wrk.")
    run_id = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
    port = free_port()
    static_root = work / "static"
    secrets_of_run = run_secrets()

    def env_for(database_url: str) -> dict:
        return server_env(
            args,
            database_url=database_url,
            port=port,
            static_root=static_root,
            secret_values=secrets_of_run,
        )

    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "bench/run " + " ".join(sys.argv[1:]),
        "machine": machine_facts(),
        "load_average_start": load_average(),
        "members": args.members,
        "small_members": args.small_members,
        "settings": {
            "seconds_per_page": args.seconds,
            "connections": args.connections,
            "wrk_threads": args.wrk_threads,
            "gunicorn_workers": args.gunicorn_workers,
            "gunicorn_threads": args.gunicorn_threads,
            "celery_concurrency": args.worker_concurrency,
        },
    }
    dbs = Databases(args.postgres_url, keep=args.keep_db)
    services = None
    try:
        dbs.create(args.database)
        env = env_for(dbs.url(args.database))
        started = time.monotonic()
        manage("migrate", "--no-input", env=env, work=work)
        results["migrate_seconds"] = round(time.monotonic() - started, 1)
        manage("collectstatic", "--no-input", env=env, work=work)

        small_queries = {}
        if args.small_members:
            # The small data set starts from a copy of the migrated database.
            small = f"{args.database}_small"
            dbs.create(small, template=args.database)
            seed(args.small_members, args=args, env=env_for(dbs.url(small)), work=work)
            _, small_queries = count_queries(
                database=small, dbs=dbs, args=args, env_for=env_for, work=work
            )
            dbs.drop(small)

        results["seed_seconds"] = seed(args.members, args=args, env=env, work=work)
        fixture, queries = count_queries(
            database=args.database, dbs=dbs, args=args, env_for=env_for, work=work
        )

        flush_redis(args.redis_url)
        services = Services(env, work, port)
        services.start_all(worker_concurrency=args.worker_concurrency)
        services.wait_until_healthy()

        pages = {}
        floor_runs = []
        for page in fixture["pages"]:
            logger.info("Loading %s (%s)", page["name"], page["path"])
            measured = measure_page(page, fixture=fixture, port=port, args=args)
            if page["kind"] == "floor":
                floor_runs.append(measured)
            pages[page["name"]] = {
                "path": page["path"],
                "kind": page["kind"],
                "status": queries[page["name"]]["status"],
                "queries": queries[page["name"]]["queries"],
                "queries_small": small_queries.get(page["name"], {}).get("queries"),
                **measured,
            }
        # The floor again at the end, so that drift of the machine during the run shows.
        floor_page = next(page for page in fixture["pages"] if page["kind"] == "floor")
        floor_runs.append(measure_page(floor_page, fixture=fixture, port=port, args=args))
        results["floor_runs"] = floor_runs
        results["pages"] = pages

        logger.info("Delivering %s webhook events", args.webhook_events)
        results["webhooks"] = measure_webhooks(
            env=env, work=work, port=port, args=args, run_id=run_id
        )
    finally:
        if services is not None:
            services.stop_all()
        dbs.drop_all()
    results["load_average_end"] = load_average()

    if not args.no_batch:
        results["batch"] = run_batch(args, work)
    budgets.evaluate(results)
    return results


def run_batch(args, work: Path) -> dict | None:
    """Run bench/batch.py at the same size and seed, and return what it wrote."""
    script = BENCH_DIR / "batch.py"
    if not script.exists():
        logger.warning("bench/batch.py is missing; the batch jobs are not measured")
        return None
    out = work / "batch.json"
    # bench/batch.py drops and recreates the database it is given, so it gets its own.
    database_url = f"{args.postgres_url.rstrip('/')}/{args.database}_batch"
    try:
        run(
            [
                sys.executable,
                str(script),
                "--members",
                str(args.members),
                "--seed",
                str(args.seed),
                "--database-url",
                database_url,
                "--json",
                str(out),
            ],
            env=dict(os.environ),
            timeout=3600,
            log_path=work / "batch.log",
        )
    finally:
        Databases(args.postgres_url, keep=args.keep_db).drop_if_exists(f"{args.database}_batch")
    return json.loads(out.read_text())


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the finally blocks clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="cpr-bench-"))
    try:
        results = benchmark(args, work)
    except BenchError as error:
        logger.error("Benchmark failed: %s", error)
        logger.error("Logs of the run: %s", work)
        return 1
    print(report.summary(results))
    if args.check:
        problems = budgets.check_problems(results)
        if problems:
            for problem in problems:
                logger.error("Check failed: %s", problem)
            logger.error("Logs of the run: %s", work)
            return 1
        logger.info("Every page answered as expected and query counts do not grow")
    else:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        day = results["date"][:10]
        raw = args.results_dir / f"{day}-{args.members}.json"
        raw.write_text(json.dumps(results, indent=2, default=str) + "\n")
        report.write_benchmarks_md(results, raw_path=os.path.relpath(raw, PROJECT_DIR))
        logger.info("Wrote %s and BENCHMARKS.md", raw)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
