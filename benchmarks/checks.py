from django.conf import settings
from django.core import checks


@checks.register(deploy=True)
def check_benchmark_views(app_configs, **kwargs):
    """Warn when production mounts the benchmark's bare views."""
    if settings.DEBUG or not settings.CPR_BENCHMARK_VIEWS:
        return []
    return [
        checks.Warning(
            "CPR_BENCHMARK_VIEWS is on, so /bench/bare/ and /bench/layout/ answer anyone. "
            "They exist for bench/run's measurements only.",
            hint="Remove CPR_BENCHMARK_VIEWS from the production environment, or set it to false.",
            id="benchmarks.W001",
        )
    ]
