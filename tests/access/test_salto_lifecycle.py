"""The key lifecycle of test_lifecycle.py, run against SaltoBackend over mocked HTTP.

`FakeSalto` responds to every Salto KS call through `responses` and keeps the users, tags and
access group members from the requests it received, so a test can check both the requests and the
state they leave behind. Setting `down` makes every call fail, as in an outage.

`get_backend` caches the backend, and SaltoBackend caches its token and user ids, so the
`salto` fixture clears that cache before and after each test.
"""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from access.backends import _load
from access.models import AccessEvent, AccessKey
from access.services import issue_key, reconcile_all
from access.tasks import reconcile_all_task
from billing.services import apply_gateway_event, suspend_overdue_memberships
from members.models import Membership
from members.services import cancel_membership
from tests.factories.billing import payment_failed, payment_succeeded

API = "https://salto.test"
TOKEN_URL = "https://identity.salto.test/connect/token"
SITE_PATH = "/v1.1/sites/site-1"
GROUPS = ["group-members", "group-24h"]
OTHER_GROUP = "group-staff-managed"

Wanted = AccessKey.Wanted
Sync = AccessKey.Sync
State = Membership.State

HTTP_SERVICE_UNAVAILABLE = 503


class FakeSalto:
    """A Salto KS site held in memory, served through `responses` callbacks.

    `calls` lists (method, path, body) for every API call except token requests, with the
    body decoded from JSON or None. `down` is None, "503" or "connection".
    """

    def __init__(self, rsps: responses.RequestsMock):
        self.users: dict[str, dict] = {}
        self.groups: dict[str, set[str]] = {group: set() for group in [*GROUPS, OTHER_GROUP]}
        self.tags: dict[str, set[str]] = {}
        self.calls: list[tuple[str, str, dict | None]] = []
        self.token_requests = 0
        self.down: str | None = None
        any_api = re.compile(re.escape(API) + r"/.*")
        rsps.add_callback(responses.POST, TOKEN_URL, callback=self._token)
        for method in (responses.GET, responses.POST, responses.PATCH, responses.DELETE):
            rsps.add_callback(method, any_api, callback=self._api)

    def _outage(self):
        if self.down == "connection":
            raise requests.ConnectionError("connection refused by the test")
        if self.down == "503":
            return (HTTP_SERVICE_UNAVAILABLE, {}, "")
        return None

    def _token(self, request):
        self.token_requests += 1
        outage = self._outage()
        if outage:
            return outage
        body = {"access_token": "token-one", "expires_in": 3600, "token_type": "Bearer"}
        return (200, {}, json.dumps(body))

    def _api(self, request):
        url = urlsplit(request.url)
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method, url.path, body))
        outage = self._outage()
        if outage:
            return outage
        assert request.headers["Authorization"] == "Bearer token-one"
        path = url.path.removeprefix(SITE_PATH)
        if request.method == "GET" and path == "/users":
            return self._find(parse_qs(url.query)["$filter"][0])
        if request.method == "POST" and path == "/users":
            return self._create(body)
        match = re.fullmatch(r"/users/([^/]+)/tags(?:/([^/]+))?", path)
        if match and request.method == "POST":
            self.tags.setdefault(match[1], set()).add(body["tag_number"])
            return (201, {}, json.dumps(body))
        if match and request.method == "DELETE":
            self.tags.get(match[1], set()).discard(match[2])
            return (204, {}, "")
        match = re.fullmatch(r"/access_groups/([^/]+)/users", path)
        if match and request.method == "PATCH":
            members = self.groups[match[1]]
            members.update(body["add_ids"])
            members.difference_update(body["remove_ids"])
            return (200, {}, "{}")
        raise AssertionError(f"unexpected Salto call {request.method} {url.path}")

    def _find(self, odata_filter):
        external_id = re.fullmatch(r"external_id eq '(.+)'", odata_filter)[1]
        items = [user for user in self.users.values() if user["external_id"] == external_id]
        return (200, {}, json.dumps({"items": items, "next_page_link": None}))

    def _create(self, body):
        user = {**body, "id": f"salto-user-{len(self.users) + 1}"}
        self.users[user["id"]] = user
        return (201, {}, json.dumps(user))

    def user_id(self, member_id: int) -> str:
        return next(
            user["id"]
            for user in self.users.values()
            if user["external_id"] == f"cpr-member-{member_id}"
        )

    def groups_of(self, user_id: str) -> set[str]:
        return {group for group, members in self.groups.items() if user_id in members}


