"""SaltoBackend at the HTTP boundary, with `responses` standing in for Salto KS.

Request bodies are compared with the JSON files in salto_payloads/, which follow the
shapes named in the module docstring of access/backends/salto.py.
"""

import json
import logging
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from access.backends.base import AccessBackendError
from access.backends.salto import SaltoBackend

PAYLOADS = Path(__file__).parent / "salto_payloads"

API = "https://salto.test"
TOKEN_URL = "https://identity.salto.test/connect/token"
SECRET = "client-secret-value"
TOKEN = "token-one"  # noqa: S105 - a fake token for the mocked identity server
SITE = f"{API}/v1.1/sites/site-1"
USERS = f"{SITE}/users"
USER_ID = "5b2e7c1a-0000-4000-8000-000000000042"
GROUP_URLS = [
    f"{SITE}/access_groups/group-members/users",
    f"{SITE}/access_groups/group-24h/users",
]
FIND_42 = {"$filter": "external_id eq 'cpr-member-42'"}


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def salto_settings(settings):
    settings.SALTO_API_BASE = API
    settings.SALTO_TOKEN_URL = TOKEN_URL
    settings.SALTO_CLIENT_ID = "client-id-value"
    settings.SALTO_CLIENT_SECRET = SECRET
    settings.SALTO_SITE_ID = "site-1"
    settings.SALTO_ACCESS_GROUP_IDS = ["group-members", "group-24h"]
    settings.SALTO_TIMEOUT_SECONDS = 7
    return settings


@pytest.fixture
def backend():
    return SaltoBackend()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def add_token(rsps, token=TOKEN, expires_in=3600):
    return rsps.post(
        TOKEN_URL,
        json={"access_token": token, "expires_in": expires_in, "token_type": "Bearer"},
    )


def add_find_user(rsps, found=True):
    return rsps.get(
        USERS,
        json=payload("user_search_found" if found else "user_search_empty"),
        match=[matchers.query_param_matcher(FIND_42)],
    )


def bearer(token=TOKEN):
    return matchers.header_matcher({"Authorization": f"Bearer {token}"})


# Token


def test_token_request_form(backend, mocked):
    token_call = add_token(mocked)
    mocked.get(SITE, json=payload("site_response"))

    backend.health_check()

    request = token_call.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == ["client-id-value"]
    assert form["client_secret"] == [SECRET]


def test_token_cached_between_calls(backend, mocked):
    token_call = add_token(mocked)
    site_call = mocked.get(SITE, json=payload("site_response"), match=[bearer()])

    assert backend.health_check()
    assert backend.health_check()

    assert token_call.call_count == 1
    assert site_call.call_count == 2


def test_token_refreshed_near_expiry(backend, mocked):
    # expires_in below the safety margin makes the token stale at once.
    token_call = add_token(mocked, expires_in=30)
    mocked.get(SITE, json=payload("site_response"))

    backend.health_check()
    backend.health_check()

    assert token_call.call_count == 2


def test_token_failure_hides_secret(backend, mocked):
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_client"})

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    assert "HTTP 400" in str(raised.value)
    assert SECRET not in str(raised.value)


# Authorization header and 401


def test_unauthorized_refreshes_once(backend, mocked):
    first_token = add_token(mocked, token="token-one")
    mocked.get(SITE, status=401, match=[bearer("token-one")])
    second_token = add_token(mocked, token="token-two")
    retried = mocked.get(SITE, json=payload("site_response"), match=[bearer("token-two")])

    assert backend.health_check()

    assert first_token.call_count == 1
    assert second_token.call_count == 1
    assert retried.call_count == 1


def test_unauthorized_twice_raises(backend, mocked):
    token_call = add_token(mocked)
    find_call = mocked.get(USERS, status=401)

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    assert token_call.call_count == 2
    assert find_call.call_count == 2
    assert "HTTP 401" in str(raised.value)


