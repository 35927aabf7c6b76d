"""Shared fixtures, and the rule that a service-marked test never skips in CI.

With CPR_REQUIRE_SERVICES=1 (set by .ci/run) a test marked `postgres` fails instead of
skipping when the database is not PostgreSQL, a test marked `e2e` fails instead of
skipping when Chromium or Playwright is missing, a test marked `redis` fails instead of
skipping when Redis at CPR_TEST_REDIS_URL does not respond, a test marked `shellcheck`
fails instead of skipping when shellcheck is missing, and any skipped test fails the
session.
"""

import importlib
import importlib.util
import os
import shutil

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import translation

from cpr_portal.catalogue import compile_catalogues
from tests.factories import StaffUserFactory, enable_totp

REQUIRE_SERVICES = os.environ.get("CPR_REQUIRE_SERVICES") == "1"
# Debian's chromium package; Playwright drives it instead of a browser build of its own.
CHROMIUM_PATH = "/usr/bin/chromium"
# Redis database for tests that run a real Celery worker on queues named cpr-portal-test-*.
REDIS_TEST_URL = os.environ.get("CPR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def _clear_cache():
    """Start every test with an empty cache, so rate-limit counters never leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _require_postgres(request):
    if request.node.get_closest_marker("postgres") is None:
        return
    request.getfixturevalue("db")
    if connection.vendor == "postgresql":
        return
    message = f"needs PostgreSQL, but DATABASE_URL points at {connection.vendor}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _require_browser(request):
    if request.node.get_closest_marker("e2e") is None:
        return
    if importlib.util.find_spec("playwright") is None:
        message = "needs Playwright for Python: pip install -e '.[dev]'"
    elif not os.access(CHROMIUM_PATH, os.X_OK):
        message = f"needs Chromium at {CHROMIUM_PATH}: apt-get install chromium"
    else:
        return
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _require_redis(request):
    if request.node.get_closest_marker("redis") is None:
        return
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        message = f"needs Redis at {REDIS_TEST_URL}: {error}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _require_shellcheck(request):
    if request.node.get_closest_marker("shellcheck") is None:
        return
    if shutil.which("shellcheck") is not None:
        return
    message = "needs shellcheck: apt-get install shellcheck"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def pytest_configure(config):
    """Compile the translation catalogue, and run management commands in English.

    A fresh clone has only the .po files. The commands follow the operator's locale, so a
    Spanish shell would otherwise change the output that the tests read; manage.py
    subprocesses inherit the variable too.
    """
    compile_catalogues()
    os.environ["CPR_COMMAND_LANGUAGE"] = "en"


@pytest.fixture(autouse=True)
def _reset_active_language():
    """Deactivate the language a test left active (a Spanish page request leaves "es").

    Code that runs outside a request, such as call_command's argument parsing, would
    otherwise print its messages in the previous test's language.
    """
    yield
    translation.deactivate()


def pytest_sessionfinish(session, exitstatus):
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"CPR_REQUIRE_SERVICES=1: {len(skipped)} skipped test(s) count as failures", red=True
        )
        session.exitstatus = 1


@pytest.fixture
def staff_user(db):
    """A superuser with a TOTP authenticator, so the MFA requirement lets it through."""
    user = StaffUserFactory()
    enable_totp(user)
    return user


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def hot_desk(db):
    """The Hot Desk plan seeded by the data migration.

    A transactional test empties every table when it ends, so the plan is recreated from
    the migration's own values when it is missing.
    """
    from members.models import Plan

    seed = {
        **importlib.import_module("members.migrations.0002_seed_hot_desk_plan").HOT_DESK,
        **importlib.import_module("members.migrations.0012_seed_hot_desk_spanish").HOT_DESK_ES,
    }
    values = {key: value for key, value in seed.items() if key != "slug"}
    plan, _created = Plan.objects.get_or_create(slug=seed["slug"], defaults=values)
    return plan
