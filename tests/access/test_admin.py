"""Back office for access keys: issuing, the key actions, the lists and their queries."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.contrib.messages import ERROR, SUCCESS, get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access import services
from access.backends.base import AccessBackendError
from access.backends.tracking import TrackingBackend
from access.models import AccessEvent, AccessKey
from members.models import Member, Membership
from tests.factories import MemberFactory, MembershipFactory, UserFactory, enable_totp

pytestmark = pytest.mark.django_db

Status = AccessKey.Status
Wanted = AccessKey.Wanted
Sync = AccessKey.Sync
State = Membership.State

ISSUE_URL = reverse("admin:access_accesskey_issue")
KEYS_URL = reverse("admin:access_accesskey_changelist")
MEMBERS_URL = reverse("admin:members_member_changelist")


def make_key(member: Member, number: str, **fields) -> AccessKey:
    """Create a key row directly, for tests that start from a given key state."""
    return AccessKey.objects.create(
        member=member, number=number, issued_at=timezone.now(), **fields
    )


def active_member() -> Member:
    return MembershipFactory(state=State.ACTIVE).member


def messages_of(response) -> list[tuple[int, str]]:
    return [
        (message.level, str(message.message)) for message in get_messages(response.wsgi_request)
    ]


def run_action(client, action, keys, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(key.pk) for key in keys], "index": "0"}
    data.update(extra)
    return client.post(KEYS_URL, data)


def confirm_action(client, action, keys, **extra):
    """Post the second step of an action that asked for a reason on its own page."""
    data = {
        "action": action,
        ACTION_CHECKBOX_NAME: [str(key.pk) for key in keys],
        "_reason_step": "1",
    }
    data.update(extra)
    return client.post(KEYS_URL, data)


def issue_data(member: Member, number: str = "0004471234", kind: str = "fob") -> dict:
    return {"member": str(member.pk), "number": number, "kind": kind}


# --- Issue key ---------------------------------------------------------------------------


def test_issue_creates_key(staff_client, staff_user):
    member = active_member()

    response = staff_client.post(ISSUE_URL, issue_data(member, kind="card"))

    key = AccessKey.objects.get()
    assert response.status_code == 302
    assert key.member == member
    assert key.number == "0004471234"
    assert key.kind == AccessKey.Kind.CARD
    assert key.status == Status.ACTIVE
    assert AccessEvent.objects.get(key=key).actor == staff_user


def test_issue_reports_success(staff_client):
    member = active_member()

    response = staff_client.post(ISSUE_URL, issue_data(member), follow=True)

    [(level, text)] = messages_of(response)
    assert level == SUCCESS
    assert "0004471234" in text
    assert member.full_name in text


def test_issue_duplicate_number_error(staff_client):
    make_key(active_member(), "ABC-1234")
    member = active_member()

    response = staff_client.post(ISSUE_URL, issue_data(member, number="abc-1234"))

    assert response.status_code == 200
    assert "belongs to another key that was not returned" in response.text
    assert not AccessKey.objects.filter(member=member).exists()


def test_issue_returned_number_reused(staff_client):
    make_key(active_member(), "ABC-1234", status=Status.RETURNED, wanted_state=Wanted.REVOKED)
    member = active_member()

    response = staff_client.post(ISSUE_URL, issue_data(member, number="ABC-1234"))

    assert response.status_code == 302
    assert AccessKey.objects.filter(member=member, number="ABC-1234").exists()


def test_issue_without_membership_error(staff_client):
    member = MemberFactory()
    MembershipFactory(member=member, state=State.ENDED)

    response = staff_client.post(ISSUE_URL, issue_data(member))

    assert response.status_code == 200
    assert "has no current membership" in response.text
    assert not AccessKey.objects.exists()


def test_issue_form_keeps_input(staff_client):
    member = MemberFactory()

    response = staff_client.post(ISSUE_URL, issue_data(member, number="KEEP-9876"))

    assert 'value="KEEP-9876"' in response.text


def test_issue_needs_add_permission(client):
    user = UserFactory(is_staff=True)
    enable_totp(user)
    user.user_permissions.add(Permission.objects.get(codename="view_accesskey"))
    client.force_login(user)

    response = client.post(ISSUE_URL, issue_data(active_member()))

    assert response.status_code == 403
    assert not AccessKey.objects.exists()


def test_add_form_disabled(staff_client):
    response = staff_client.get(reverse("admin:access_accesskey_add"))

    assert response.status_code == 403


def test_changelist_links_issue_form(staff_client):
    response = staff_client.get(KEYS_URL)

    assert ISSUE_URL in response.text


# --- Key page ----------------------------------------------------------------------------


def test_key_page_read_only(staff_client):
    key = make_key(active_member(), "0001")
    AccessEvent.objects.create(key=key, cause=AccessEvent.Cause.STAFF, to_status=Status.ACTIVE)

    response = staff_client.get(reverse("admin:access_accesskey_change", args=[key.pk]))

    [inline] = response.context["inline_admin_formsets"]
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


def test_key_page_post_changes_nothing(staff_client):
    key = make_key(active_member(), "0001")

    response = staff_client.post(
        reverse("admin:access_accesskey_change", args=[key.pk]),
        {"status": Status.RETURNED, "number": "9999"},
    )

    key.refresh_from_db()
    assert response.status_code == 403
    assert key.status == Status.ACTIVE
    assert key.number == "0001"


# --- Actions -----------------------------------------------------------------------------


def test_suspend_asks_reason(staff_client):
    key = make_key(active_member(), "0001")

    response = run_action(staff_client, "suspend_selected", [key])

    key.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].fields
    assert not key.staff_hold


def test_suspend_blank_reason_rejected(staff_client):
    key = make_key(active_member(), "0001")

    response = confirm_action(staff_client, "suspend_selected", [key], reason="   ")

    key.refresh_from_db()
    assert response.status_code == 200
    assert "Give a reason for suspending" in response.text
    assert not key.staff_hold


def test_suspend_holds_key(staff_client, staff_user):
    key = make_key(active_member(), "0001")

    response = confirm_action(staff_client, "suspend_selected", [key], reason="Lent the fob")

    key.refresh_from_db()
    event = AccessEvent.objects.get(key=key)
    assert response.status_code == 302
    assert key.staff_hold
    assert key.staff_hold_reason == "Lent the fob"
    assert key.status == Status.SUSPENDED
    assert event.actor == staff_user


def test_restore_reports_each_row(staff_client):
    held = make_key(active_member(), "0001", staff_hold=True, status=Status.SUSPENDED)
    not_held = make_key(active_member(), "0002")

    response = run_action(staff_client, "restore_selected", [held, not_held])

    held.refresh_from_db()
    [(first_level, first_text), (second_level, second_text)] = messages_of(response)
    assert not held.staff_hold
    assert first_level == SUCCESS
    assert "0001" in first_text
    assert second_level == ERROR
    assert "0002" in second_text
    assert "not suspended by staff" in second_text


def test_mark_lost_revokes_key(staff_client):
    key = make_key(active_member(), "0001")

    response = confirm_action(staff_client, "mark_lost_selected", [key], reason="Lost at a cafe")

    key.refresh_from_db()
    event = AccessEvent.objects.get(key=key)
    assert response.status_code == 302
    assert key.status == Status.LOST
    assert key.wanted_state == Wanted.REVOKED
    assert "Lost at a cafe" in event.reason


def test_mark_lost_reason_optional(staff_client):
    key = make_key(active_member(), "0001")

    confirm_action(staff_client, "mark_lost_selected", [key], reason="")

    key.refresh_from_db()
    assert key.status == Status.LOST


def test_mark_returned_action(staff_client):
    key = make_key(active_member(), "0001")

    response = run_action(staff_client, "mark_returned_selected", [key])

    key.refresh_from_db()
    [(level, _text)] = messages_of(response)
    assert key.status == Status.RETURNED
    assert key.returned_at is not None
    assert level == SUCCESS


def test_mark_returned_twice_reports_error(staff_client):
    key = make_key(active_member(), "0001", status=Status.RETURNED, wanted_state=Wanted.REVOKED)

    response = run_action(staff_client, "mark_returned_selected", [key])

    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "already marked returned" in text


def test_sync_now_reconciles(staff_client):
    key = make_key(active_member(), "0001", sync_status=Sync.PENDING)

    response = run_action(staff_client, "sync_selected", [key])

    key.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert key.sync_status == Sync.IN_SYNC
    assert key.backend_state == Wanted.ACTIVE
    assert level == SUCCESS
    assert "in sync" in text


class DownBackend(TrackingBackend):
    """A backend whose lock system does not respond."""

    name = "down"

    def ensure_user(self, *, member_id, name, email):
        raise AccessBackendError("Lock system timed out after 10 s")


def test_sync_now_reports_backend_error(staff_client, monkeypatch):
    monkeypatch.setattr(services, "get_backend", DownBackend)
    key = make_key(active_member(), "0001", sync_status=Sync.PENDING)

    response = run_action(staff_client, "sync_selected", [key])

    key.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "timed out" in text
    assert key.sync_status == Sync.PENDING
    assert key.last_error == "Lock system timed out after 10 s"


def test_action_on_key_page(staff_client):
    key = make_key(active_member(), "0001")
    url = reverse("admin:access_accesskey_change", args=[key.pk])

    response = staff_client.post(
        url, {"CHANGE_FORM-action": "mark_returned_selected", ACTION_CHECKBOX_NAME: str(key.pk)}
    )

    key.refresh_from_db()
    assert response.status_code == 302
    assert key.status == Status.RETURNED


# --- Lists ---------------------------------------------------------------------------------


def changelist_pks(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("query", "field"),
    [("ZX-4455", "number"), ("noelia", "first_name"), ("keys@example.org", "email")],
)
def test_key_search(staff_client, query, field):
    found_member = MemberFactory(first_name="Noelia", email="keys@example.org")
    found = make_key(found_member, "ZX-4455")
    make_key(MemberFactory(first_name="Other", email="other@example.com"), "QQ-0001")

    response = staff_client.get(KEYS_URL, {"q": query})

    assert changelist_pks(response) == {found.pk}, field


def test_key_filter_sync_status(staff_client):
    failed = make_key(active_member(), "0001", sync_status=Sync.FAILED, last_error="HTTP 503")
    make_key(active_member(), "0002", sync_status=Sync.IN_SYNC)

    response = staff_client.get(KEYS_URL, {"sync_status__exact": "failed"})

    assert changelist_pks(response) == {failed.pk}
    assert "HTTP 503" in response.text


def test_member_list_current_key(staff_client):
    member = MemberFactory(last_name="Quiñones")
    make_key(member, "0004471234", status=Status.SUSPENDED)
    make_key(member, "9990008888", status=Status.RETURNED, wanted_state=Wanted.REVOKED)

    response = staff_client.get(MEMBERS_URL)

    assert "…1234 (Suspended)" in response.text
    assert "0004471234" not in response.text
    assert "8888" not in response.text


def make_keys(count: int) -> None:
    statuses = list(Status)
    first = Member.objects.count()
    for index in range(first, first + count):
        member = MemberFactory(company=f"Example {index}")
        MembershipFactory(member=member, state=State.ACTIVE)
        status = statuses[index % len(statuses)]
        make_key(member, f"N{index:06d}", status=status)
        if index % 3 == 0:
            make_key(member, f"M{index:06d}", status=Status.RETURNED)


def count_queries(client, url, params) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries), len(response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (KEYS_URL, {}),
        (KEYS_URL, {"q": "example"}),
        (KEYS_URL, {"status__exact": "active"}),
        (KEYS_URL, {"sync_status__exact": "pending"}),
        (KEYS_URL, {"kind__exact": "fob"}),
        (MEMBERS_URL, {}),
    ],
)
def test_changelist_queries_constant(staff_client, url, params):
    # "all" shows every row on one page (up to list_max_show_all, 200 by default).
    params = {**params, "all": ""}
    make_keys(10)
    # The first request may fill per-process caches, so counting starts with the second.
    staff_client.get(url, params)

    few_queries, few_rows = count_queries(staff_client, url, params)
    make_keys(190)
    many_queries, many_rows = count_queries(staff_client, url, params)

    assert many_rows > few_rows
    assert many_queries == few_queries
