"""Fixtures of the outbox tests.

- `smtp_server`: a real SMTP server on a free local port, running, with MAILERS pointed at it.
- `smtp_worker`: a Celery worker thread on Redis that sends through `smtp_server`.
- `fast_retries`: retry waits of one second, doubling, so retries happen within a test.
"""

import pytest

from tests.celery_worker import redis_app, running_worker, worker_queue_name

from .smtp_server import SmtpServer

SENDER = "Code Puerto Rico Test <sender@code-pr.example>"
SENDER_ADDRESS = "sender@code-pr.example"


@pytest.fixture
def smtp_server(settings):
    server = SmtpServer()
    server.start()
    settings.MAILERS = server.mailer_settings()
    settings.DEFAULT_FROM_EMAIL = SENDER
    try:
        yield server
    finally:
        server.hold_data = False
        server.stop()


@pytest.fixture
def fast_retries(settings):
    settings.CPR_OUTBOX_RETRY_BASE_SECONDS = 1
    settings.CPR_OUTBOX_RETRY_MAX_SECONDS = 4


@pytest.fixture
def smtp_worker(smtp_server):
    """A Celery worker thread on Redis, sending through `smtp_server`; yields its app."""
    with redis_app(worker_queue_name("outbox")) as app, running_worker(app):
        yield app
