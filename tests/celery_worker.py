"""A real Celery worker thread on Redis for tests, and the app that publishes to it."""

import contextlib
import os

from celery import Celery
from celery.contrib.testing.worker import start_worker

from tests.conftest import REDIS_TEST_URL


def worker_queue_name(suffix: str = "") -> str:
    """Return a queue name of this pytest-xdist process, so workers never share tasks."""
    name = f"cpr-portal-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    return f"{name}-{suffix}" if suffix else name


@contextlib.contextmanager
def redis_app(queue: str):
    """Yield a Celery app, made current, whose `.delay()` publishes to `queue` on Redis.

    A separate app carries the Redis settings, so the project's eager app keeps its cached
    broker pool and result backend untouched. The queue is emptied first, so that no
    worker runs a task published against another test's database. Celery's testing
    worker makes its app the process-wide default, which threads without an app of their
    own use (the live server's, for one), so the project app is made the default again.
    """
    from cpr_portal.celery import app as project_app

    # Import every app's tasks module, so that every task of the project is registered.
    project_app.loader.import_default_modules()
    app = Celery("cpr_portal_redis_test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(
        broker_url=REDIS_TEST_URL,
        result_backend=REDIS_TEST_URL,
        task_always_eager=False,
        task_default_queue=queue,
    )
    app.control.purge()
    app.set_current()
    try:
        yield app
    finally:
        project_app.set_current()
        project_app.set_default()
        app.close()


@contextlib.contextmanager
def running_worker(app: Celery):
    """Run a worker thread that consumes the app's default queue until the block ends."""
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app
