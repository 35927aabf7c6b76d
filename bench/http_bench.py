"""The HTTP benchmark: seed a database, serve the portal the production way, load it.

`bench/run` calls this module; BENCHMARKS.md explains the command, its options and how
to read the results. The run creates its own PostgreSQL databases, serves the portal
with gunicorn (cpr_portal/gunicorn_conf.py, DEBUG off, PostgreSQL, Redis, a Celery
worker) on 127.0.0.1, drives each page with wrk, sends signed Stripe webhooks, then
removes what it created. Traffic goes to 127.0.0.1 only.
"""

import argparse
import contextlib
import ctypes
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
# Each run records its process groups and databases here, so that the next run can clear
# what a run killed with SIGKILL left behind (see clear_stale_runs).
RUNS_DIR = Path(tempfile.gettempdir()) / "cpr-bench-runs"
# Variables of the caller's environment that the server and the steps keep. server_env
# sets everything else the portal reads, so no shell or .env value reaches them.
KEPT_VARIABLES = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"}
PR_SET_PDEATHSIG = 1

logger = logging.getLogger("bench")


class BenchError(Exception):
    """A step of the benchmark failed; the message names the step and what to do."""


# --- Machine and processes -------------------------------------------------------------------


def free_port(port: int = 0) -> int:
    """Return `port` (any free one for 0) if nothing on 127.0.0.1 listens on it right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise BenchError(
                f"Port {port} on {HOST} is in use ({error.strerror}). Choose another with "
                "--port, or leave --port out to use a free one."
            ) from error
        return probe.getsockname()[1]


def process_start_time(pid: int) -> str | None:
    """Return the start time of process `pid` (clock ticks since boot), None if it is gone.

    A pid and its start time name one process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces; the fields after it do not.
    return stat.rsplit(")", 1)[1].split()[19]


def die_with_parent(parent: int):
    """Return a preexec_fn that makes the child get SIGTERM when this process dies.

    That covers a run killed with SIGKILL, whose finally blocks never run: gunicorn, the
    Celery worker and a running step stop with it instead of serving a dropped database.
    """

    def prepare_child() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            # The parent died before prctl took effect.
            os.kill(os.getpid(), signal.SIGTERM)

    return prepare_child


