"""URLs of the benchmark views, mounted only when settings.CPR_BENCHMARK_VIEWS is on."""

from django.urls import path

from . import views

app_name = "benchmarks"
urlpatterns = [
    path("bare/", views.bare, name="bare"),
    path("layout/", views.layout, name="layout"),
]
