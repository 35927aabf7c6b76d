"""Celery tasks of billing: each loads its objects by id and calls one service."""

import logging

from celery import shared_task

from members import services as members_services

from . import services
from .gateways.base import GatewayError
from .models import GatewaySubscription, InvoiceItem, WebhookEvent

logger = logging.getLogger(__name__)


@shared_task
def process_webhook_event(webhook_event_id: int) -> str:
    """Apply a stored gateway event and return its resulting status."""
    webhook_event = WebhookEvent.objects.get(pk=webhook_event_id)
    return services.process_webhook_event(webhook_event=webhook_event).status


@shared_task
def process_stuck_webhook_events() -> list[int]:
    """Apply stored events whose processing task was lost; return their ids."""
    return [event.pk for event in services.process_stuck_webhook_events()]


@shared_task(
    autoretry_for=(GatewayError,),
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=10,
)
def sync_gateway_cancellation(subscription_id: int) -> None:
    """Tell the gateway the cancellation date recorded on a subscription, retrying on errors."""
    subscription = GatewaySubscription.objects.get(pk=subscription_id)
    services.sync_gateway_cancellation(subscription=subscription)


@shared_task(
    autoretry_for=(GatewayError,),
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=10,
)
def sync_invoice_item(item_id: int) -> None:
    """Add a pending invoice item at the gateway, or remove a withdrawn one, retrying on errors."""
    item = InvoiceItem.objects.get(pk=item_id)
    services.sync_invoice_item(item=item)


@shared_task
def activate_due_memberships() -> list[int]:
    """Activate paid memberships whose start date has come; return their ids."""
    return [membership.pk for membership in services.activate_due_memberships()]


@shared_task
def suspend_overdue_memberships() -> list[int]:
    """Suspend past-due memberships whose grace period is over; return their ids."""
    return [membership.pk for membership in services.suspend_overdue_memberships()]


@shared_task
def apply_term_ends() -> list[int]:
    """Renew or end memberships whose commitment end has come; return their ids."""
    return [membership.pk for membership in services.apply_term_ends()]


@shared_task
def apply_scheduled_cancellations() -> list[int]:
    """Cancel memberships whose scheduled cancellation date has come; return their ids."""
    return [membership.pk for membership in members_services.apply_scheduled_cancellations()]


@shared_task
def queue_commitment_reminders() -> list[int]:
    """Email members whose commitment ends within 30 days; return the ids reminded now."""
    return [membership.pk for membership in services.queue_commitment_reminders()]


@shared_task
def expire_credit() -> int:
    """Expire meeting-room credit past its date; return how many lots expired."""
    return services.expire_credit()
