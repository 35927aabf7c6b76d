"""/healthz/: database and broker reachability, and a body that shows no configuration."""

import platform
import socket
import time
from unittest import mock

import django
import pytest
from django.db import OperationalError, connection

from cpr_portal import views
from tests.conftest import REDIS_TEST_URL

# Made-up details that a failing check's exception carries; none may reach the body.
DATABASE_ERROR_TEXT = 'connection to server at "db.internal.example" (10.9.8.7), port 5433 failed'


@pytest.fixture
def closed_port():
    """Return a localhost port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port():
    """Return a localhost port that accepts connections and never replies."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def broker_at(settings):
    """Switch off eager mode and point the broker check at the given URL."""

    def configure(url):
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = url

    return configure


def test_ok_in_eager_mode(client, db, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/healthz/")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "not used"},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.redis
def test_ok_with_redis_broker(client, db, broker_at):
    broker_at(REDIS_TEST_URL)

    response = client.get("/healthz/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_database_down(client, db, caplog):
    failing_cursor = mock.Mock(side_effect=OperationalError(DATABASE_ERROR_TEXT))

    with mock.patch.object(connection, "cursor", failing_cursor):
        response = client.get("/healthz/")

    assert failing_cursor.called
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"database": "unavailable", "broker": "not used"},
    }
    assert "the database is unreachable" in caplog.text


def test_broker_refused(client, db, broker_at, closed_port, caplog):
    broker_at(f"redis://127.0.0.1:{closed_port}/0")

    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"database": "ok", "broker": "unavailable"},
    }
    assert "the Celery broker is unreachable" in caplog.text


def test_broker_silent_times_out(client, db, broker_at, silent_port, monkeypatch):
    monkeypatch.setattr(views, "BROKER_TIMEOUT_SECONDS", 0.5)
    broker_at(f"redis://127.0.0.1:{silent_port}/0")

    started = time.monotonic()
    response = client.get("/healthz/")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unavailable"
    # The check's budget is 0.5 s, an attempt under way at the deadline may take 0.5 s
    # more, and the rest is slack for a slow machine.
    assert elapsed < 5


def test_body_reveals_no_configuration(client, db, broker_at, closed_port, settings):
    broker_url = f"redis://127.0.0.1:{closed_port}/0"
    broker_at(broker_url)
    failing_cursor = mock.Mock(side_effect=OperationalError(DATABASE_ERROR_TEXT))

    with mock.patch.object(connection, "cursor", failing_cursor):
        response = client.get("/healthz/")

    body = response.content.decode()
    revealing = [
        broker_url,
        str(closed_port),
        "127.0.0.1",
        "redis",
        "db.internal.example",
        "10.9.8.7",
        "5433",
        str(settings.DATABASES["default"]["NAME"]),
        django.get_version(),
        platform.python_version(),
        "Traceback",
    ]
    assert [text for text in revealing if text in body] == []
    assert response.json() == {
        "status": "error",
        "checks": {"database": "unavailable", "broker": "unavailable"},
    }


def test_rejects_post(client, db):
    assert client.post("/healthz/").status_code == 405


def test_head_answers_like_get(client, db):
    # Proxies and uptime monitors often probe with HEAD.
    response = client.head("/healthz/")

    assert response.status_code == 200
    assert response.content == b""
