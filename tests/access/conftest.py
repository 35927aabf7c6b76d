"""Fixtures of the access tests.

- `backend`: ACCESS_BACKEND set to `RecordingBackend`; returns the backend, whose `calls`
  lists every call in order and which raises AccessBackendError while `failing` is set.
- `active_member`: a member with an active membership that started on the clock's today.
- `clock`, `stub_gateway`, `hot_desk_membership`: the billing fixtures of the same names.
"""

import pytest

from access.backends import get_backend
from access.backends.base import AccessBackend, AccessBackendError, BackendUser
from members.models import Membership
from tests.billing.conftest import clock, hot_desk_membership, stub_gateway  # noqa: F401
from tests.factories import MembershipFactory


class RecordingBackend(AccessBackend):
    """An access backend that records its calls and fails on request."""

    name = "recording"

    def __init__(self):
        self.reset()

    def _call(self, *call):
        if self.failing:
            self.failed_calls += 1
            raise AccessBackendError(f"door system unreachable during {call[0]}")
        self.calls.append(call)

    def reset(self):
        self.calls = []
        self.failing = False
        self.failed_calls = 0

    def ensure_user(self, *, member_id, name, email):
        self._call("ensure_user", member_id)

    def grant_access(self, *, member_id):
        self._call("grant_access", member_id)

    def remove_access(self, *, member_id):
        self._call("remove_access", member_id)

    def assign_credential(self, *, member_id, number, kind):
        self._call("assign_credential", member_id, number)

    def cancel_credential(self, *, member_id, number):
        self._call("cancel_credential", member_id, number)

    def suspend(self, *, member_id):
        self._call("suspend", member_id)

    def restore(self, *, member_id):
        self._call("restore", member_id)

    def list_users(self):
        return [BackendUser(member_id=call[1], has_access=True) for call in self.calls]

    def health_check(self):
        return not self.failing


@pytest.fixture
def backend(db, settings):
    settings.ACCESS_BACKEND = "tests.access.conftest.RecordingBackend"
    recording = get_backend()
    recording.reset()
    yield recording
    recording.reset()


@pytest.fixture
def active_member(db, clock):  # noqa: F811
    membership = MembershipFactory(state=Membership.State.ACTIVE, start_date=clock.today)
    return membership.member
