"""An unsupported code posted to the language switch changes nothing and says so."""

import pytest
from django.conf import settings
from django.urls import reverse

from members.models import Member
from tests.factories import MemberWithUserFactory

pytestmark = pytest.mark.django_db


def test_unknown_code_message(client, hot_desk):
    home = reverse("members:home")

    response = client.post(reverse("set_language"), {"language": "xx", "next": home}, follow=True)

    assert response.redirect_chain == [(home, 302)]
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [
        "“xx” is not a language of this portal, so the language did not change. "
        "Choose one of: English, Spanish."
    ]


def test_unknown_code_keeps_stored(client, hot_desk):
    member = MemberWithUserFactory(language="es")
    client.force_login(member.user)

    response = client.post(
        reverse("set_language"),
        {"language": "xx", "next": "/"},
        HTTP_ACCEPT_LANGUAGE="es",
        follow=True,
    )

    assert Member.objects.get(pk=member.pk).language == "es"
    page = response.content.decode()
    assert "«xx» no es un idioma de este portal" in page
