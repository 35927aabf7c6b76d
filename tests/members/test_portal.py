"""Member portal: access boundaries, dashboard wording, profile edits, language switch."""

import datetime
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from members import services
from members.models import Member, Membership, MembershipEvent
from tests.factories import (
    ApplicationFactory,
    MembershipFactory,
    MemberWithUserFactory,
    PlanFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

State = Membership.State

DASHBOARD_URL = reverse("members:portal_dashboard")
PROFILE_URL = reverse("members:portal_profile")
START = datetime.date(2030, 1, 31)


def membership_url(membership: Membership) -> str:
    return reverse("members:portal_membership", args=[membership.pk])


def page_text(response) -> str:
    return response.content.decode()


def state_label(response) -> str:
    match = re.search(r'class="state-label">([^<]*)<', page_text(response))
    assert match is not None, "the page shows no membership state"
    return match.group(1)


@pytest.fixture
def member():
    return MemberWithUserFactory(
        first_name="Ana", last_name="Rivera", email="ana@example.com", company="Ana Labs"
    )


@pytest.fixture
def other_member():
    """A second member whose data must never appear on the first member's pages."""
    return MemberWithUserFactory(
        first_name="Benito", last_name="Ortiz", email="benito@example.com", company="Ortiz Corp"
    )


@pytest.fixture
def other_membership(other_member):
    plan = PlanFactory(name="Private Office")
    return MembershipFactory(member=other_member, plan=plan, state=State.ACTIVE)


@pytest.fixture
def member_client(client, member):
    client.force_login(member.user)
    return client


def portal_urls(membership: Membership) -> list[str]:
    return [DASHBOARD_URL, PROFILE_URL, membership_url(membership)]


# --- Who may see the portal -------------------------------------------------------------


def test_anonymous_redirected_to_sign_in(client, other_membership):
    login_url = reverse("account_login")
    for url in portal_urls(other_membership):
        response = client.get(url)

        location = urlsplit(response["Location"])
        assert response.status_code == 302, url
        assert location.path == login_url, url
        assert parse_qs(location.query) == {"next": [url]}, url


def test_anonymous_profile_post_changes_nothing(client, other_member):
    response = client.post(PROFILE_URL, {"phone": "787-555-0100", "company": "Hijacked"})

    assert response.status_code == 302
    other_member.refresh_from_db()
    assert other_member.company == "Ortiz Corp"


def test_non_member_gets_apply_pointer(client, other_membership):
    client.force_login(UserFactory(email="visitor@example.com"))

    for url in portal_urls(other_membership):
        response = client.get(url)
        text = page_text(response)

        assert response.status_code == 403, url
        assert f'href="{reverse("members:apply")}"' in text, url
        assert "visitor@example.com" in text, url
        assert "Benito" not in text, url
        assert "Ortiz Corp" not in text, url
        assert "Private Office" not in text, url


def test_non_member_profile_post_changes_nothing(client, other_member):
    client.force_login(UserFactory())

    response = client.post(PROFILE_URL, {"phone": "787-555-0100", "company": "Hijacked"})

    assert response.status_code == 403
    other_member.refresh_from_db()
    assert other_member.company == "Ortiz Corp"


def test_non_member_sees_own_open_application(client):
    user = UserFactory()
    ApplicationFactory(user=user, email=user.email, plan=PlanFactory(name="Night Owl"))
    client.force_login(user)

    response = client.get(DASHBOARD_URL)

    # The applicant's status page, so not an error.
    assert response.status_code == 200
    assert "Your application for Night Owl" in page_text(response)


def test_non_member_ignores_others_application(client):
    ApplicationFactory(user=UserFactory(), plan=PlanFactory(name="Night Owl"))
    client.force_login(UserFactory())

    response = client.get(DASHBOARD_URL)

    assert "Night Owl" not in page_text(response)


def test_staff_without_member_gets_apply_pointer(staff_client, other_membership):
    response = staff_client.get(DASHBOARD_URL)

    assert response.status_code == 403
    assert "This page is for members" in page_text(response)
    assert "Benito" not in page_text(response)


def test_membership_of_other_member_404(member_client, member, other_membership):
    own = MembershipFactory(member=member)

    assert member_client.get(membership_url(own)).status_code == 200
    response = member_client.get(membership_url(other_membership))
    assert response.status_code == 404
    assert "Private Office" not in page_text(response)


def test_membership_missing_pk_404(member_client):
    response = member_client.get(reverse("members:portal_membership", args=[999999]))

    assert response.status_code == 404


def test_member_refused_by_admin(member_client, member, other_member):
    admin_urls = [
        reverse("admin:index"),
        reverse("admin:members_member_changelist"),
        reverse("admin:members_member_change", args=[other_member.pk]),
        reverse("admin:members_member_change", args=[member.pk]),
    ]
    for url in admin_urls:
        response = member_client.get(url, follow=True)

        assert response.status_code == 403, url
        # The header names the signed-in member (Rivera) on every page; the page itself
        # shows no member's data.
        main = page_text(response).split('<main id="main"', 1)[1]
        assert "Ortiz" not in main, url
        assert "Rivera" not in main, url


def test_member_admin_redirect_goes_to_login(member_client, other_member):
    url = reverse("admin:members_member_change", args=[other_member.pk])

    response = member_client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- Dashboard -----------------------------------------------------------------------------


def test_dashboard_shows_plan_and_dates(member_client, member):
    MembershipFactory(
        member=member, plan=PlanFactory(name="Hot Desk Plus"), start_date=START, state=State.ACTIVE
    )

    response = member_client.get(DASHBOARD_URL)
    text = page_text(response)

    assert response.status_code == 200
    assert "Welcome, Ana" in text
    assert "Hot Desk Plus" in text
    assert "Jan. 31, 2030" in text
    assert "Jan. 31, 2031" in text
    assert "$250.00 per month" in text


def test_dashboard_hides_other_members(member_client, member, other_membership):
    MembershipFactory(member=member)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "Benito" not in text
    assert "Private Office" not in text
    assert membership_url(other_membership) not in text


@pytest.mark.parametrize(
    ("state", "label"),
    [
        (State.PENDING, "Pending first payment"),
        (State.ACTIVE, "Active"),
        (State.PAST_DUE, "Payment overdue"),
        (State.SUSPENDED, "Suspended — contact staff"),
    ],
)
def test_dashboard_state_label(member_client, member, state, label):
    MembershipFactory(member=member, start_date=START, state=state)

    response = member_client.get(DASHBOARD_URL)

    assert state_label(response) == label


def test_dashboard_pending_next_steps(member_client, member):
    MembershipFactory(member=member, start_date=START, state=State.PENDING)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "Your application was approved." in text
    assert "starts on Jan. 31, 2030 once the first payment is made" in text


def test_dashboard_pending_started_no_past_date(member_client, member):
    started = datetime.date(2020, 3, 1)
    MembershipFactory(member=member, start_date=started, state=State.PENDING)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "starts once the first payment is made" in text
    assert "starts on Mar. 1, 2020" not in text


def test_dashboard_scheduled_cancellation(member_client, member):
    membership = MembershipFactory(member=member, start_date=START, state=State.ACTIVE)
    services.cancel_membership(membership=membership, actor=None, reason="Moving abroad")

    response = member_client.get(DASHBOARD_URL)

    assert state_label(response) == "Active"
    assert "Cancels on Jan. 31, 2031" in page_text(response)


def test_dashboard_no_cancel_line_without_schedule(member_client, member):
    MembershipFactory(member=member, start_date=START, state=State.ACTIVE)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "Cancels on" not in text


def test_dashboard_past_memberships(member_client, member):
    old = MembershipFactory(
        member=member,
        plan=PlanFactory(name="Old Desk"),
        start_date=datetime.date(2020, 1, 15),
        end_date=datetime.date(2021, 1, 15),
        state=State.ENDED,
    )

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "You have no current membership." in text
    assert "Past memberships" in text
    assert "Old Desk" in text
    assert "Jan. 15, 2021" in text
    assert membership_url(old) in text


def test_dashboard_has_billing_and_key_sections(member_client, member):
    MembershipFactory(member=member, state=State.ACTIVE)

    text = page_text(member_client.get(DASHBOARD_URL))

    # Their content is tested in tests/billing and tests/access.
    for section_id in ("payments", "credit", "access-key"):
        assert re.search(rf'<section[^>]*id="{section_id}"', text), section_id


def test_dashboard_dates_localized(member_client, member):
    MembershipFactory(member=member, start_date=START, state=State.ACTIVE)
    member_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "31 de enero de 2030" in text


def dashboard_query_count(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(DASHBOARD_URL)
    assert response.status_code == 200
    return len(queries)


def add_past_memberships(member: Member, count: int) -> None:
    for index in range(count):
        start = datetime.date(2000 + index, 1, 1)
        MembershipFactory(
            member=member,
            start_date=start,
            end_date=start + datetime.timedelta(days=30),
            state=State.CANCELLED if index % 2 else State.ENDED,
        )


def test_dashboard_queries_constant(client):
    small = MemberWithUserFactory()
    MembershipFactory(member=small, state=State.ACTIVE)
    add_past_memberships(small, 1)
    large = MemberWithUserFactory()
    MembershipFactory(member=large, state=State.ACTIVE)
    add_past_memberships(large, 15)

    client.force_login(small.user)
    small_count = dashboard_query_count(client)
    client.force_login(large.user)
    large_count = dashboard_query_count(client)

    assert large_count == small_count


def test_membership_detail_queries_constant(member_client, member):
    membership = MembershipFactory(member=member, state=State.ACTIVE)
    MembershipEvent.objects.create(membership=membership, from_state="", to_state=State.PENDING)
    url = membership_url(membership)
    with CaptureQueriesContext(connection) as few:
        member_client.get(url)

    for _index in range(15):
        MembershipEvent.objects.create(
            membership=membership, from_state=State.ACTIVE, to_state=State.PAST_DUE
        )
    with CaptureQueriesContext(connection) as many:
        member_client.get(url)

    assert len(many) == len(few)


# --- Membership detail ----------------------------------------------------------------------


def test_membership_detail_history(member_client, member, hot_desk):
    user = UserFactory()
    application = ApplicationFactory(email=member.email, plan=hot_desk)
    membership = services.approve_application(application=application, actor=user)
    membership = services.activate_membership(membership=membership, cause="payment")
    services.cancel_membership(membership=membership, reason="Moving")

    text = page_text(member_client.get(membership_url(membership)))

    assert "Membership created: Pending first payment" in text
    assert "Changed from Pending first payment to Active" in text
    assert "Cancellation scheduled" in text


def test_membership_detail_hides_staff_reason(member_client, member):
    membership = MembershipFactory(member=member, state=State.ACTIVE)
    services.mark_membership_past_due(
        membership=membership, actor=UserFactory(username="rosa"), reason="Card declined twice"
    )

    text = page_text(member_client.get(membership_url(membership)))

    assert "Card declined twice" not in text
    assert "rosa" not in text


# --- Profile --------------------------------------------------------------------------------


def test_profile_prefilled(member_client):
    text = page_text(member_client.get(PROFILE_URL))

    assert 'value="Ana Labs"' in text
    assert "ana@example.com" in text


def test_profile_links_account_pages(member_client):
    text = page_text(member_client.get(PROFILE_URL))

    for name in ("account_email", "mfa_index", "socialaccount_connections"):
        assert f'href="{reverse(name)}"' in text, name
    assert f'action="{reverse("account_logout")}"' in text


def test_profile_saves(member_client, member):
    response = member_client.post(
        PROFILE_URL,
        {
            "phone": " 787-555-0123 ",
            "company": "Cooperativa Ñandú",
            "bio": "Backend developer.",
            "directory_opt_in": "on",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == PROFILE_URL
    member.refresh_from_db()
    assert member.phone == "787-555-0123"
    assert member.company == "Cooperativa Ñandú"
    assert member.bio == "Backend developer."
    assert member.directory_opt_in is True


def test_profile_forged_fields_ignored(member_client, member, other_member):
    member_client.post(
        PROFILE_URL,
        {
            "phone": "787-555-0123",
            "company": "Ana Labs",
            "member": other_member.pk,
            "user": other_member.user_id,
            "email": "attacker@example.com",
            "first_name": "Mallory",
            "staff_notes": "VIP",
        },
    )

    member.refresh_from_db()
    other_member.refresh_from_db()
    assert member.phone == "787-555-0123"
    assert member.email == "ana@example.com"
    assert member.user.email == "ana@example.com"
    assert member.first_name == "Ana"
    assert member.staff_notes == ""
    assert other_member.phone == ""
    assert other_member.company == "Ortiz Corp"


def test_profile_bad_phone_saves_nothing(member_client, member):
    response = member_client.post(PROFILE_URL, {"phone": "call me", "company": "New Co"})

    assert response.status_code == 200
    assert "phone" in response.context["form"].errors
    assert 'value="New Co"' in page_text(response)
    member.refresh_from_db()
    assert member.phone == ""
    assert member.company == "Ana Labs"


def test_profile_long_company_rejected(member_client, member):
    response = member_client.post(PROFILE_URL, {"company": "x" * 201})

    assert (
        "Use at most 200 characters (you entered 201)."
        in response.context["form"].errors["company"]
    )
    member.refresh_from_db()
    assert member.company == "Ana Labs"


def test_sign_out_ends_portal_access(member_client, member):
    MembershipFactory(member=member)

    response = member_client.post(reverse("account_logout"))

    assert response.status_code == 302
    assert member_client.get(DASHBOARD_URL).status_code == 302


def test_profile_rejects_put(member_client):
    response = member_client.put(PROFILE_URL)

    assert response.status_code == 405


def test_portal_pages_not_cached(member_client, member):
    MembershipFactory(member=member)

    response = member_client.get(DASHBOARD_URL)

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


# --- update_member_profile ------------------------------------------------------------------


def test_update_profile_saves_changed_fields(member):
    updated = services.update_member_profile(
        member=member,
        actor=member.user,
        phone="787-555-0199",
        company=" Ana Labs ",
        bio="",
        directory_opt_in=True,
    )

    assert updated.phone == "787-555-0199"
    assert updated.directory_opt_in is True
    member.refresh_from_db()
    assert member.phone == "787-555-0199"
    assert member.company == "Ana Labs"


def test_update_profile_too_long_changes_nothing(member):
    with pytest.raises(services.MembersError, match="at most 40"):
        services.update_member_profile(
            member=member,
            actor=member.user,
            phone="7" * 41,
            company="Changed",
            bio="",
            directory_opt_in=False,
        )

    member.refresh_from_db()
    assert member.company == "Ana Labs"


# --- Layout: navigation and language ---------------------------------------------------------


def test_nav_anonymous_shows_sign_in(client):
    text = page_text(client.get(reverse("members:home")))

    assert f'href="{reverse("account_login")}"' in text
    assert "Signed in as" not in text


def test_nav_member_shows_name_and_sign_out(member_client):
    text = page_text(member_client.get(reverse("members:home")))

    assert "Signed in as <strong>Ana Rivera</strong>" in text
    assert f'action="{reverse("account_logout")}"' in text
    assert f'href="{DASHBOARD_URL}"' in text
    assert f'href="{reverse("admin:index")}"' not in text


def test_nav_staff_shows_back_office(staff_client):
    text = page_text(staff_client.get(reverse("members:home")))

    assert f'href="{reverse("admin:index")}"' in text


def test_language_switch_lists_languages(client):
    text = page_text(client.get(reverse("members:home")))

    assert f'action="{reverse("set_language")}"' in text
    assert '<label for="language-select">Language</label>' in text
    assert '<option value="en" lang="en" selected>English</option>' in text
    assert '<option value="es" lang="es">Español</option>' in text


def test_language_switch_sets_cookie_and_lang(client):
    response = client.post(reverse("set_language"), {"language": "es", "next": PROFILE_URL})

    assert response.status_code == 302
    assert response["Location"] == PROFILE_URL
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    page = page_text(client.get(reverse("members:home")))
    assert '<html lang="es">' in page
    assert '<option value="es" lang="es" selected>' in page


def test_language_switch_back_to_english(client):
    client.post(reverse("set_language"), {"language": "es", "next": "/"})
    client.post(reverse("set_language"), {"language": "en", "next": "/"})

    assert '<html lang="en">' in page_text(client.get(reverse("members:home")))
