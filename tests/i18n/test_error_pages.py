"""Error pages (400, 403, 404, 500, CSRF failure) in the visitor's language."""

import re

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import translation
from django.views import defaults

from .english import english_left, visible_text

pytestmark = pytest.mark.django_db


def assert_spanish_page(page: str, heading: str):
    assert re.search(r'<html lang="es"[ >]', page)
    assert f"<h1>{heading}</h1>" in page
    assert english_left(visible_text(page)) == []


def test_not_found_spanish(client):
    response = client.get("/no-existe/", HTTP_ACCEPT_LANGUAGE="es")

    assert response.status_code == 404
    assert_spanish_page(response.content.decode(), "Página no encontrada")


def test_not_found_english(client):
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.content.decode()


def test_permission_denied_spanish(rf_spanish):
    response = defaults.permission_denied(rf_spanish, PermissionDenied())

    assert response.status_code == 403
    assert_spanish_page(response.content.decode(), "Acceso denegado")


def test_bad_request_spanish(rf_spanish, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = defaults.bad_request(rf_spanish, SuspiciousOperation())

    assert response.status_code == 400
    assert_spanish_page(response.content.decode(), "Solicitud no válida")


def test_server_error_no_queries(rf_spanish, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = defaults.server_error(rf_spanish)

    assert response.status_code == 500
    assert_spanish_page(response.content.decode(), "Error del servidor")


def test_csrf_failure_spanish(db):
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="es")

    response = client.post(reverse("set_language"), {"language": "en", "next": "/"})

    assert response.status_code == 403
    assert_spanish_page(response.content.decode(), "Formulario vencido")


@pytest.fixture
def rf_spanish():
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/algo/")
    request.user = AnonymousUser()
    with translation.override("es"):
        yield request
