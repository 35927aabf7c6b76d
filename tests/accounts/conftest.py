"""Fixtures for the sign-in tests: the Google provider configured and its HTTP mocked."""

import copy

import pytest
import responses
from django.test import Client, TestCase

from tests.accounts.helpers import GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET, GoogleStub


@pytest.fixture(autouse=True)
def _commit_callbacks_after_requests(monkeypatch):
    """Run the on-commit callbacks of each test request when the request returns.

    allauth's emails go through the outbox, whose send task is queued on commit. A test's
    transaction never commits, so without this no sign-in code would ever be sent. A
    real request runs in autocommit mode, where each callback runs when it is registered.
    Running them at the end of the request is the closest the test transaction allows.
    """
    send_request = Client.request

    def request_then_commit(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return send_request(self, **request)

    monkeypatch.setattr(Client, "request", request_then_commit)


@pytest.fixture(autouse=True)
def _totp_tolerance(settings):
    """Accept TOTP codes of the previous and next period too.

    allauth's default of 0 accepts only the current 30-second period, so a code computed
    just before a period ends would fail a test that submits it just after.
    """
    settings.MFA_TOTP_TOLERANCE = 1


@pytest.fixture
def google_settings(settings):
    """Configure the Google provider the way settings.py does when both env values are set."""
    providers = copy.deepcopy(settings.SOCIALACCOUNT_PROVIDERS)
    providers["google"]["APPS"] = [
        {"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}
    ]
    settings.SOCIALACCOUNT_PROVIDERS = providers
    return settings


@pytest.fixture
def google(client, google_settings, db):
    """Yield a GoogleStub. Any outgoing HTTP request that it has not registered fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield GoogleStub(client, mock)


@pytest.fixture
def plan(db):
    from tests.factories import PlanFactory

    return PlanFactory(name="Hot Desk Test", slug="hot-desk-test")