class RunRecord:
    """The file that names this run's process groups, databases and work folder."""

    def __init__(self, *, redis_url: str, postgres_url: str, work: Path):
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        self.path = RUNS_DIR / f"{os.getpid()}.json"
        self.data = {
            "pid": os.getpid(),
            "start_time": process_start_time(os.getpid()),
            "redis_url": redis_url,
            "postgres_url": postgres_url,
            "work": str(work),
            "process_groups": [],
            "databases": [],
        }
        self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.data))
        partial.replace(self.path)

    def add_process_group(self, pid: int) -> None:
        self.data["process_groups"].append([pid, process_start_time(pid)])
        self.save()

    def add_database(self, name: str) -> None:
        self.data["databases"].append(name)
        self.save()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def stop_process_group(pgid: int, start_time: str | None, *, timeout: float = 20) -> bool:
    """Stop the process group led by `pgid` if its leader is still the recorded process."""
    if start_time is None or process_start_time(pgid) != start_time:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        # A stopped leader stays a zombie until its parent (here init) reaps it.
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def clear_stale_runs(redis_url: str) -> None:
    """Clear what killed earlier runs left; reject a second run on the same Redis database.

    A recorded run whose process is gone gets its gunicorn and Celery process groups
    stopped, its databases dropped and its work folder removed. A run that is still going
    on the same Redis database stops this one, since bench/run empties that database.
    """
    if not RUNS_DIR.is_dir():
        return
    for path in sorted(RUNS_DIR.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            logger.warning("Ignoring unreadable run record %s", path)
            continue
        if record["pid"] == os.getpid():
            continue
        if process_start_time(record["pid"]) == record["start_time"]:
            if record["redis_url"] == redis_url:
                raise BenchError(
                    f"Another bench/run (pid {record['pid']}) is using {redis_url}, which "
                    "each run empties. Wait for it to finish, or give this run another Redis "
                    "database with --redis-url."
                )
            continue
        logger.warning(
            "Clearing what bench/run pid %s left behind (it was killed): process groups %s, "
            "databases %s, folder %s",
            record["pid"],
            [pgid for pgid, _ in record["process_groups"]],
            record["databases"],
            record["work"],
        )
        for pgid, start_time in record["process_groups"]:
            if stop_process_group(pgid, start_time):
                logger.warning("Stopped process group %s of pid %s", pgid, record["pid"])
        if record["databases"]:
            Databases(record["postgres_url"], keep=False).drop_names(record["databases"])
        shutil.rmtree(record["work"], ignore_errors=True)
        path.unlink(missing_ok=True)


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
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - no threads here
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

    def __init__(self, env: dict, log_dir: Path, port: int, record: RunRecord | None = None):
        self.env = env
        self.log_dir = log_dir
        self.port = port
        self.record = record
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
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - no threads here
        )
        self.processes.append(process)
        if self.record is not None:
            self.record.add_process_group(process.pid)

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
                        f"{process.args[0]} exited with status {process.returncode} at start-up. "
                        f"The end of its log:\n{self.log_tail(process)}"
                    )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - local
            ):
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise BenchError(
            f"{url} did not return 200 within {timeout:.0f} s. The end of gunicorn's log:\n"
            f"{self.log_tail(self.processes[0])}"
        )

    def log_tail(self, process: subprocess.Popen, lines: int = 30) -> str:
        name = "gunicorn" if "gunicorn" in process.args[0] else "celery"
        with contextlib.suppress(OSError):
            return "\n".join((self.log_dir / f"{name}.log").read_text().splitlines()[-lines:])
        return "(no log)"

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

    def __init__(self, server_url: str, keep: bool, record: RunRecord | None = None):
        self.server_url = server_url.rstrip("/")
        self.keep = keep
        self.record = record
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
            if self.record is not None:
                self.record.add_database(name)
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

    def drop_names(self, names: list[str]) -> None:
        """Drop the databases a killed run recorded, those that exist."""
        with self._admin() as connection:
            for name in names:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                logger.warning("Dropped database %s", name)

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
        if key in KEPT_VARIABLES or key.startswith("LC_")
    }
    env.update(
        {
            # The project's .env may name real services; the server reads none of it.
            "CPR_READ_DOTENV": "false",
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
            # The door system: keys are recorded in the database, no Salto host is called.
            "ACCESS_BACKEND": "access.backends.tracking.TrackingBackend",
            "SALTO_API_BASE": "",
            "SALTO_TOKEN_URL": "",
            "GOOGLE_CLIENT_ID": "",
            "GOOGLE_CLIENT_SECRET": "",
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


def check_services(args) -> None:
    """Raise BenchError, naming the URL, when PostgreSQL or Redis is not reachable."""
    import redis

    postgres = f"{args.postgres_url.rstrip('/')}/postgres"
    try:
        psycopg.connect(postgres, autocommit=True, connect_timeout=5).close()
    except psycopg.Error as error:
        raise BenchError(
            f"PostgreSQL at {args.postgres_url} is not reachable ({str(error).strip()}). "
            "Start it, or point --postgres-url at a running server."
        ) from error
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except (redis.RedisError, ValueError) as error:
        raise BenchError(
            f"Redis at {args.redis_url} is not reachable ({error}). Start it, or point "
            "--redis-url at a running server."
        ) from error


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
        "events_requested": args.webhook_events,
        # Deliveries wrk prepared. One prepared as --webhook-seconds ran out may never
        # reach the server, and one that did may be stored without a response, so
        # answered <= accepted <= sent.
        "events_sent": delivery["deliveries"],
        "events_answered": delivery["answered"],
        "events_accepted": accepted,
        "accepted_per_second": round(accepted / receive_span, 1) if receive_span else None,
        "processed_per_second": round(accepted / process_span, 1) if process_span else None,
        "p50_ms": round(delivery["p50_us"] / 1000, 2),
        "p95_ms": round(delivery["p95_us"] / 1000, 2),
        "unexpected_status": delivery["unexpected_status"] + replayed["unexpected_status"],
        "duplicates_sent": replayed["deliveries"],
        "counts": counts,
    }


def whole_number(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return number

    return parse


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} is not more than 0 seconds")
    return number


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Seed a database, serve the portal with gunicorn on 127.0.0.1, load "
        "every benchmarked page with wrk, and write the results.",
    )
    positive = whole_number(1)
    parser.add_argument("--members", type=positive, default=10_000, help="Members to seed (10000).")
    parser.add_argument(
        "--small-members",
        type=whole_number(0),
        default=30,
        help="Members of the small data set whose query counts and rows are compared with "
        "the large one's (30; 0 skips that comparison, which --check refuses).",
    )
    parser.add_argument("--seed", type=int, default=1, help="Random seed of seed_scale (1).")
    parser.add_argument("--seconds", type=seconds, default=10, help="Load per page, seconds (10).")
    parser.add_argument("--connections", type=positive, default=4, help="wrk connections (4).")
    parser.add_argument("--wrk-threads", type=positive, default=1, help="wrk threads (1).")
    parser.add_argument(
        "--gunicorn-workers", type=positive, default=2, help="GUNICORN_WORKERS (2)."
    )
    parser.add_argument(
        "--gunicorn-threads", type=positive, default=4, help="GUNICORN_THREADS (4)."
    )
    parser.add_argument(
        "--worker-concurrency", type=positive, default=2, help="Celery processes (2)."
    )
    parser.add_argument(
        "--webhook-events",
        type=positive,
        default=3000,
        help="Distinct webhook events to send (3000).",
    )
    parser.add_argument(
        "--webhook-seconds",
        type=seconds,
        default=15,
        help="Maximum seconds of webhook load (15); events not sent by then are not sent.",
    )
    parser.add_argument(
        "--webhook-drain-timeout",
        type=seconds,
        default=300,
        help="Seconds to wait for the worker to process the events (300).",
    )
    parser.add_argument(
        "--duplicates",
        type=whole_number(0),
        default=500,
        help="Events delivered a second time (500).",
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
        help="Redis database for the cache and the broker (BENCH_REDIS_URL; default "
        "redis://127.0.0.1:6379/14). The run EMPTIES this database without asking: give it "
        "one that nothing else uses.",
    )
    parser.add_argument(
        "--port",
        type=whole_number(0),
        default=0,
        help="Port of gunicorn on 127.0.0.1 (0, the default: any free port).",
    )
    parser.add_argument("--keep-db", action="store_true", help="Keep the databases afterwards.")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="Keep the run's logs (server, worker, steps) in its folder under the system's "
        "temporary folder and print where; without it the folder is removed.",
    )
    parser.add_argument("--no-batch", action="store_true", help="Skip bench/batch.py.")
    parser.add_argument(
        "--batch-small-members",
        type=int,
        default=1000,
        help="Members of a second batch run whose seconds the report compares with the "
        "main size, to show how each job grows (1000; 0 skips; ignored unless it is below "
        "--members).",
    )
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
    if args.batch_small_members < 0:
        parser.error(
            f"argument --batch-small-members: {args.batch_small_members} is negative; give 0 "
            "to skip the growth run or a size below --members."
        )
    if args.port > 65535:
        parser.error(f"argument --port: {args.port} is not a port number (1 to 65535, or 0).")
    if args.connections < args.wrk_threads:
        parser.error(
            f"--connections {args.connections} is fewer than --wrk-threads "
            f"{args.wrk_threads}; wrk needs a connection a thread."
        )
    if args.small_members and args.small_members >= args.members:
        parser.error(
            f"--small-members {args.small_members} must be fewer than --members "
            f"{args.members}, so that the comparison sees the data grow."
        )
    if args.check and not args.small_members:
        parser.error(
            "--check compares query counts with a small data set; --small-members 0 turns "
            "that off. Give --small-members a number below --members."
        )
    return args


