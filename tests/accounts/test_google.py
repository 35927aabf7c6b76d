"""Google sign-in through allauth's real views, with Google replaced at its HTTP boundary."""

from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from members import services
from members.models import Member, MembershipApplication
from tests.accounts.helpers import (
    AUTHORIZATION_CODE,
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    GoogleIdentity,
    GoogleStub,
    sign_in_with_code,
    signed_in_user_id,
)
from tests.factories import (
    MemberFactory,
    MemberWithUserFactory,
    StaffUserFactory,
    current_totp_code,
    enable_totp,
)

pytestmark = pytest.mark.django_db

User = get_user_model()

NEWCOMER = GoogleIdentity(
    sub="111111111111111111111",
    email="nuria.vega@example.com",
    given_name="Nuria",
    family_name="Vega",
)


def email_rows(email: str) -> int:
    return EmailAddress.objects.filter(email__iexact=email).count()


def user_rows(email: str) -> int:
    return User.objects.filter(email__iexact=email).count()


def application_data(chosen_plan, **overrides) -> dict:
    data = {
        "first_name": "Nuria",
        "last_name": "Vega",
        "phone": "787-555-0101",
        "company": "Vega Labs",
        "plan": chosen_plan.pk,
        "desired_start_date": "",
        "referral_source": "friend",
        "message": "Quiet corner, please.",
    }
    data.update(overrides)
    return data


# --- The sign-in page ---------------------------------------------------------------------


def test_login_page_google_button_posts(google, client):
    page = client.get(reverse("account_login")).content.decode()

    assert f'<form method="post" action="{reverse("google_login")}?process=login">' in page
    assert "Sign in with Google" in page


def test_login_page_without_google_credentials(client, db):
    page = client.get(reverse("account_login")).content.decode()

    assert "Sign in with Google" not in page
    assert reverse("account_request_login_code") in page


# --- The redirect to Google and back ----------------------------------------------------


def test_login_get_shows_confirmation(google, client):
    response = client.get(reverse("google_login"))

    assert response.status_code == 200
    assert "Location" not in response
    assert len(google.mock.calls) == 0


def test_login_post_redirects_to_google(google):
    response = google.client.post(reverse("google_login"))

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    assert location.netloc == "accounts.google.com"
    assert query["client_id"] == [GOOGLE_CLIENT_ID]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["http://testserver/accounts/google/login/callback/"]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email"}
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"][0]


def test_callback_exchanges_code_with_verifier(google):
    google.sign_in(NEWCOMER)

    [token_request] = google.token_requests()
    body = parse_qs(token_request.body)
    assert body["code"] == [AUTHORIZATION_CODE]
    assert body["client_id"] == [GOOGLE_CLIENT_ID]
    assert body["client_secret"] == [GOOGLE_CLIENT_SECRET]
    assert body["grant_type"] == ["authorization_code"]
    assert body["code_verifier"][0]


def test_callback_wrong_state_rejected(google, client):
    google.start()

    response = google.callback(NEWCOMER, state="forged-state")

    assert response.status_code == 401
    assert google.token_requests() == []
    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0


def test_callback_wrong_audience_rejected(google, client):
    member = MemberWithUserFactory(email="ana.rivera@example.com")
    identity = GoogleIdentity(
        sub="222",
        email="ana.rivera@example.com",
        audience="someone-elses-client.apps.googleusercontent.com",
    )

    response = google.sign_in(identity)

    assert response.status_code == 401
    assert signed_in_user_id(client) is None
    assert SocialAccount.objects.count() == 0
    member.refresh_from_db()
    assert member.user is not None


# --- A person who is not a member ---------------------------------------------------------


def test_unknown_person_gets_application(google, client):
    response = google.sign_in(NEWCOMER)

    assert response.status_code == 302
    assert response["Location"] == reverse("socialaccount_signup")
    page = client.get(response["Location"])
    assert page.status_code == 200
    form = page.context["form"]
    assert form["first_name"].value() == "Nuria"
    assert form["last_name"].value() == "Vega"
    assert form["email"].value() == "nuria.vega@example.com"
    assert form.fields["email"].disabled
    assert 'name="email" value="nuria.vega@example.com"' in page.content.decode()
    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0
    assert SocialAccount.objects.count() == 0
    assert MembershipApplication.objects.count() == 0


