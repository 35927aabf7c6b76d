"""Billing's Celery tasks, run eagerly and by a real worker consuming from Redis."""

import datetime
import time

import pytest
from celery.result import EagerResult
from django.conf import settings as django_settings

from billing import tasks
from billing.models import GatewaySubscription, WebhookEvent
from billing.services import apply_gateway_event, store_webhook_event, terminate_membership_early
from members.models import Membership
from tests.billing.stub_gateway import event_payload
from tests.celery_worker import redis_app, running_worker, worker_queue_name
from tests.factories import MembershipFactory
from tests.factories.billing import checkout_completed, payment_succeeded

State = Membership.State
WORKER_TIMEOUT_SECONDS = 20


def refreshed(membership):
    return Membership.objects.get(pk=membership.pk)


# --- Eager (the test settings' default) -------------------------------------------------


def test_suspend_task_returns_ids(db, clock):
    overdue = MembershipFactory(state=State.PAST_DUE, grace_until=datetime.date(2025, 1, 10))
    MembershipFactory(state=State.PAST_DUE, grace_until=datetime.date(2025, 1, 20))

    assert tasks.suspend_overdue_memberships.delay().get() == [overdue.pk]


def test_expire_task_returns_count(db, clock):
    assert tasks.expire_credit.delay().get() == 0


def test_beat_schedule_names_tasks():
    from cpr_portal.celery import app

    app.loader.import_default_modules()
    for entry in django_settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks


# --- A real worker on Redis --------------------------------------------------------------


@pytest.fixture
def redis_worker(stub_gateway):
    """Start a worker thread consuming from Redis, and make `.delay()` publish there."""
    with redis_app(worker_queue_name()) as app, running_worker(app):
        yield app


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_suspends_overdue(redis_worker, clock):
    overdue = MembershipFactory(state=State.PAST_DUE, grace_until=datetime.date(2025, 1, 10))

    result = tasks.suspend_overdue_memberships.delay()

    assert not isinstance(result, EagerResult)
    assert result.get(timeout=WORKER_TIMEOUT_SECONDS) == [overdue.pk]
    assert refreshed(overdue).state == State.SUSPENDED


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_processes_webhook_event(redis_worker, hot_desk_membership):
    payload = event_payload(payment_succeeded(hot_desk_membership))
    webhook_event, _created = store_webhook_event(
        gateway="stub", event_id=payload["id"], event_type=payload["type"], payload=payload
    )

    result = tasks.process_webhook_event.delay(webhook_event.pk)

    assert result.get(timeout=WORKER_TIMEOUT_SECONDS) == WebhookEvent.Status.PROCESSED
    assert refreshed(hot_desk_membership).state == State.ACTIVE


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_tells_gateway_after_commit(redis_worker, stub_gateway, hot_desk_membership):
    apply_gateway_event(event=payment_succeeded(hot_desk_membership), gateway="stub")
    apply_gateway_event(event=checkout_completed(hot_desk_membership), gateway="stub")

    terminate_membership_early(membership=hot_desk_membership, actor=None, reason="moving")

    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while not stub_gateway.calls and time.monotonic() < deadline:
        time.sleep(0.1)
    subscription = GatewaySubscription.objects.get(membership=hot_desk_membership)
    assert stub_gateway.calls == [
        ("schedule_cancellation", hot_desk_membership.pk, subscription.cancel_at)
    ]