def test_every_call_has_bearer(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    for url in GROUP_URLS:
        mocked.patch(url, json={})
    mocked.post(f"{USERS}/{USER_ID}/tags", json={})
    mocked.delete(f"{USERS}/{USER_ID}/tags/0012345678", status=204)

    backend.grant_access(member_id=42)
    backend.assign_credential(member_id=42, number="0012345678", kind="fob")
    backend.cancel_credential(member_id=42, number="0012345678")

    api_calls = [call for call in mocked.calls if call.request.url.startswith(API)]
    assert len(api_calls) == 5
    for call in api_calls:
        assert call.request.headers["Authorization"] == "Bearer token-one"


# ensure_user


def test_ensure_user_creates_missing(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=False)
    create = mocked.post(
        USERS,
        status=201,
        json=payload("create_user_response"),
        match=[matchers.json_params_matcher(payload("create_user_request")), bearer()],
    )

    backend.ensure_user(member_id=42, name="Ana Rivera Soto", email="ana@example.com")

    assert create.call_count == 1


def test_ensure_user_existing_no_post(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=True)

    backend.ensure_user(member_id=42, name="Ana Rivera Soto", email="ana@example.com")

    assert [call.request.method for call in mocked.calls] == ["POST", "GET"]


def test_ensure_user_conflict_is_success(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=False)
    create = mocked.post(USERS, status=409, json={"message": "User already exists"})

    backend.ensure_user(member_id=42, name="Ana Rivera Soto", email="ana@example.com")

    assert create.call_count == 1


def test_ensure_user_caches_created_id(backend, mocked):
    add_token(mocked)
    find = add_find_user(mocked, found=False)
    mocked.post(USERS, status=201, json=payload("create_user_response"))
    group_calls = [
        mocked.patch(
            url, json={}, match=[matchers.json_params_matcher(payload("access_group_add_request"))]
        )
        for url in GROUP_URLS
    ]

    backend.ensure_user(member_id=42, name="Ana Rivera Soto", email="ana@example.com")
    backend.grant_access(member_id=42)

    assert find.call_count == 1
    assert [call.call_count for call in group_calls] == [1, 1]


# Access groups


def test_grant_adds_to_each_group(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    body = matchers.json_params_matcher(payload("access_group_add_request"))
    group_calls = [mocked.patch(url, json={}, match=[body, bearer()]) for url in GROUP_URLS]

    backend.grant_access(member_id=42)

    assert [call.call_count for call in group_calls] == [1, 1]


def test_grant_touches_only_configured_groups(backend, mocked, settings):
    settings.SALTO_ACCESS_GROUP_IDS = ["group-members"]
    add_token(mocked)
    add_find_user(mocked)
    mocked.patch(GROUP_URLS[0], json={})

    backend.grant_access(member_id=42)

    patched = [call.request.url for call in mocked.calls if call.request.method == "PATCH"]
    assert patched == [GROUP_URLS[0]]


def test_grant_already_member_is_success(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    for url in GROUP_URLS:
        mocked.patch(url, status=409, json={"message": "User already in access group"})

    backend.grant_access(member_id=42)

    assert len(mocked.calls) == 4


def test_grant_unknown_user_raises(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=False)

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    assert "cpr-member-42" in str(raised.value)


def test_remove_from_each_group(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    body = matchers.json_params_matcher(payload("access_group_remove_request"))
    group_calls = [mocked.patch(url, json={}, match=[body, bearer()]) for url in GROUP_URLS]

    backend.remove_access(member_id=42)

    assert [call.call_count for call in group_calls] == [1, 1]


def test_remove_not_found_is_success(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    for url in GROUP_URLS:
        mocked.patch(url, status=404, json={"message": "Not found"})

    backend.remove_access(member_id=42)

    assert len(mocked.calls) == 4


def test_remove_unknown_user_no_patch(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=False)

    backend.remove_access(member_id=42)

    assert [call.request.method for call in mocked.calls] == ["POST", "GET"]


def test_suspend_removes_from_groups(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    body = matchers.json_params_matcher(payload("access_group_remove_request"))
    group_calls = [mocked.patch(url, json={}, match=[body]) for url in GROUP_URLS]

    backend.suspend(member_id=42)

    assert [call.call_count for call in group_calls] == [1, 1]


def test_restore_adds_to_groups(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    body = matchers.json_params_matcher(payload("access_group_add_request"))
    group_calls = [mocked.patch(url, json={}, match=[body]) for url in GROUP_URLS]

    backend.restore(member_id=42)

    assert [call.call_count for call in group_calls] == [1, 1]


# Credentials


def test_assign_credential_body(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    assign = mocked.post(
        f"{USERS}/{USER_ID}/tags",
        status=201,
        json={},
        match=[matchers.json_params_matcher(payload("assign_tag_request")), bearer()],
    )

    backend.assign_credential(member_id=42, number="0012345678", kind="fob")

    assert assign.call_count == 1


def test_assign_credential_conflict_is_success(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    assign = mocked.post(f"{USERS}/{USER_ID}/tags", status=409, json={"message": "exists"})

    backend.assign_credential(member_id=42, number="0012345678", kind="fob")

    assert assign.call_count == 1


def test_cancel_credential_path(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    cancel = mocked.delete(f"{USERS}/{USER_ID}/tags/0012345678", status=204, match=[bearer()])

    backend.cancel_credential(member_id=42, number="0012345678")

    assert cancel.call_count == 1


def test_cancel_credential_not_found_is_success(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    cancel = mocked.delete(f"{USERS}/{USER_ID}/tags/0012345678", status=404)

    backend.cancel_credential(member_id=42, number="0012345678")

    assert cancel.call_count == 1


def test_cancel_credential_unknown_user_no_delete(backend, mocked):
    add_token(mocked)
    add_find_user(mocked, found=False)

    backend.cancel_credential(member_id=42, number="0012345678")

    assert [call.request.method for call in mocked.calls] == ["POST", "GET"]


# list_users


def test_list_users_follows_pages(backend, mocked):
    add_token(mocked)
    first = mocked.get(
        USERS,
        json=payload("users_page_1"),
        match=[
            matchers.query_param_matcher({"$filter": "startswith(external_id,'cpr-member-')"}),
            bearer(),
        ],
    )
    second = mocked.get(
        USERS,
        json=payload("users_page_2"),
        match=[matchers.query_param_matcher({"$skip": "2"}), bearer()],
    )

    users = backend.list_users()

    assert first.call_count == 1
    assert second.call_count == 1
    assert [user.member_id for user in users] == [42, 43]
    assert users[0].has_access is True
    assert users[0].credentials == ["0012345678"]
    assert users[1].has_access is False
    assert users[1].credentials == []


def test_list_users_rejects_foreign_link(backend, mocked):
    add_token(mocked)
    page = payload("users_page_2") | {"next_page_link": "https://elsewhere.test/users?page=2"}
    mocked.get(USERS, json=page)

    with pytest.raises(AccessBackendError) as raised:
        backend.list_users()

    assert "elsewhere.test" in str(raised.value)


# Errors


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"message": "Internal error"}},
        {"status": 400, "json": {"message": "Bad request"}},
        {"body": requests.Timeout("read timed out")},
        {"body": requests.ConnectionError("connection refused")},
    ],
    ids=["http-500", "http-400", "timeout", "connection-error"],
)
def test_failure_raises_without_secrets(backend, mocked, failure):
    add_token(mocked)
    add_find_user(mocked)
    mocked.patch(GROUP_URLS[0], **failure)

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    message = str(raised.value)
    assert "PATCH /v1.1/sites/site-1/access_groups/group-members/users" in message
    assert SECRET not in message
    assert "token-one" not in message


def test_failure_message_names_status(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)
    mocked.patch(GROUP_URLS[0], status=503)

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    assert "HTTP 503" in str(raised.value)


def test_timeout_setting_used(backend, mocked):
    add_token(mocked)
    add_find_user(mocked)

    backend.ensure_user(member_id=42, name="Ana Rivera Soto", email="ana@example.com")

    assert all(call.request.req_kwargs["timeout"] == 7 for call in mocked.calls)


def test_failure_logged_with_member(backend, mocked, caplog):
    add_token(mocked)
    add_find_user(mocked)
    mocked.patch(GROUP_URLS[0], status=500)

    with (
        caplog.at_level(logging.WARNING, logger="access.backends.salto"),
        pytest.raises(AccessBackendError),
    ):
        backend.grant_access(member_id=42)

    assert "member 42: HTTP 500" in caplog.text
    assert SECRET not in caplog.text


def test_health_check_down_returns_false(backend, mocked):
    add_token(mocked)
    mocked.get(SITE, status=502)

    assert backend.health_check() is False


# Configuration


@pytest.mark.parametrize(
    "setting_name",
    ["SALTO_CLIENT_ID", "SALTO_CLIENT_SECRET", "SALTO_SITE_ID", "SALTO_ACCESS_GROUP_IDS"],
)
def test_configuration_names_missing(backend, settings, setting_name):
    setattr(settings, setting_name, [] if setting_name == "SALTO_ACCESS_GROUP_IDS" else "")

    problems = backend.configuration_problems()

    assert len(problems) == 1
    assert setting_name in problems[0]


def test_configuration_complete_is_empty(backend):
    assert backend.configuration_problems() == []


def test_unconfigured_call_sends_nothing(backend, settings, mocked):
    settings.SALTO_SITE_ID = ""

    with pytest.raises(AccessBackendError) as raised:
        backend.grant_access(member_id=42)

    assert "SALTO_SITE_ID" in str(raised.value)
    assert len(mocked.calls) == 0
