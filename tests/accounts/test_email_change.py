"""A member changes their email through allauth's verification, and the Member follows."""

import logging
import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.accounts.helpers import sign_in_with_code
from tests.factories import MemberFactory, MemberWithUserFactory, UserFactory

pytestmark = pytest.mark.django_db

CONFIRMATION_LINK = re.compile(r"http://testserver(/accounts/confirm-email/\S+/)")


@pytest.fixture
def ana(client):
    """A member signed in with an emailed code, so their address is verified."""
    member = MemberWithUserFactory(email="ana@example.com")
    sign_in_with_code(client, "ana@example.com")
    mail.outbox.clear()
    return member


def add_email(client, email: str):
    return client.post(reverse("account_email"), {"action_add": "", "email": email})


def confirmation_link(email: str) -> str:
    [message] = [message for message in mail.outbox if message.to == [email]]
    return CONFIRMATION_LINK.search(message.body).group(1)


def test_email_change_syncs_member(client, ana):
    add_email(client, "Ana.New@Example.com")
    ana.refresh_from_db()
    assert ana.email == "ana@example.com"

    response = client.post(confirmation_link("ana.new@example.com"))

    assert response.status_code == 302
    ana.refresh_from_db()
    ana.user.refresh_from_db()
    assert ana.email == "ana.new@example.com"
    assert ana.user.email == "ana.new@example.com"
    address = EmailAddress.objects.get(user=ana.user)
    assert address.email == "ana.new@example.com"
    assert address.verified
    assert address.primary


def test_email_change_of_other_member_rejected(client, ana):
    other = MemberWithUserFactory(email="carmen@example.com")

    response = add_email(client, "Carmen@Example.com")

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == [
        "carmen@example.com already belongs to another account. Choose a different address."
    ]
    assert list(EmailAddress.objects.filter(user=ana.user).values_list("email", flat=True)) == [
        "ana@example.com"
    ]
    assert EmailAddress.objects.filter(email__iexact="carmen@example.com").count() == 1
    assert mail.outbox == []
    other.refresh_from_db()
    assert other.user.email == "carmen@example.com"


def test_email_change_of_member_without_login_rejected(client, ana):
    MemberFactory(email="luis@example.com")

    response = add_email(client, "luis@example.com")

    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert mail.outbox == []


def test_email_change_of_other_login_rejected(client, ana):
    UserFactory(username="applicant", email="applicant@example.com")

    response = add_email(client, "applicant@example.com")

    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not EmailAddress.objects.filter(user=ana.user, email="applicant@example.com").exists()


def test_email_change_conflict_at_confirmation(client, ana, caplog):
    add_email(client, "shared@example.com")
    link = confirmation_link("shared@example.com")
    # Staff create a member with that address before Ana confirms it.
    MemberFactory(email="shared@example.com")
    caplog.set_level(logging.WARNING, logger="members.auth")

    response = Client().post(link)

    assert response.status_code == 302
    ana.refresh_from_db()
    assert ana.email == "ana@example.com"
    warnings = [record.getMessage() for record in caplog.records if record.name == "members.auth"]
    assert any(f"email of member {ana.pk} is unchanged" in message for message in warnings)
