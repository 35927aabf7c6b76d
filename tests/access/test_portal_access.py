"""Member portal: the access key section of the dashboard."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access.models import AccessKey
from members.models import Member, Membership
from tests.factories import MembershipFactory, MemberWithUserFactory

pytestmark = pytest.mark.django_db

Status = AccessKey.Status
Wanted = AccessKey.Wanted

DASHBOARD_URL = reverse("members:portal_dashboard")


def make_key(member: Member, number: str, **fields) -> AccessKey:
    return AccessKey.objects.create(
        member=member, number=number, issued_at=timezone.now(), **fields
    )


@pytest.fixture
def member():
    member = MemberWithUserFactory(first_name="Ana", email="ana@example.com")
    MembershipFactory(member=member, state=Membership.State.ACTIVE)
    return member


@pytest.fixture
def member_client(client, member):
    client.force_login(member.user)
    return client


def key_section(client) -> str:
    """Return the text of the dashboard's access key section, without its markup."""
    response = client.get(DASHBOARD_URL)
    assert response.status_code == 200
    match = re.search(r'<section[^>]*id="access-key".*?</section>', response.text, re.S)
    assert match is not None, "the dashboard has no access key section"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0)))


def key_statuses(client) -> list[str]:
    response = client.get(DASHBOARD_URL)
    return re.findall(r'class="key-status">([^<]*)<', response.text)


def test_shows_last_digits_only(member_client, member):
    make_key(member, "0004479876")

    section = key_section(member_client)

    assert "ending in 9876" in section
    assert "0004479876" not in section
    assert "000447" not in member_client.get(DASHBOARD_URL).text


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"status": Status.ACTIVE}, "Active — opens the doors"),
        (
            {"status": Status.SUSPENDED, "wanted_state": Wanted.SUSPENDED},
            "Suspended — pay the overdue invoice to restore it",
        ),
        (
            {"status": Status.SUSPENDED, "wanted_state": Wanted.SUSPENDED, "staff_hold": True},
            "Suspended by staff — contact us",
        ),
        (
            {"status": Status.LOST, "wanted_state": Wanted.REVOKED},
            "Lost — contact staff for a new key",
        ),
        (
            {"status": Status.REVOKED, "wanted_state": Wanted.REVOKED},
            "Revoked — return it to staff",
        ),
    ],
)
def test_status_wording(member_client, member, fields, label):
    make_key(member, "KEY-0001", **fields)

    assert key_statuses(member_client) == [label]


def test_payment_suspension_links_payments(member_client, member):
    make_key(member, "KEY-0001", status=Status.SUSPENDED, wanted_state=Wanted.SUSPENDED)

    response = member_client.get(DASHBOARD_URL)

    assert 'href="#payments"' in response.text


def test_staff_suspension_hides_reason(member_client, member):
    make_key(
        member,
        "KEY-0001",
        status=Status.SUSPENDED,
        wanted_state=Wanted.SUSPENDED,
        staff_hold=True,
        staff_hold_reason="Suspected of lending the fob",
    )

    assert "lending" not in key_section(member_client)


def test_returned_key_hidden(member_client, member):
    make_key(member, "OLD-5555", status=Status.RETURNED, wanted_state=Wanted.REVOKED)
    make_key(member, "NEW-6666")

    section = key_section(member_client)

    assert "6666" in section
    assert "5555" not in section


def test_no_key_wording(member_client):
    section = key_section(member_client)

    assert "You have no access key" in section


def test_other_members_keys_hidden(member_client, member):
    other = MemberWithUserFactory(first_name="Benito", email="benito@example.com")
    make_key(other, "OTHER-4321")
    make_key(member, "MINE-1111")

    response = member_client.get(DASHBOARD_URL)

    assert "4321" not in response.text
    assert key_statuses(member_client) == ["Active — opens the doors"]


def dashboard_query_count(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(DASHBOARD_URL)
    assert response.status_code == 200
    return len(queries)


def test_dashboard_queries_constant(client):
    few = MemberWithUserFactory()
    MembershipFactory(member=few, state=Membership.State.ACTIVE)
    make_key(few, "FEW-0000")
    many = MemberWithUserFactory()
    MembershipFactory(member=many, state=Membership.State.ACTIVE)
    for index in range(10):
        make_key(many, f"MANY-{index:04d}", status=list(Status)[index % len(Status)])

    client.force_login(few.user)
    client.get(DASHBOARD_URL)
    few_count = dashboard_query_count(client)
    client.force_login(many.user)
    many_count = dashboard_query_count(client)

    assert len(key_statuses(client)) > 1
    assert many_count == few_count


def test_pending_member_key_not_overdue(client):
    member = MemberWithUserFactory(email="new@example.com")
    MembershipFactory(member=member, state=Membership.State.PENDING)
    make_key(member, "KEY-0009", status=Status.SUSPENDED, wanted_state=Wanted.SUSPENDED)
    client.force_login(member.user)

    assert key_statuses(client) == ["Not active yet — opens the doors after your first payment"]
