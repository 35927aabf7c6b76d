from django.conf import settings
from django.core import checks

PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs, **kwargs):
    """Warn when production counts rate limits in a cache that each process keeps alone."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        checks.Warning(
            f"The default cache ({backend}) is not shared between processes, so every "
            "gunicorn worker counts the application and sign-in rate limits on its own.",
            hint="Set CACHE_URL to a shared cache, for example redis://redis:6379/1.",
            id="members.W001",
        )
    ]