@pytest.fixture
def salto(db, settings):
    settings.ACCESS_BACKEND = "access.backends.salto.SaltoBackend"
    settings.SALTO_API_BASE = API
    settings.SALTO_TOKEN_URL = TOKEN_URL
    settings.SALTO_CLIENT_ID = "client-id-value"
    settings.SALTO_CLIENT_SECRET = "client-secret-value"  # noqa: S105 - fake test value
    settings.SALTO_SITE_ID = "site-1"
    settings.SALTO_ACCESS_GROUP_IDS = GROUPS
    settings.SALTO_TIMEOUT_SECONDS = 7
    _load.cache_clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeSalto(rsps)
    _load.cache_clear()


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Return a context manager that runs on-commit callbacks at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def apply(event):
    apply_gateway_event(event=event, gateway="stub")


def key_now(key):
    return AccessKey.objects.get(pk=key.pk)


def group_patches(calls, field):
    """Return the group paths of the PATCH calls whose `field` (add_ids/remove_ids) is set."""
    return [path for method, path, body in calls if method == "PATCH" and body[field]]


GROUP_PATHS = [f"{SITE_PATH}/access_groups/{group}/users" for group in GROUPS]


@pytest.fixture
def keyed(hot_desk_membership, stub_gateway, salto, staff_user, commit):
    """An active paid membership whose member has key FOB-1, issued through Salto."""
    with commit():
        apply(payment_succeeded(hot_desk_membership))
    membership = Membership.objects.get(pk=hot_desk_membership.pk)
    with commit():
        key = issue_key(member=membership.member, number="FOB-1", kind="fob", actor=staff_user)
    return membership, key


@pytest.fixture
def suspended(keyed, salto, clock, commit):
    """The keyed membership after a failed renewal and the end of its grace period."""
    membership, key = keyed
    with commit():
        apply(payment_failed(membership, number=2))
    clock.advance(8)
    salto.calls.clear()
    with commit():
        suspend_overdue_memberships()
    return membership, key


def test_issue_calls(keyed, salto):
    membership, key = keyed
    user_path = f"{SITE_PATH}/users"
    user_id = salto.user_id(membership.member_id)
    add = {"add_ids": [user_id], "remove_ids": []}

    assert salto.token_requests == 1
    assert salto.calls == [
        ("GET", user_path, None),
        (
            "POST",
            user_path,
            {
                "first_name": membership.member.full_name.partition(" ")[0],
                "last_name": membership.member.full_name.partition(" ")[2],
                "email": membership.member.email,
                "external_id": f"cpr-member-{membership.member_id}",
            },
        ),
        ("POST", f"{user_path}/{user_id}/tags", {"tag_number": "FOB-1", "tag_type": "fob"}),
        ("PATCH", GROUP_PATHS[0], add),
        ("PATCH", GROUP_PATHS[1], add),
    ]


def test_issue_state(keyed, salto):
    membership, key = keyed
    user_id = salto.user_id(membership.member_id)

    assert salto.groups_of(user_id) == set(GROUPS)
    assert salto.tags[user_id] == {"FOB-1"}
    assert key_now(key).sync_status == Sync.IN_SYNC
    assert key_now(key).backend_state == Wanted.ACTIVE


def test_grace_over_removes_from_groups(suspended, salto):
    membership, key = suspended
    user_id = salto.user_id(membership.member_id)
    remove = {"add_ids": [], "remove_ids": [user_id]}

    assert salto.calls == [
        ("DELETE", f"{SITE_PATH}/users/{user_id}/tags/FOB-1", None),
        ("PATCH", GROUP_PATHS[0], remove),
        ("PATCH", GROUP_PATHS[1], remove),
    ]
    assert salto.groups_of(user_id) == set()
    assert salto.tags[user_id] == set()


def test_grace_over_key_state(suspended):
    membership, key = suspended

    key = key_now(key)
    assert Membership.objects.get(pk=membership.pk).state == State.SUSPENDED
    assert key.status == AccessKey.Status.SUSPENDED
    assert key.sync_status == Sync.IN_SYNC
    assert key.backend_state == Wanted.SUSPENDED


