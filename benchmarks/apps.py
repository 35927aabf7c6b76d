from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BenchmarksConfig(AppConfig):
    """Tools that load a large data set for the benchmarks in `bench/`; no models."""

    name = "benchmarks"
    verbose_name = _("benchmarks")

    def ready(self):
        from . import checks  # noqa: F401  (registers the deployment check)
