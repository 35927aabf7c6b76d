"""Shared fixtures, and the rule that a service-marked test never skips in CI.

With CPR_REQUIRE_SERVICES=1 (set by .ci/run) a test marked `postgres` fails instead of
skipping when the database is not PostgreSQL, a test marked `e2e` fails instead of
skipping when Chromium or Playwright is missing, and any skipped test fails the session.
"""

import importlib.util
import os

import pytest
from django.core.cache import cache
from django.db import connection

from tests.factories import StaffUserFactory, enable_totp

REQUIRE_SERVICES = os.environ.get("CPR_REQUIRE_SERVICES") == "1"
# Debian's chromium package; Playwright drives it instead of a browser build of its own.
CHROMIUM_PATH = "/usr/bin/chromium"


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
    """The Hot Desk plan seeded by the data migration."""
    from members.models import Plan

    return Plan.objects.get(slug="hot-desk")
