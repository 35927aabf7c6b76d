"""Reconciliation: backend calls per wanted state, idempotence, outages and the tasks."""

import pytest

from access import tasks
from access.backends.base import AccessBackendError
from access.checks import check_access_backend
from access.models import AccessEvent, AccessKey
from access.services import reconcile_all, reconcile_key
from tests.access.conftest import RecordingBackend
from tests.factories.access import AccessKeyFactory

Wanted = AccessKey.Wanted
Sync = AccessKey.Sync


def pending_key(**fields):
    values = {"backend_state": "", "sync_status": Sync.PENDING}
    values.update(fields)
    return AccessKeyFactory(**values)


def test_active_calls_in_order(backend):
    key = pending_key(number="FOB-1")
    member_id = key.member_id

    key = reconcile_key(key=key)

    assert backend.calls == [
        ("ensure_user", member_id),
        ("assign_credential", member_id, "FOB-1"),
        ("grant_access", member_id),
    ]
    assert key.sync_status == Sync.IN_SYNC
    assert key.backend_state == Wanted.ACTIVE
    assert key.last_synced_at is not None


def test_suspended_calls_suspend(backend):
    key = AccessKeyFactory(wanted_state=Wanted.SUSPENDED, sync_status=Sync.PENDING)

    reconcile_key(key=key)

    assert backend.calls == [
        ("cancel_credential", key.member_id, key.number),
        ("suspend", key.member_id),
    ]


def test_restore_after_suspension(backend):
    key = AccessKeyFactory(backend_state=Wanted.SUSPENDED, sync_status=Sync.PENDING)

    reconcile_key(key=key)

    assert backend.calls[-1] == ("restore", key.member_id)


def test_revoked_calls_remove_and_cancel(backend):
    key = AccessKeyFactory(
        number="FOB-1", status="revoked", wanted_state=Wanted.REVOKED, sync_status=Sync.PENDING
    )

    reconcile_key(key=key)

    assert backend.calls == [
        ("remove_access", key.member_id),
        ("cancel_credential", key.member_id, "FOB-1"),
    ]


def test_revoke_keeps_other_key_access(backend):
    lost = AccessKeyFactory(
        number="FOB-1", status="lost", wanted_state=Wanted.REVOKED, sync_status=Sync.PENDING
    )
    AccessKeyFactory(member=lost.member, number="FOB-2")

    reconcile_key(key=lost)

    assert backend.calls == [("cancel_credential", lost.member_id, "FOB-1")]


def test_revoke_never_synced_no_calls(backend):
    key = pending_key(status="revoked", wanted_state=Wanted.REVOKED)

    key = reconcile_key(key=key)

    assert backend.calls == []
    assert key.sync_status == Sync.IN_SYNC


def test_in_sync_makes_no_calls(backend):
    key = AccessKeyFactory()

    reconcile_key(key=key)

    assert backend.calls == []


def test_second_run_makes_no_calls(backend):
    key = pending_key()
    reconcile_key(key=key)
    backend.calls.clear()

    reconcile_key(key=key)
    reconcile_all()

    assert backend.calls == []


def test_outage_keeps_pending(backend, settings):
    settings.ACCESS_SYNC_MAX_ATTEMPTS = 5
    key = pending_key()
    backend.failing = True

    for _ in range(3):
        with pytest.raises(AccessBackendError):
            reconcile_key(key=key)

    key.refresh_from_db()
    assert key.sync_status == Sync.PENDING
    assert key.sync_attempts == 3
    assert "unreachable" in key.last_error


def test_outage_fails_at_max_attempts(backend, settings):
    settings.ACCESS_SYNC_MAX_ATTEMPTS = 3
    key = pending_key()
    backend.failing = True

    for _ in range(3):
        with pytest.raises(AccessBackendError):
            reconcile_key(key=key)

    key.refresh_from_db()
    assert key.sync_status == Sync.FAILED
    assert "unreachable" in key.last_error
    assert key.events.filter(cause=AccessEvent.Cause.SYNC).count() == 1


