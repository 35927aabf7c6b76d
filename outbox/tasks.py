"""Celery tasks of the outbox: send one email, and sweep the rows no task is sending."""

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True)
def send_email(self, email_id: int) -> str:
    """Send one outbox email and return its status; retry later on a temporary error.

    The retry waits `Delivery.retry_in` seconds, which CPR_OUTBOX_MAX_COUNTDOWN_SECONDS
    keeps below the broker's visibility timeout. A longer wait has no countdown: the
    sweep queues the row when it is due. In eager mode (development, tests) a retry
    would run at once and block the request, so the row waits for the sweep instead.
    """
    delivery = services.deliver_email(email_id=email_id)
    if delivery.retry_in is None:
        return delivery.status
    if self.request.is_eager:
        logger.info("Email %s left queued for the sweep (tasks run inline)", email_id)
        return delivery.status
    raise self.retry(countdown=delivery.retry_in, max_retries=None)


@shared_task
def sweep_outbox() -> list[int]:
    """Queue the emails whose task was lost or whose worker died; return their ids."""
    return services.sweep_outbox()