def test_unknown_person_application_links_login(google, client, plan):
    google.sign_in(NEWCOMER)

    response = client.post(
        reverse("socialaccount_signup"),
        # The email field is disabled: a changed value in the POST is ignored.
        {**application_data(plan), "email": "someone.else@example.com"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("members:apply_thanks")
    user = User.objects.get()
    assert user.email == "nuria.vega@example.com"
    assert not user.has_usable_password()
    account = SocialAccount.objects.get()
    assert account.user == user
    assert account.provider == "google"
    assert account.uid == NEWCOMER.sub
    application = MembershipApplication.objects.get()
    assert application.user == user
    assert application.email == "nuria.vega@example.com"
    assert application.plan == plan
    assert application.company == "Vega Labs"
    assert application.status == MembershipApplication.Status.SUBMITTED
    assert Member.objects.count() == 0
    assert EmailAddress.objects.get().verified


def test_unknown_person_application_errors_kept(google, client, plan):
    google.sign_in(NEWCOMER)

    response = client.post(
        reverse("socialaccount_signup"), application_data(plan, first_name="", plan="")
    )

    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"first_name", "plan"}
    assert form["company"].value() == "Vega Labs"
    assert User.objects.count() == 0
    assert MembershipApplication.objects.count() == 0


def test_approved_applicant_keeps_one_login(google, client, plan, staff_user):
    google.sign_in(NEWCOMER)
    client.post(reverse("socialaccount_signup"), application_data(plan))
    client.post(reverse("account_logout"))
    application = MembershipApplication.objects.get()

    services.approve_application(application=application, actor=staff_user)

    applicant = User.objects.get(email="nuria.vega@example.com")
    member = Member.objects.get(email__iexact="nuria.vega@example.com")
    assert member.user == applicant
    assert user_rows("nuria.vega@example.com") == 1
    assert email_rows("nuria.vega@example.com") == 1

    response = google.sign_in(NEWCOMER)

    assert response.status_code == 302
    assert response["Location"] == reverse("members:portal_dashboard")
    assert signed_in_user_id(client) == applicant.pk
    assert SocialAccount.objects.get().user == applicant


def test_applicant_with_open_application_not_duplicated(google, client, plan):
    services.submit_application(
        first_name="Nuria",
        last_name="Vega",
        email="Nuria.Vega@example.com",
        plan=plan,
    )
    google.sign_in(NEWCOMER)

    response = client.post(reverse("socialaccount_signup"), application_data(plan))

    assert response.status_code == 200
    assert "already waiting for review" in response.content.decode()
    assert MembershipApplication.objects.count() == 1
    assert User.objects.count() == 0


# --- Members -------------------------------------------------------------------------------


@pytest.mark.parametrize("has_login", [False, True], ids=["no-login", "login"])
def test_verified_email_links_member(google, client, has_login):
    factory = MemberWithUserFactory if has_login else MemberFactory
    member = factory(email="Ana.Rivera@Example.com")
    identity = GoogleIdentity(sub="333", email="ana.rivera@example.com")

    response = google.sign_in(identity)

    assert response.status_code == 302
    assert response["Location"] == reverse("members:portal_dashboard")
    member.refresh_from_db()
    assert member.user is not None
    assert signed_in_user_id(client) == member.user_id
    account = SocialAccount.objects.get()
    assert account.user_id == member.user_id
    assert account.uid == "333"
    assert User.objects.count() == 1
    assert user_rows("ana.rivera@example.com") == 1
    assert email_rows("ana.rivera@example.com") == 1
    assert client.get(response["Location"]).status_code == 200


def test_linked_member_signs_in_again(google, client):
    member = MemberFactory(email="Ana.Rivera@Example.com")
    identity = GoogleIdentity(sub="333", email="ana.rivera@example.com")
    google.sign_in(identity)
    client.post(reverse("account_logout"))

    response = google.sign_in(identity)

    assert response["Location"] == reverse("members:portal_dashboard")
    member.refresh_from_db()
    assert signed_in_user_id(client) == member.user_id
    assert SocialAccount.objects.count() == 1
    assert User.objects.count() == 1


@pytest.mark.parametrize("has_login", [False, True], ids=["no-login", "login"])
def test_unverified_email_refused(google, client, has_login):
    factory = MemberWithUserFactory if has_login else MemberFactory
    member = factory(email="Ana.Rivera@Example.com")
    user_before = member.user_id
    users_before = User.objects.count()
    emails_before = EmailAddress.objects.count()
    identity = GoogleIdentity(sub="444", email="ana.rivera@example.com", email_verified=False)

    response = google.sign_in(identity)

    assert response.status_code == 403
    assert "account/unverified_email.html" in [t.name for t in response.templates]
    assert signed_in_user_id(client) is None
    assert User.objects.count() == users_before
    assert EmailAddress.objects.count() == emails_before
    assert SocialAccount.objects.count() == 0
    member.refresh_from_db()
    assert member.user_id == user_before
    assert client.get(reverse("socialaccount_signup"))["Location"] == reverse("account_login")


def test_unverified_unknown_email_refused(google, client):
    identity = GoogleIdentity(sub="555", email="stranger@example.com", email_verified=False)

    response = google.sign_in(identity)

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0
    assert client.get(reverse("socialaccount_signup"))["Location"] == reverse("account_login")


def test_unverified_attempt_leaves_owner_free(google, client):
    member = MemberFactory(email="Ana.Rivera@Example.com")
    impostor = GoogleIdentity(sub="444", email="ana.rivera@example.com", email_verified=False)
    google.sign_in(impostor)
    owner_client = Client()
    owner_google = GoogleStub(owner_client, google.mock)
    owner = GoogleIdentity(sub="666", email="ana.rivera@example.com")

    response = owner_google.sign_in(owner)

    assert response["Location"] == reverse("members:portal_dashboard")
    member.refresh_from_db()
    assert signed_in_user_id(owner_client) == member.user_id
    assert signed_in_user_id(client) is None
    assert SocialAccount.objects.get().uid == "666"

    # The impostor's account is still refused after the owner linked theirs.
    assert google.sign_in(impostor).status_code == 403
    assert signed_in_user_id(client) is None
    assert SocialAccount.objects.count() == 1


def test_code_then_google_one_account(google, client, plan, staff_user):
    application = services.submit_application(
        first_name="Ana", last_name="Rivera", email="Ana.Rivera@Example.com", plan=plan
    )
    services.approve_application(application=application, actor=staff_user)
    member = Member.objects.get(email__iexact="ana.rivera@example.com")
    response = sign_in_with_code(client, "ana.rivera@example.com")
    assert response["Location"] == reverse("members:portal_dashboard")
    assert signed_in_user_id(client) == member.user_id
    client.post(reverse("account_logout"))

    response = google.sign_in(GoogleIdentity(sub="777", email="ana.rivera@example.com"))

    assert response["Location"] == reverse("members:portal_dashboard")
    assert signed_in_user_id(client) == member.user_id
    assert SocialAccount.objects.get().user_id == member.user_id
    assert User.objects.count() == 2  # the member's login and staff_user
    assert user_rows("ana.rivera@example.com") == 1
    assert email_rows("ana.rivera@example.com") == 1


def test_google_then_code_one_account(google, client):
    member = MemberFactory(email="Ana.Rivera@Example.com")
    google.sign_in(GoogleIdentity(sub="888", email="ana.rivera@example.com"))
    client.post(reverse("account_logout"))

    response = sign_in_with_code(client, "ANA.RIVERA@example.com")

    assert response["Location"] == reverse("members:portal_dashboard")
    member.refresh_from_db()
    assert signed_in_user_id(client) == member.user_id
    assert User.objects.count() == 1
    assert email_rows("ana.rivera@example.com") == 1


# --- Staff ---------------------------------------------------------------------------------


def test_staff_google_by_email_refused(google, client):
    staff = StaffUserFactory(email="rosa@example.com")
    enable_totp(staff)

    response = google.sign_in(GoogleIdentity(sub="999", email="Rosa@Example.com"))

    staff.refresh_from_db()
    assert response.status_code == 403
    assert "staff login" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert not SocialAccount.objects.exists()
    assert staff.has_usable_password()


def test_staff_member_google_by_email_refused(google, client):
    staff = StaffUserFactory(email="staff.login@example.com")
    MemberFactory(email="rosa@example.com", user=staff)

    response = google.sign_in(GoogleIdentity(sub="999", email="rosa@example.com"))

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert not SocialAccount.objects.exists()


def test_staff_connected_google_gets_mfa_challenge(google, client):
    staff = StaffUserFactory(email="rosa@example.com")
    enable_totp(staff)
    # Connected earlier by the staff member while signed in.
    SocialAccount.objects.create(user=staff, provider="google", uid="999")

    response = google.sign_in(GoogleIdentity(sub="999", email="rosa@example.com"))

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert signed_in_user_id(client) is None
    assert client.get(reverse("admin:index")).status_code == 302

    response = client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})

    assert response["Location"] == reverse("admin:index")
    assert signed_in_user_id(client) == staff.pk
    assert client.get(reverse("admin:index")).status_code == 200