def test_outage_converges(backend, settings):
    settings.ACCESS_SYNC_MAX_ATTEMPTS = 3
    key = pending_key(number="FOB-1")
    backend.failing = True
    for _ in range(4):
        reconcile_all()
    backend.failing = False

    assert reconcile_all() == 1

    key.refresh_from_db()
    assert key.sync_status == Sync.IN_SYNC
    assert key.sync_attempts == 0
    assert key.last_error == ""
    assert backend.calls == [
        ("ensure_user", key.member_id),
        ("assign_credential", key.member_id, "FOB-1"),
        ("grant_access", key.member_id),
    ]


def test_no_calls_after_convergence(backend):
    pending_key()
    backend.failing = True
    reconcile_all()
    backend.failing = False
    reconcile_all()
    calls = list(backend.calls)

    reconcile_all()
    reconcile_all()

    assert backend.calls == calls


def test_reconcile_all_counts_in_sync(backend):
    pending_key()
    pending_key()
    AccessKeyFactory()

    assert reconcile_all() == 2


def test_task_retry_settings(settings):
    task = tasks.reconcile_key_task

    assert task.autoretry_for == (AccessBackendError,)
    assert task.retry_backoff is True
    assert task.retry_backoff_max == 600
    assert task.max_retries == settings.ACCESS_SYNC_MAX_ATTEMPTS - 1


def test_task_reconciles_key(backend):
    key = pending_key()

    result = tasks.reconcile_key_task.delay(key.pk)

    assert result.get() == Sync.IN_SYNC
    assert backend.calls[-1] == ("grant_access", key.member_id)


def test_task_retries_until_failed(backend, settings, monkeypatch):
    # Propagating eager errors would stop at the first retry, which raises celery's Retry.
    monkeypatch.setitem(tasks.reconcile_key_task.app.conf, "task_eager_propagates", False)
    key = pending_key()
    backend.failing = True

    result = tasks.reconcile_key_task.apply(args=[key.pk], throw=False)

    assert isinstance(result.result, AccessBackendError)
    key.refresh_from_db()
    assert key.sync_attempts == settings.ACCESS_SYNC_MAX_ATTEMPTS
    assert key.sync_status == Sync.FAILED


def test_task_missing_key(db, backend):
    assert tasks.reconcile_key_task.delay(999_999).get() == "missing"


def test_all_task_runs(backend):
    pending_key()

    assert tasks.reconcile_all_task.delay().get() == 1


def test_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-access-keys"]

    assert entry["task"] == tasks.reconcile_all_task.name


def test_check_unknown_backend(settings):
    settings.ACCESS_BACKEND = "access.backends.nowhere.Backend"

    errors = check_access_backend(None)

    assert [error.id for error in errors] == ["access.E001"]
    assert "access.backends.nowhere.Backend" in errors[0].msg


def test_check_configuration_problems(settings, monkeypatch):
    settings.ACCESS_BACKEND = "tests.access.conftest.RecordingBackend"
    monkeypatch.setattr(
        RecordingBackend, "configuration_problems", lambda self: ["SITE_ID is missing"]
    )

    errors = check_access_backend(None)

    assert [error.id for error in errors] == ["access.E002"]
    assert errors[0].msg == "SITE_ID is missing"


def test_check_default_backend_passes(settings):
    settings.ACCESS_BACKEND = "access.backends.tracking.TrackingBackend"

    assert check_access_backend(None) == []


def test_busy_key_not_pushed_twice(backend):
    from django.core.cache import cache

    from access.services import ReconcileBusyError

    key = pending_key()
    cache.add(f"access:reconcile:{key.pk}", "held")  # another worker is pushing this key

    with pytest.raises(ReconcileBusyError):
        reconcile_key(key=key)

    assert backend.calls == []
    assert AccessKey.objects.get(pk=key.pk).sync_status == Sync.PENDING

    cache.delete(f"access:reconcile:{key.pk}")
    reconcile_key(key=key)

    assert AccessKey.objects.get(pk=key.pk).sync_status == Sync.IN_SYNC


def test_lease_released_after_failure(backend):
    from django.core.cache import cache

    key = pending_key()
    backend.failing = True

    with pytest.raises(AccessBackendError):
        reconcile_key(key=key)

    assert cache.get(f"access:reconcile:{key.pk}") is None
