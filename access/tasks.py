"""Celery tasks that move the door backend toward each key's wanted state."""

import logging

from celery import shared_task
from django.conf import settings

from .backends.base import AccessBackendError

logger = logging.getLogger(__name__)


@shared_task(
    autoretry_for=(AccessBackendError,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    # The first run plus the retries make ACCESS_SYNC_MAX_ATTEMPTS attempts, the count at
    # which reconcile_key marks the key failed.
    max_retries=max(settings.ACCESS_SYNC_MAX_ATTEMPTS - 1, 0),
)
def reconcile_key_task(key_id: int) -> str:
    """Reconcile one key; retried with exponential backoff while the backend fails.

    Returns the key's sync status. Each failed attempt is counted on the key, which shows
    as failed once ACCESS_SYNC_MAX_ATTEMPTS is reached. After the retries run out, the
    periodic reconcile_all_task keeps trying it.
    """
    from .models import AccessKey
    from .services import reconcile_key

    try:
        key = AccessKey.objects.get(pk=key_id)
    except AccessKey.DoesNotExist:
        logger.warning("Access key %s to reconcile no longer exists", key_id)
        return "missing"
    return reconcile_key(key=key).sync_status


@shared_task
def reconcile_all_task() -> int:
    """Reconcile every key not in sync; run by beat every 15 minutes."""
    from .services import reconcile_all

    return reconcile_all()
