"""bench/run's robustness: options, services, clean-up after a killed run, the server's env."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def load_http_bench():
    spec = importlib.util.spec_from_file_location("bench_http_bench", BENCH_DIR / "http_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


http_bench = load_http_bench()


def gone(pid: int) -> bool:
    """Return True once `pid` has exited (an unreaped zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_until_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def sleeper():
    """A process group of its own, like the run's gunicorn; stopped if the test leaves it."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)  # noqa: S607
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    folder.mkdir()
    monkeypatch.setattr(http_bench, "RUNS_DIR", folder)
    return folder


def dead_pid() -> int:
    process = subprocess.Popen(["true"])  # noqa: S607
    process.wait(timeout=10)
    return process.pid


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seconds", "0"], "argument --seconds: 0 is not more than 0 seconds"),
        (["--seconds", "-1"], "argument --seconds: -1 is not more than 0 seconds"),
        (["--connections", "0"], "argument --connections: 0 is less than 1"),
        (["--webhook-events", "0"], "argument --webhook-events: 0 is less than 1"),
        (["--webhook-seconds", "ten"], "'ten' is not a number of seconds"),
        (["--members", "0"], "argument --members: 0 is less than 1"),
        (["--port", "70000"], "70000 is not a port number"),
        (["--small-members", "0", "--check"], "--small-members 0 turns that off"),
        (["--members", "30", "--small-members", "30"], "must be fewer than --members 30"),
        (["--connections", "1", "--wrk-threads", "2"], "fewer than --wrk-threads 2"),
    ],
)
def test_rejects_bad_options(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        http_bench.parse_args(arguments)

    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_help_says_redis_database_is_emptied(capsys):
    with pytest.raises(SystemExit):
        http_bench.parse_args(["--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    assert "EMPTIES this database without asking" in help_text
    assert "--port" in help_text
    assert "--keep-logs" in help_text


def test_port_in_use_is_named():
    port = http_bench.free_port()
    with http_bench.socket.socket() as taken:
        taken.bind((http_bench.HOST, port))
        taken.listen()
        with pytest.raises(http_bench.BenchError) as error:
            http_bench.free_port(port)

    assert f"Port {port} on 127.0.0.1 is in use" in str(error.value)


# --- services ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_unreachable_postgres_and_redis_are_named():
    closed = http_bench.free_port()
    args = http_bench.parse_args(["--postgres-url", f"postgres://postgres@127.0.0.1:{closed}"])
    with pytest.raises(http_bench.BenchError) as error:
        http_bench.check_services(args)
    assert f"PostgreSQL at postgres://postgres@127.0.0.1:{closed} is not reachable" in str(
        error.value
    )

    server = server_url()
    args = http_bench.parse_args(
        ["--postgres-url", server, "--redis-url", f"redis://127.0.0.1:{closed}/3"]
    )
    started = time.monotonic()
    with pytest.raises(http_bench.BenchError) as error:
        http_bench.check_services(args)
    assert f"Redis at redis://127.0.0.1:{closed}/3 is not reachable" in str(error.value)
    assert time.monotonic() - started < 10


def server_url() -> str:
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}"


# --- a killed run ------------------------------------------------------------------------


def test_children_die_with_a_killed_run(tmp_path):
    """SIGKILL of bench/run stops the server processes it started (PR_SET_PDEATHSIG)."""
    script = tmp_path / "parent.py"
    module = str(BENCH_DIR / "http_bench.py")
    script.write_text(
        textwrap.dedent(
            f"""
            import importlib.util, os, subprocess, sys, time
            spec = importlib.util.spec_from_file_location("hb", {module!r})
            hb = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(hb)
            child = subprocess.Popen(
                ["sleep", "120"],
                start_new_session=True,
                preexec_fn=hb.die_with_parent(os.getpid()),
            )
            print(child.pid, flush=True)
            time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen(  # noqa: S603 - the script written above
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        assert not gone(child)

        parent.kill()
        parent.wait(timeout=10)

        assert wait_until_gone(child), f"process {child} outlived the killed run"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


@pytest.mark.postgres
@pytest.mark.django_db
def test_next_run_clears_what_a_killed_run_left(runs_dir, sleeper, tmp_path):
    stale_database = f"{connection.settings_dict['NAME']}_stale"
    server = server_url()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(stale_database)))
    work = tmp_path / "cpr-bench-killed"
    (work / "static").mkdir(parents=True)
    (runs_dir / "999.json").write_text(
        json.dumps(
            {
                "pid": dead_pid(),
                "start_time": "1",
                "redis_url": "redis://127.0.0.1:6379/3",
                "postgres_url": server,
                "work": str(work),
                "process_groups": [
                    [sleeper.pid, http_bench.process_start_time(sleeper.pid)],
                ],
                "databases": [stale_database],
            }
        )
    )

    http_bench.clear_stale_runs("redis://127.0.0.1:6379/3")

    assert sleeper.wait(timeout=30) == -signal.SIGTERM
    with psycopg.connect(f"{server}/postgres") as admin:
        left = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [stale_database]
        ).fetchone()
    assert left is None
    assert not work.exists()
    assert list(runs_dir.iterdir()) == []


def test_recorded_pid_of_another_process_is_left_alone(runs_dir, sleeper):
    """A process group whose leader is not the recorded process (a reused pid) stays."""
    (runs_dir / "998.json").write_text(
        json.dumps(
            {
                "pid": dead_pid(),
                "start_time": "1",
                "redis_url": "redis://127.0.0.1:6379/3",
                "postgres_url": "postgres://postgres@127.0.0.1:5432",
                "work": "/nonexistent/cpr-bench-x",
                "process_groups": [[sleeper.pid, "1"]],
                "databases": [],
            }
        )
    )

    http_bench.clear_stale_runs("redis://127.0.0.1:6379/3")

    assert sleeper.poll() is None
    assert list(runs_dir.iterdir()) == []


