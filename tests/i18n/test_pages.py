"""Every public, sign-in and portal page in Spanish, with no English sentence of ours."""

import re

import pytest
from django.urls import reverse

from bookings.models import Booking

from .conftest import TUESDAY
from .english import english_left, visible_text

pytestmark = pytest.mark.django_db


def assert_spanish(response, url, data=()):
    assert response.status_code == 200, url
    page = response.content.decode()
    assert re.search(r'<html lang="es"[ >]', page), url
    assert english_left(visible_text(page), data) == [], url


def test_public_pages_spanish(spanish_client, hot_desk):
    urls = [
        reverse("members:home"),
        reverse("members:plan_detail", args=[hot_desk.slug]),
        reverse("members:apply"),
        reverse("members:apply_thanks"),
    ]
    # The plan's name, summary and description are data, shown as staff wrote them.
    plan_data = (hot_desk.name, hot_desk.summary, hot_desk.description)
    for url in urls:
        assert_spanish(spanish_client.get(url), url, plan_data)


def test_apply_errors_spanish(spanish_client, hot_desk):
    response = spanish_client.post(
        reverse("members:apply"), {"email": "not-an-address", "plan": str(hot_desk.pk)}
    )

    assert_spanish(response, "apply with errors", (hot_desk.name, hot_desk.summary))
    errors = response.context["form"].errors
    assert set(errors) >= {"first_name", "email"}
    assert errors["first_name"] == ["Escriba su nombre."]


def test_sign_in_pages_spanish(spanish_client, db):
    urls = [
        reverse("account_login"),
        reverse("account_request_login_code"),
        reverse("account_reset_password"),
    ]
    for url in urls:
        assert_spanish(spanish_client.get(url), url)


def test_portal_pages_spanish(spanish_client, spanish_member, room):
    spanish_client.force_login(spanish_member.user)
    membership = spanish_member.memberships.get()
    booking = Booking.objects.get(member=spanish_member)
    urls = [
        reverse("members:portal_dashboard"),
        reverse("members:portal_profile"),
        reverse("members:portal_membership", args=[membership.pk]),
        reverse("bookings:rooms"),
        reverse("bookings:room_day", args=[room.pk]) + f"?date={TUESDAY}",
        reverse("bookings:room_week", args=[room.pk]),
        reverse("bookings:book", args=[room.pk]) + f"?date={TUESDAY}&time=14:00",
        reverse("bookings:my_bookings"),
        reverse("bookings:cancel", args=[booking.pk]),
        reverse("billing:fake_self_service"),
        reverse("account_email"),
        reverse("mfa_index"),
        reverse("socialaccount_connections"),
    ]
    for url in urls:
        assert_spanish(spanish_client.get(url), url)


def test_portal_money_and_dates_spanish(spanish_client, spanish_member):
    spanish_client.force_login(spanish_member.user)

    text = " ".join(
        visible_text(spanish_client.get(reverse("members:portal_dashboard")).text).split()
    )

    assert "$250.00" in text
    assert "2 de marzo de 2026" in text
    assert "250,00" not in text


def test_booking_preview_spanish(spanish_client, spanish_member, room):
    spanish_client.force_login(spanish_member.user)
    url = reverse("bookings:book", args=[room.pk])

    response = spanish_client.post(
        url, {"date": TUESDAY.isoformat(), "start_time": "14:00", "minutes": "120"}
    )

    assert_spanish(response, "booking preview")
    text = " ".join(visible_text(response.content.decode()).split())
    assert "3 de marzo de 2026" in text or "martes" in text


def test_english_page_detected(client, hot_desk):
    """The check finds English: the same page in English fails it."""
    page = client.get(reverse("members:home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="en">' in page
    assert "Skip to main content" in english_left(visible_text(page))


def test_admin_pages_spanish(spanish_client, staff_user, spanish_member):
    from django.apps import apps
    from django.contrib import admin

    spanish_client.force_login(staff_user)
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        if model._meta.app_label not in {"members", "billing", "access", "bookings", "outbox"}:
            continue
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        first = model.objects.first()
        if first is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
    assert apps.get_model("members", "Member") in admin.site._registry

    for url in urls:
        response = spanish_client.get(url)
        # Data shown as stored: the plan's description and the outbox's English-free rows.
        assert_spanish(response, url, (spanish_member.memberships.get().plan.description,))


def test_apply_date_error_in_words(spanish_client, hot_desk, time_machine):
    time_machine.move_to("2026-12-04 12:00:00-04:00", tick=False)

    response = spanish_client.post(
        reverse("members:apply"),
        {"plan": str(hot_desk.pk), "desired_start_date": "2030-01-01"},
    )

    errors = response.context["form"].errors["desired_start_date"]
    assert errors == [
        "La fecha de inicio 1 de enero de 2030 es dentro de más de un año. "
        "Escoja una fecha no posterior al 4 de diciembre de 2027."
    ]
