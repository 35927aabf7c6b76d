"""A worker killed while it sends: the sweep takes the row, and the recipient gets one copy.

The worker is a real `celery -A cpr_portal worker` process on Redis, sharing the test
database, so it needs PostgreSQL (the SQLite test database lives in memory). The SMTP
server holds its reply to DATA; the worker is killed with SIGKILL meanwhile, so the
message is never accepted and the row stays claimed until its lease expires.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from members.services import approve_application
from outbox import services
from outbox.models import OutboxEmail
from tests.celery_worker import redis_app, running_worker, worker_queue_name
from tests.conftest import REDIS_TEST_URL
from tests.factories import ApplicationFactory

from .conftest import SENDER, SENDER_ADDRESS

Status = OutboxEmail.Status
LEASE_SECONDS = 3
WAIT_SECONDS = 60


def database_url() -> str:
    """Return a DATABASE_URL for the test database this process uses."""
    db = connection.settings_dict
    credentials = db["USER"] or ""
    if db["PASSWORD"]:
        credentials += f":{db['PASSWORD']}"
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


def start_worker_process(*, queue: str, smtp_port: int, log_path: Path) -> subprocess.Popen:
    """Start `celery -A cpr_portal worker` on `queue`, with the production settings module."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cpr_portal.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": REDIS_TEST_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_TIMEOUT": "30",
        "DEFAULT_FROM_EMAIL": SENDER,
        "CPR_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cpr_portal",
        "worker",
        "--pool=solo",
        "--queues",
        queue,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    log = log_path.open("wb")
    return subprocess.Popen(  # noqa: S603 - a fixed command of this project's own worker
        command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def drop_unacknowledged(queue: str) -> int:
    """Remove the killed worker's unacknowledged messages of `queue` from Redis.

    Redis would hand them to a worker of a later test run once the visibility timeout
    passed. Only messages routed to `queue`, which this test alone uses, are removed.
    """
    client = redis.Redis.from_url(REDIS_TEST_URL)
    dropped = 0
    for tag, raw in client.hgetall("unacked").items():
        _message, _exchange, routing_key = json.loads(raw)
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
            dropped += 1
    return dropped


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_killed_worker_row_swept_once(smtp_server, tmp_path):
    queue = worker_queue_name("outbox-killed")
    smtp_server.hold_data = True
    application = ApplicationFactory(email="kim@example.com")
    log_path = tmp_path / "worker.log"

    with redis_app(queue) as app:
        worker = start_worker_process(queue=queue, smtp_port=smtp_server.port, log_path=log_path)
        try:
            approve_application(application=application, actor=None)
            reached_data = smtp_server.data_started.wait(WAIT_SECONDS)
            assert reached_data, log_path.read_text()
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=WAIT_SECONDS)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

        deadline = time.monotonic() + WAIT_SECONDS
        while smtp_server.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtp_server.dropped == 1
        smtp_server.hold_data = False
        row = OutboxEmail.objects.get(template="application_approved")
        assert row.status == Status.SENDING
        assert row.attempts == 1
        assert services.sweep_outbox() == []  # the lease still runs
        while timezone.now() <= row.claimed_until:
            time.sleep(0.1)

        with running_worker(app):
            assert services.sweep_outbox() == [row.pk]
            received = smtp_server.wait_for_messages(1, WAIT_SECONDS)
            deadline = time.monotonic() + WAIT_SECONDS
            while OutboxEmail.objects.get(pk=row.pk).status != Status.SENT:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)

    assert drop_unacknowledged(queue) == 1
    assert len(smtp_server.received()) == 1
    assert received[0].rcpt_tos == ("kim@example.com",)
    assert received[0].mail_from == SENDER_ADDRESS
    assert received[0].message["Message-ID"] == row.message_id
    sent = OutboxEmail.objects.get(pk=row.pk)
    assert sent.status == Status.SENT
    assert sent.attempts == 2