def test_live_run_on_the_same_redis_is_refused(runs_dir, sleeper):
    record = {
        "pid": sleeper.pid,
        "start_time": http_bench.process_start_time(sleeper.pid),
        "redis_url": "redis://127.0.0.1:6379/3",
        "postgres_url": "postgres://postgres@127.0.0.1:5432",
        "work": "/nonexistent/cpr-bench-x",
        "process_groups": [],
        "databases": [],
    }
    (runs_dir / f"{sleeper.pid}.json").write_text(json.dumps(record))

    with pytest.raises(http_bench.BenchError) as error:
        http_bench.clear_stale_runs("redis://127.0.0.1:6379/3")
    assert f"Another bench/run (pid {sleeper.pid}) is using redis://127.0.0.1:6379/3" in str(
        error.value
    )

    http_bench.clear_stale_runs("redis://127.0.0.1:6379/4")
    assert sleeper.poll() is None
    assert (runs_dir / f"{sleeper.pid}.json").exists()


def test_run_record_names_process_groups_and_databases(runs_dir, sleeper, tmp_path):
    record = http_bench.RunRecord(
        redis_url="redis://127.0.0.1:6379/3",
        postgres_url="postgres://postgres@127.0.0.1:5432",
        work=tmp_path,
    )
    record.add_process_group(sleeper.pid)
    record.add_database("cpr_bench_x")

    saved = json.loads(record.path.read_text())
    assert saved["pid"] == os.getpid()
    assert saved["process_groups"] == [[sleeper.pid, http_bench.process_start_time(sleeper.pid)]]
    assert saved["databases"] == ["cpr_bench_x"]
    record.remove()
    assert not record.path.exists()


# --- the work folder -----------------------------------------------------------------------


def work_folder(tmp_path) -> Path:
    work = tmp_path / "cpr-bench-run"
    (work / "static" / "admin").mkdir(parents=True)
    (work / "gunicorn.log").write_text("started")
    (work / "fixture-cpr_bench.json").write_text('{"staff_session": "secret"}')
    return work


def test_work_folder_is_removed(tmp_path):
    work = work_folder(tmp_path)

    http_bench.finish(work, keep_logs=False)

    assert not work.exists()


def test_keep_logs_keeps_logs_only(tmp_path, caplog):
    work = work_folder(tmp_path)

    with caplog.at_level("INFO", logger="bench"):
        http_bench.finish(work, keep_logs=True)

    assert sorted(path.name for path in work.iterdir()) == ["gunicorn.log"]
    assert f"Logs of the run: {work}" in caplog.text


def test_failed_run_removes_its_folder(tmp_path, monkeypatch):
    """A run that fails (here PostgreSQL is not reachable) leaves no folder behind."""
    monkeypatch.setattr(http_bench.tempfile, "tempdir", str(tmp_path))
    closed = http_bench.free_port()
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        status = http_bench.main(
            ["--postgres-url", f"postgres://postgres@127.0.0.1:{closed}", "--no-batch"]
        )
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)

    assert status == 1
    assert list(tmp_path.glob("cpr-bench-*")) == []


# --- the server's environment ---------------------------------------------------------------


def test_server_env_reaches_local_services_only(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCESS_BACKEND", "access.backends.salto.SaltoBackend")
    monkeypatch.setenv("SALTO_API_BASE", "https://salto.example.net")
    monkeypatch.setenv("GOOGLE_CLIENT_SECRET", "google-secret")
    monkeypatch.setenv("ODOO_URL", "https://odoo.example.net")
    monkeypatch.setenv("EMAIL_URL", "smtp://mail.example.net:25")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://redis.example.net/0")
    args = http_bench.parse_args(["--redis-url", "redis://127.0.0.1:6379/3"])

    env = http_bench.server_env(
        args,
        database_url="postgres://postgres@127.0.0.1:5432/cpr_bench",
        port=8123,
        static_root=tmp_path,
        secret_values={},
    )

    assert env["CPR_READ_DOTENV"] == "false"
    assert env["ACCESS_BACKEND"] == "access.backends.tracking.TrackingBackend"
    assert env["SALTO_API_BASE"] == ""
    assert env["GOOGLE_CLIENT_SECRET"] == ""
    assert env["EMAIL_URL"] == "dummymail://"
    assert env["STRIPE_API_BASE"] == "http://127.0.0.1:9"
    assert "ODOO_URL" not in env
    assert "CELERY_RESULT_BACKEND" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_settings_skip_dotenv_when_asked(tmp_path):
    """CPR_READ_DOTENV=false: a .env next to the settings is not read."""
    project = tmp_path / "project"
    (project / "cpr_portal").mkdir(parents=True)
    settings_source = Path(__file__).resolve().parents[2] / "cpr_portal" / "settings.py"
    (project / "cpr_portal" / "settings.py").write_text(settings_source.read_text())
    (project / ".env").write_text("ACCESS_BACKEND=access.backends.salto.SaltoBackend\n")
    probe = (
        "import runpy; "
        f"print(runpy.run_path({str(project / 'cpr_portal' / 'settings.py')!r})"
        "['ACCESS_BACKEND'])"
    )
    base_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def access_backend(**extra) -> str:
        completed = subprocess.run(  # noqa: S603
            [sys.executable, "-c", probe],
            env=base_env | extra,
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        return completed.stdout.strip()

    assert access_backend() == "access.backends.salto.SaltoBackend"
    assert access_backend(CPR_READ_DOTENV="false") == "access.backends.tracking.TrackingBackend"