def probe_counts(queries: dict, small_queries: dict, name: str) -> dict:
    """Return a page's growth probe counts at both sizes (an admin list's), or nothing."""
    large = queries[name]
    if "probe" not in large:
        return {}
    small = small_queries.get(name, {})
    return {
        "probe": large["probe"],
        "probe_status": large["probe_status"],
        "probe_queries": large["probe_queries"],
        "probe_queries_small": small.get("probe_queries"),
        "probe_rows": large["probe_rows"],
        "probe_rows_small": small.get("probe_rows"),
    }


def count_queries(*, database: str, dbs: Databases, args, env_for, work: Path) -> dict:
    env = env_for(dbs.url(database))
    fixture = django_step("prepare", env=env, work=work)
    fixture_path = work / f"fixture-{database}.json"
    fixture_path.write_text(json.dumps(fixture))
    return fixture, django_step("queries", "--fixture", str(fixture_path), env=env, work=work)


def benchmark(args, work: Path, record: RunRecord | None = None) -> dict:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed. Install Debian's package: apt-get install wrk.")
    run_id = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
    port = free_port(args.port)
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
    dbs = Databases(args.postgres_url, keep=args.keep_db, record=record)
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
        services = Services(env, work, port, record)
        services.start_all(worker_concurrency=args.worker_concurrency)
        services.wait_until_healthy()

        pages = {}
        floor_runs = []
        floor_page = next(page for page in fixture["pages"] if page["kind"] == "floor")
        previous_kind = None
        for page in fixture["pages"]:
            # The floor is loaded first, before the member pages, before the admin lists
            # and last, so that drift of a shared machine shows. Ratios use the mean.
            if page["kind"] in ("member", "admin") and page["kind"] != previous_kind:
                logger.info("Loading the floor again before the %s pages", page["kind"])
                floor_runs.append(measure_page(floor_page, fixture=fixture, port=port, args=args))
            previous_kind = page["kind"]
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
                **probe_counts(queries, small_queries, page["name"]),
                **measured,
            }
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
        if record is not None:
            record.add_database(f"{args.database}_batch")
        if 0 < args.batch_small_members < args.members:
            logger.info("Batch jobs at %s members, for the growth table", args.batch_small_members)
            results["batch_small"] = run_batch(args, work, members=args.batch_small_members)
        logger.info("Batch jobs at %s members", args.members)
        results["batch"] = run_batch(args, work, members=args.members)
    budgets.evaluate(results)
    return results


