"""Staff sign-in: password, the TOTP second factor, enrolment, and the back office gate."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.urls import reverse
from django.utils.http import urlencode

from tests.accounts.helpers import signed_in_user_id
from tests.factories import (
    MemberWithUserFactory,
    StaffUserFactory,
    UserFactory,
    current_totp_code,
    enable_totp,
)

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # set by UserFactory
# allauth's "login_failed" default: 5 failures per 5 minutes per account.
FAILED_LOGINS_ALLOWED = 5


def sign_in_with_password(client, email: str, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def admin_urls(member) -> list[str]:
    return [
        reverse("admin:index"),
        reverse("admin:members_member_changelist"),
        reverse("admin:members_member_change", args=[member.pk]),
        reverse("admin:members_membershipapplication_changelist"),
    ]


@pytest.fixture
def rosa(db):
    """A staff user (staff and superuser) who has not set up a second factor."""
    return StaffUserFactory(email="rosa@example.com")


@pytest.fixture
def other_member(db):
    return MemberWithUserFactory(first_name="Carmen", last_name="Quiñones", phone="787-555-0199")


# --- Staff without a second factor -----------------------------------------------------------


def test_staff_without_totp_sent_to_enrol(client, rosa, other_member):
    response = sign_in_with_password(client, "rosa@example.com")
    assert response["Location"] == reverse("admin:index")
    assert signed_in_user_id(client) == rosa.pk

    for url in admin_urls(other_member):
        response = client.get(url)
        assert response.status_code == 302, url
        expected = f"{reverse('mfa_activate_totp')}?{urlencode({'next': url})}"
        assert response["Location"] == expected, url


def test_staff_without_totp_cannot_post_to_admin(client, rosa, other_member):
    client.force_login(rosa)
    url = reverse("admin:members_member_change", args=[other_member.pk])

    response = client.post(url, {"first_name": "Changed", "email": other_member.email})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_activate_totp"))
    other_member.refresh_from_db()
    assert other_member.first_name == "Carmen"


def test_superuser_flag_alone_must_enrol(client):
    superuser = UserFactory(email="root@example.com", is_superuser=True, is_staff=False)
    sign_in_with_password(client, "root@example.com")
    assert signed_in_user_id(client) == superuser.pk

    response = client.get(reverse("admin:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_activate_totp"))


def test_enrolment_requires_reauthentication(client, rosa):
    sign_in_with_password(client, "rosa@example.com")
    activate_url = client.get(reverse("admin:index"))["Location"]

    response = client.get(activate_url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not Authenticator.objects.filter(user=rosa).exists()


def test_enrolment_then_admin_reachable(client, rosa):
    sign_in_with_password(client, "rosa@example.com")
    activate_url = client.get(reverse("admin:index"))["Location"]
    reauthenticate_url = client.get(activate_url)["Location"]

    response = client.post(reauthenticate_url, {"password": PASSWORD})
    assert response["Location"] == activate_url
    page = client.get(activate_url)
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    assert secret in page.content.decode()

    response = client.post(activate_url, {"code": current_totp_code(secret)})

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_view_recovery_codes")
    types = set(Authenticator.objects.filter(user=rosa).values_list("type", flat=True))
    assert types == {Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES}
    assert SECRET_SESSION_KEY not in client.session

    codes_page = client.get(reverse("mfa_view_recovery_codes"))
    assert codes_page.status_code == 200
    assert len(codes_page.context["unused_codes"]) == 10
    assert client.get(reverse("admin:index")).status_code == 200


def test_enrolment_wrong_code_rejected(client, rosa):
    sign_in_with_password(client, "rosa@example.com")
    activate_url = client.get(reverse("admin:index"))["Location"]
    reauthenticate_url = client.get(activate_url)["Location"]
    client.post(reauthenticate_url, {"password": PASSWORD})
    client.get(activate_url)

    response = client.post(activate_url, {"code": "000000"})

    assert response.status_code == 200
    assert "code" in response.context["form"].errors
    assert not Authenticator.objects.filter(user=rosa).exists()
    assert client.get(reverse("admin:index")).status_code == 302


def test_enrolment_wrong_password_rejected(client, rosa):
    sign_in_with_password(client, "rosa@example.com")
    activate_url = client.get(reverse("admin:index"))["Location"]
    reauthenticate_url = client.get(activate_url)["Location"]

    response = client.post(reauthenticate_url, {"password": "not the password"})

    assert response.status_code == 200
    assert "password" in response.context["form"].errors
    assert client.get(activate_url)["Location"].startswith(reverse("account_reauthenticate"))


# --- Staff with a second factor ---------------------------------------------------------------


def test_staff_with_totp_challenged(client, rosa):
    enable_totp(rosa)

    response = sign_in_with_password(client, "rosa@example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert signed_in_user_id(client) is None
    admin_response = client.get(reverse("admin:index"))
    assert admin_response.status_code == 302
    assert admin_response["Location"].startswith(reverse("admin:login"))


def test_staff_wrong_totp_rejected(client, rosa):
    enable_totp(rosa)
    sign_in_with_password(client, "rosa@example.com")

    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})

    assert response.status_code == 200
    assert response.context["form"].errors["code"] == ["Incorrect code."]
    assert signed_in_user_id(client) is None


def test_staff_right_totp_reaches_admin(client, rosa, other_member):
    enable_totp(rosa)
    sign_in_with_password(client, "rosa@example.com")
    client.post(reverse("mfa_authenticate"), {"code": "000000"})

    response = client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert signed_in_user_id(client) == rosa.pk
    for url in admin_urls(other_member):
        assert client.get(url).status_code == 200, url


def test_staff_recovery_code_signs_in(client, rosa):
    enable_totp(rosa)
    recovery_code = RecoveryCodes.activate(rosa).get_unused_codes()[0]
    sign_in_with_password(client, "rosa@example.com")

    response = client.post(reverse("mfa_authenticate"), {"code": recovery_code})

    assert response["Location"] == reverse("admin:index")
    assert signed_in_user_id(client) == rosa.pk
    assert (
        recovery_code
        not in RecoveryCodes(
            Authenticator.objects.get(user=rosa, type=Authenticator.Type.RECOVERY_CODES)
        ).get_unused_codes()
    )


def test_staff_password_login_rate_limited(client, rosa):
    for _ in range(FAILED_LOGINS_ALLOWED):
        response = sign_in_with_password(client, "rosa@example.com", "wrong password")
        assert response.status_code == 200

    response = sign_in_with_password(client, "rosa@example.com")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Too many failed login attempts. Try again later."
    ]
    assert signed_in_user_id(client) is None


# --- The back office gate ----------------------------------------------------------------------


def test_admin_login_redirects_to_allauth(client, db):
    next_url = reverse("admin:members_member_changelist")

    response = client.get(f"{reverse('admin:login')}?{urlencode({'next': next_url})}")

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?{urlencode({'next': next_url})}"


def test_admin_index_anonymous_reaches_allauth(client, db):
    response = client.get(reverse("admin:index"), follow=True)

    assert response.redirect_chain[-1][0].startswith(reverse("account_login"))
    assert "account/login.html" in [t.name for t in response.templates]


def test_admin_login_post_does_not_sign_in(client, rosa):
    enable_totp(rosa)

    response = client.post(
        reverse("admin:login"), {"username": rosa.username, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert signed_in_user_id(client) is None


def test_member_refused_admin(client, other_member):
    member = MemberWithUserFactory()
    client.force_login(member.user)

    for url in admin_urls(other_member):
        response = client.get(url, follow=True)
        assert response.status_code == 403, url
        body = response.content.decode()
        assert other_member.email not in body, url
        assert "Quiñones" not in body, url


def test_member_admin_post_changes_nothing(client, other_member):
    member = MemberWithUserFactory()
    client.force_login(member.user)
    url = reverse("admin:members_member_change", args=[other_member.pk])

    response = client.post(url, {"first_name": "Changed", "email": other_member.email})

    assert response.status_code in (302, 403)
    other_member.refresh_from_db()
    assert other_member.first_name == "Carmen"
