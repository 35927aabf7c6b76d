"""Sign-in with a one-time code sent by email (allauth's login by code)."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from members import services
from members.models import Member
from tests.accounts.helpers import (
    last_login_code,
    request_login_code,
    sign_in_with_code,
    signed_in_user_id,
)
from tests.factories import (
    MemberWithUserFactory,
    StaffUserFactory,
    current_totp_code,
    enable_totp,
)

pytestmark = pytest.mark.django_db

User = get_user_model()

# allauth's default for "request_login_code" is "20/m/ip,3/m/key", the key being the email.
CODE_REQUESTS_PER_EMAIL = 3


@pytest.fixture
def approved_member(plan, staff_user):
    """A member created the way staff create one: by approving an application."""
    application = services.submit_application(
        first_name="Ana", last_name="Rivera", email="Ana.Rivera@Example.com", plan=plan
    )
    services.approve_application(application=application, actor=staff_user)
    return Member.objects.get(email__iexact="ana.rivera@example.com")


def test_code_request_page_renders(client):
    response = client.get(reverse("account_request_login_code"))

    assert response.status_code == 200
    assert "email" in response.context["form"].fields


def test_code_sign_in_lands_on_dashboard(client, approved_member):
    address = EmailAddress.objects.get(user=approved_member.user)
    assert not address.verified

    response = sign_in_with_code(client, "ana.rivera@example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("members:portal_dashboard")
    assert signed_in_user_id(client) == approved_member.user_id
    address.refresh_from_db()
    assert address.verified
    assert client.get(response["Location"]).status_code == 200


def test_code_sent_to_member_address(client, approved_member):
    request_login_code(client, "ANA.RIVERA@example.com")

    [message] = mail.outbox
    assert message.to == ["ana.rivera@example.com"]
    assert message.subject.startswith("[Code Puerto Rico] ")


def test_code_request_any_case_signs_in(client):
    member = MemberWithUserFactory(email="Luis.Ortiz@Example.com")

    response = sign_in_with_code(client, "LUIS.ORTIZ@EXAMPLE.COM")

    assert response["Location"] == reverse("members:portal_dashboard")
    assert signed_in_user_id(client) == member.user_id
    assert User.objects.count() == 1
    assert EmailAddress.objects.count() == 1


def test_code_wrong_rejected(client, approved_member):
    request_login_code(client, "ana.rivera@example.com")

    response = client.post(reverse("account_confirm_login_code"), {"code": "AAAA-AAAA"})

    assert response.status_code == 200
    assert "code" in response.context["form"].errors
    assert signed_in_user_id(client) is None


def test_code_attempts_exhausted(client, approved_member):
    request_login_code(client, "ana.rivera@example.com")
    code = last_login_code("ana.rivera@example.com")
    responses = [
        client.post(reverse("account_confirm_login_code"), {"code": "AAAA-AAAA"}) for _ in range(3)
    ]

    assert responses[-1].status_code == 302
    assert responses[-1]["Location"] == reverse("account_request_login_code")
    response = client.post(reverse("account_confirm_login_code"), {"code": code})
    assert response["Location"] == reverse("account_request_login_code")
    assert signed_in_user_id(client) is None


def test_code_unknown_email_creates_nothing(client, db):
    response = request_login_code(client, "nobody@example.com")

    # The response is the same as for a member, so it does not reveal who is one.
    assert response.status_code == 302
    assert response["Location"] == reverse("account_confirm_login_code")
    assert User.objects.count() == 0
    assert EmailAddress.objects.count() == 0
    [message] = mail.outbox
    assert message.to == ["nobody@example.com"]

    response = client.post(reverse("account_confirm_login_code"), {"code": "AAAA-AAAA"})

    assert signed_in_user_id(client) is None
    assert User.objects.count() == 0


def test_unknown_account_mail_links_application(client, db):
    request_login_code(client, "nobody@example.com")

    [message] = mail.outbox
    assert "http://testserver/apply/" in message.body
    # Sign-up is closed, so a link to it would lead to a dead end.
    assert "/accounts/signup/" not in message.body


def test_code_request_rate_limited(approved_member):
    for _ in range(CODE_REQUESTS_PER_EMAIL):
        response = request_login_code(Client(), "ana.rivera@example.com")
        assert response.status_code == 302

    response = request_login_code(Client(), "Ana.Rivera@example.com")

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "Too many failed login attempts. Try again later."
    ]
    assert len(mail.outbox) == CODE_REQUESTS_PER_EMAIL


def test_code_rate_limit_per_email(approved_member):
    MemberWithUserFactory(email="luis@example.com")
    for _ in range(CODE_REQUESTS_PER_EMAIL):
        request_login_code(Client(), "ana.rivera@example.com")

    response = request_login_code(Client(), "luis@example.com")

    assert response.status_code == 302
    assert len(mail.outbox) == CODE_REQUESTS_PER_EMAIL + 1


def test_staff_code_needs_second_factor(client):
    staff = StaffUserFactory(email="rosa@example.com")
    enable_totp(staff)

    response = sign_in_with_code(client, "rosa@example.com")

    assert response["Location"] == reverse("mfa_authenticate")
    assert signed_in_user_id(client) is None

    response = client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})

    assert response["Location"] == reverse("admin:index")
    assert signed_in_user_id(client) == staff.pk