def test_grace_over_event(suspended):
    membership, key = suspended

    event = key_now(key).events.last()
    assert event.cause == AccessEvent.Cause.SCHEDULE
    assert event.to_wanted == Wanted.SUSPENDED
    assert "grace period over" in event.reason


def test_other_group_untouched(keyed, salto, clock, commit):
    membership, key = keyed
    user_id = salto.user_id(membership.member_id)
    salto.groups[OTHER_GROUP].add(user_id)
    with commit():
        apply(payment_failed(membership, number=2))
    clock.advance(8)

    with commit():
        suspend_overdue_memberships()

    assert salto.groups_of(user_id) == {OTHER_GROUP}


@pytest.mark.parametrize("outage", ["503", "connection"])
def test_outage_keeps_pending(suspended, salto, commit, outage):
    membership, key = suspended
    salto.down = outage

    with commit():
        apply(payment_succeeded(membership, number=2))

    key = key_now(key)
    assert Membership.objects.get(pk=membership.pk).state == State.ACTIVE
    assert key.wanted_state == Wanted.ACTIVE
    assert key.backend_state == Wanted.SUSPENDED
    assert key.sync_status == Sync.PENDING
    assert "Salto" in key.last_error
    assert key.events.last().cause == AccessEvent.Cause.PAYMENT


def test_outage_second_run_pending(suspended, salto, commit):
    membership, key = suspended
    salto.down = "503"
    with commit():
        apply(payment_succeeded(membership, number=2))
    attempts = key_now(key).sync_attempts

    assert reconcile_all() == 0

    key = key_now(key)
    assert key.sync_status == Sync.PENDING
    assert key.sync_attempts == attempts + 1
    assert key.wanted_state == Wanted.ACTIVE


@pytest.fixture
def restored_after_outage(suspended, salto, commit):
    """The suspended key, paid during an outage that lasts two reconcile runs, then synced."""
    membership, key = suspended
    salto.down = "503"
    with commit():
        apply(payment_succeeded(membership, number=2))
    reconcile_all()
    salto.down = None
    salto.calls.clear()
    synced = reconcile_all_task.delay().get()
    return membership, key, synced


def test_recovery_converges(restored_after_outage, salto):
    membership, key, synced = restored_after_outage

    key = key_now(key)
    assert synced == 1
    assert key.sync_status == Sync.IN_SYNC
    assert key.backend_state == Wanted.ACTIVE
    assert key.last_error == ""
    assert key.sync_attempts == 0
    assert salto.groups_of(salto.user_id(membership.member_id)) == set(GROUPS)


def test_recovery_adds_back_once(restored_after_outage, salto):
    membership, key, synced = restored_after_outage
    add = {"add_ids": [salto.user_id(membership.member_id)], "remove_ids": []}

    assert group_patches(salto.calls, "add_ids") == GROUP_PATHS
    assert [body for method, _, body in salto.calls if method == "PATCH"] == [add, add]


def test_in_sync_no_calls(restored_after_outage, salto):
    salto.calls.clear()
    tokens = salto.token_requests

    assert reconcile_all() == 0

    assert salto.calls == []
    assert salto.token_requests == tokens


def test_cancellation_revokes_at_salto(restored_after_outage, salto, staff_user, commit):
    membership, key, synced = restored_after_outage
    user_id = salto.user_id(membership.member_id)
    salto.calls.clear()

    with commit():
        cancel_membership(
            membership=membership, actor=staff_user, reason="moving abroad", immediately=True
        )

    remove = {"add_ids": [], "remove_ids": [user_id]}
    assert salto.calls == [
        ("PATCH", GROUP_PATHS[0], remove),
        ("PATCH", GROUP_PATHS[1], remove),
        ("DELETE", f"{SITE_PATH}/users/{user_id}/tags/FOB-1", None),
    ]


def test_cancellation_key_state(restored_after_outage, salto, staff_user, commit):
    membership, key, synced = restored_after_outage
    user_id = salto.user_id(membership.member_id)

    with commit():
        cancel_membership(
            membership=membership, actor=staff_user, reason="moving abroad", immediately=True
        )

    key = key_now(key)
    assert key.status == AccessKey.Status.REVOKED
    assert key.backend_state == Wanted.REVOKED
    assert key.sync_status == Sync.IN_SYNC
    assert salto.groups_of(user_id) == set()
    assert salto.tags[user_id] == set()
