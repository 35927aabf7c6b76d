"""Django's and allauth's messages as our catalogue translates them: usted, our terms."""

import re

import pytest
from django import forms
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from cpr_portal import translation_overrides
from outbox.models import OutboxEmail
from tests.accounts.helpers import request_login_code
from tests.factories import MemberWithUserFactory

from .english import visible_text

# Words of the tú register and of Spain's Spanish that the portal does not use.
NOT_OUR_SPANISH = re.compile(
    r"\b(tu|tus|te|has|puedes|estás|introduce|introdúcelo|envíame|introduzca|introdúzcalo|"
    r"elija|doble factor|enumera)\b",
    re.IGNORECASE,
)


def test_every_override_translated():
    messages = translation_overrides.DJANGO_FORMS + translation_overrides.ALLAUTH
    messages += translation_overrides.DJANGO_ADMIN[:-1]
    with translation.override("es"):
        for message in messages:
            spanish = gettext(message)
            assert spanish != message, message
            assert not NOT_OUR_SPANISH.search(spanish), spanish


def test_django_date_error_spanish():
    with translation.override("es"):
        with pytest.raises(ValidationError) as error:
            forms.DateField().clean("mañana")

        assert error.value.messages == ["Escriba una fecha válida."]


@pytest.mark.django_db
def test_login_code_pages_usted(spanish_client):
    MemberWithUserFactory(email="ana@example.com", language="es")

    request_page = spanish_client.get(reverse("account_request_login_code"))
    request_login_code(spanish_client, "ana@example.com")
    confirm_page = spanish_client.get(reverse("account_confirm_login_code"))

    for response in (request_page, confirm_page):
        text = " ".join(visible_text(response.content.decode()).split())
        assert not NOT_OUR_SPANISH.search(text), text
    assert "escríbalo pronto" in " ".join(visible_text(confirm_page.content.decode()).split())


@pytest.mark.django_db
def test_login_code_email_site_name(client):
    MemberWithUserFactory(email="ana@example.com", language="es")

    request_login_code(client, "ana@example.com")

    assert OutboxEmail.objects.get(recipient="ana@example.com").language == "es"
    (message,) = [message for message in mail.outbox if "ana@example.com" in message.to]
    body = message.body
    assert "¡Hola de parte de Code Puerto Rico!" in body
    assert "Este es su código para iniciar sesión." in body
    assert not NOT_OUR_SPANISH.search(body), body


@pytest.mark.django_db
def test_mfa_page_two_factors(spanish_client, staff_user):
    spanish_client.force_login(staff_user)

    text = " ".join(visible_text(spanish_client.get(reverse("mfa_index")).text).split())

    assert "dos factores" in text
    assert "doble factor" not in text


@pytest.mark.django_db
def test_admin_search_and_select_spanish(spanish_client, staff_user, hot_desk):
    spanish_client.force_login(staff_user)

    admin_text = visible_text(spanish_client.get(reverse("admin:billing_invoice_changelist")).text)
    apply_page = spanish_client.get(reverse("members:apply")).text

    assert "Search " not in admin_text
    assert "Filter by" not in admin_text
    assert "Buscar facturas" in admin_text
    assert "Select an option" not in apply_page
