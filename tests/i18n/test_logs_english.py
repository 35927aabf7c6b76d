"""Log lines stay in English whatever language the request that caused them uses."""

import logging

import pytest
from django.utils import timezone, translation

from billing import services

pytestmark = pytest.mark.django_db


def test_webhook_log_status_code(caplog):
    payload = {"id": "fake_evt_log", "type": "card.expiring", "created": timezone.now().isoformat()}
    event, _ = services.store_webhook_event(
        gateway="fake", event_id="fake_evt_log", event_type="card.expiring", payload=payload
    )

    with caplog.at_level(logging.INFO, logger="billing.services"), translation.override("es"):
        services.process_webhook_event(webhook_event=event)

    last = caplog.records[-1].getMessage()
    assert last == f"Webhook event {event.pk} (card.expiring) ignored"
