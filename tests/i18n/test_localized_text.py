"""Plan and room texts that staff write in both languages: seed, pages, fallback, admin."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse
from django.utils import translation

from members.models import Plan
from tests.factories import PlanFactory

pytestmark = pytest.mark.django_db

SPANISH_SEED = importlib.import_module("members.migrations.0012_seed_hot_desk_spanish")
ENGLISH_SEED = importlib.import_module("members.migrations.0002_seed_hot_desk_plan").HOT_DESK


def run_seed(function):
    function(apps, SimpleNamespace(connection=connection))


def test_hot_desk_seeded_in_spanish(hot_desk):
    hot_desk.refresh_from_db()

    assert hot_desk.summary_es == SPANISH_SEED.HOT_DESK_ES["summary_es"]
    assert hot_desk.description_es == SPANISH_SEED.HOT_DESK_ES["description_es"]


def test_seed_keeps_staff_text(hot_desk):
    Plan.objects.filter(pk=hot_desk.pk).update(summary_es="", description_es="Texto del personal")

    run_seed(SPANISH_SEED.seed_spanish)
    hot_desk.refresh_from_db()

    assert hot_desk.summary_es == SPANISH_SEED.HOT_DESK_ES["summary_es"]
    assert hot_desk.description_es == "Texto del personal"

    run_seed(SPANISH_SEED.remove_spanish)
    hot_desk.refresh_from_db()

    assert hot_desk.summary_es == ""
    assert hot_desk.description_es == "Texto del personal"


def test_plan_page_spanish_text(spanish_client, client, hot_desk):
    url = reverse("members:plan_detail", args=[hot_desk.slug])

    spanish = spanish_client.get(url).content.decode()

    assert "Trabaje desde cualquier escritorio disponible del espacio." in spanish
    assert "Cualquier escritorio disponible, cualquier día de semana" in spanish
    assert ENGLISH_SEED["description"].split(".")[0] not in spanish
    assert ENGLISH_SEED["summary"] not in spanish

    english_client = client.__class__(HTTP_ACCEPT_LANGUAGE="en-US")
    english = english_client.get(url).content.decode()

    assert ENGLISH_SEED["description"].split(".")[0] in english
    assert "Trabaje desde" not in english


def test_home_page_spanish_summary(spanish_client, hot_desk):
    page = spanish_client.get(reverse("members:home")).content.decode()

    assert SPANISH_SEED.HOT_DESK_ES["summary_es"] in page
    assert ENGLISH_SEED["summary"] not in page


def test_plan_page_falls_back_to_english(spanish_client):
    plan = PlanFactory(
        summary="A desk of your own.", description="Your own desk, every day.", is_public=True
    )

    page = spanish_client.get(reverse("members:plan_detail", args=[plan.slug])).content.decode()

    assert "A desk of your own." in page
    assert "Your own desk, every day." in page


def test_blank_spanish_falls_back():
    plan = Plan(description="English text.", description_es="   ")

    with translation.override("es"):
        assert plan.localized_description == "English text."


def test_rooms_page_spanish_description(spanish_client, spanish_member, room):
    room.description = "Seats eight, with a screen."
    room.description_es = "Ocho asientos, con pantalla."
    room.save()
    spanish_client.force_login(spanish_member.user)

    page = spanish_client.get(reverse("bookings:rooms")).content.decode()

    assert "Ocho asientos, con pantalla." in page
    assert "Seats eight, with a screen." not in page


def test_admin_edits_plan_spanish_text(staff_client, hot_desk):
    url = reverse("admin:members_plan_change", args=[hot_desk.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: value for name, value in data.items() if value is not None}
    data["description_es"] = "Escritorio compartido (hot desk) con café."

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    hot_desk.refresh_from_db()
    assert hot_desk.description_es == "Escritorio compartido (hot desk) con café."


def test_admin_room_has_spanish_field(staff_client, room):
    page = staff_client.get(reverse("admin:bookings_room_change", args=[room.pk]))

    assert page.status_code == 200
    assert 'name="description_es"' in page.content.decode()