def run_batch(args, work: Path, *, members: int) -> dict | None:
    """Run bench/batch.py with `members` and the run's seed, and return what it wrote."""
    script = BENCH_DIR / "batch.py"
    if not script.exists():
        logger.warning("bench/batch.py is missing; the batch jobs are not measured")
        return None
    out = work / f"batch-{members}.json"
    # bench/batch.py drops and recreates the database it is given, so it gets its own.
    database_url = f"{args.postgres_url.rstrip('/')}/{args.database}_batch"
    try:
        run(
            [
                sys.executable,
                str(script),
                "--members",
                str(members),
                "--seed",
                str(args.seed),
                "--database-url",
                database_url,
                "--json",
                str(out),
            ],
            env=dict(os.environ),
            timeout=3600,
            log_path=work / f"batch-{members}.log",
        )
    finally:
        Databases(args.postgres_url, keep=args.keep_db).drop_if_exists(f"{args.database}_batch")
    return json.loads(out.read_text())


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    # SIGTERM (a CI timeout, kill) and SIGHUP unwind like Ctrl-C, so the finally blocks
    # clean up. SIGKILL cannot be caught: the children die with this process (see
    # die_with_parent) and the next run clears the rest (see clear_stale_runs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    work = Path(tempfile.mkdtemp(prefix="cpr-bench-"))
    record = None
    try:
        check_services(args)
        clear_stale_runs(args.redis_url)
        record = RunRecord(redis_url=args.redis_url, postgres_url=args.postgres_url, work=work)
        return report_run(args, benchmark(args, work, record))
    except BenchError as error:
        logger.error("Benchmark failed: %s", error)
        return 1
    finally:
        finish(work, keep_logs=args.keep_logs)
        if record is not None:
            record.remove()


def report_run(args, results: dict) -> int:
    print(report.summary(results))
    if args.check:
        problems = budgets.check_problems(results)
        if problems:
            for problem in problems:
                logger.error("Check failed: %s", problem)
            return 1
        logger.info("Every page returned the expected status and query counts do not grow")
    else:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        day = results["date"][:10]
        raw = args.results_dir / f"{day}-{args.members}.json"
        raw.write_text(json.dumps(results, indent=2, default=str) + "\n")
        report.write_benchmarks_md(results, raw_path=os.path.relpath(raw, PROJECT_DIR))
        logger.info("Wrote %s and BENCHMARKS.md", raw)
    return 0


def finish(work: Path, *, keep_logs: bool) -> None:
    """Remove the run's folder, or with --keep-logs keep its logs and log their folder.

    The collected static files and the fixtures (which hold session keys of the
    benchmark's staff login) go either way.
    """
    if not keep_logs:
        shutil.rmtree(work, ignore_errors=True)
        return
    shutil.rmtree(work / "static", ignore_errors=True)
    for fixture in work.glob("fixture-*.json"):
        fixture.unlink(missing_ok=True)
    logger.info("Logs of the run: %s", work)


if __name__ == "__main__":
    sys.exit(main())
