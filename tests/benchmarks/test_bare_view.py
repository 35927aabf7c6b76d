"""The bare view of the benchmarks exists only when CPR_BENCHMARK_VIEWS is on."""

import importlib

import pytest
from django.test import override_settings
from django.urls import clear_url_caches

import cpr_portal.urls

BARE_URL = "/bench/bare/"


@pytest.fixture
def mounted(settings):
    """Reload the URLconf under the given CPR_BENCHMARK_VIEWS, and restore it afterwards."""

    def mount(on: bool):
        settings.CPR_BENCHMARK_VIEWS = on
        importlib.reload(cpr_portal.urls)
        clear_url_caches()

    yield mount
    with override_settings(CPR_BENCHMARK_VIEWS=False):
        importlib.reload(cpr_portal.urls)
    clear_url_caches()


@pytest.mark.django_db
def test_bare_view_is_absent_by_default(client, mounted):
    mounted(False)

    assert client.get(BARE_URL).status_code == 404


@pytest.mark.django_db
def test_bare_view_renders_without_queries(client, mounted, django_assert_num_queries):
    mounted(True)

    with django_assert_num_queries(0):
        response = client.get(BARE_URL)

    assert response.status_code == 200
    assert b"Bare benchmark view." in response.content
    assert response.templates[0].name == "benchmarks/bare.html"


@pytest.mark.django_db
def test_layout_view_renders_without_queries(client, mounted, django_assert_num_queries):
    mounted(True)

    with django_assert_num_queries(0):
        response = client.get("/bench/layout/")

    assert response.status_code == 200
    assert b"Layout benchmark view." in response.content
    assert "base.html" in [template.name for template in response.templates]


@pytest.mark.django_db
def test_layout_view_is_absent_by_default(client, mounted):
    mounted(False)

    assert client.get("/bench/layout/").status_code == 404


@pytest.mark.django_db
def test_bare_view_rejects_post(client, mounted):
    mounted(True)

    assert client.post(BARE_URL).status_code == 405
