"""Keys follow the membership through real billing and members services.

Membership changes reach the access app through `membership_changed`, sent once the
membership's transaction commits, so every step runs inside
`django_capture_on_commit_callbacks(execute=True)`: that runs the receiver and the
reconcile task it queues, as a commit in production would.
"""

import pytest

from access.models import AccessEvent, AccessKey
from access.services import issue_key, reconcile_all, restore_key, suspend_key
from billing.services import apply_gateway_event, suspend_overdue_memberships
from members.models import Membership
from members.services import cancel_membership, mark_membership_past_due
from tests.factories.billing import payment_failed, payment_succeeded

Wanted = AccessKey.Wanted
Sync = AccessKey.Sync
State = Membership.State


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Return a context manager that runs on-commit callbacks at its end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def apply(event):
    apply_gateway_event(event=event, gateway="stub")


def key_now(key):
    return AccessKey.objects.get(pk=key.pk)


@pytest.fixture
def keyed_membership(hot_desk_membership, stub_gateway, backend, staff_user, commit):
    """An active membership paid through the gateway, whose member has key FOB-1, in sync."""
    with commit():
        apply(payment_succeeded(hot_desk_membership))
    membership = Membership.objects.get(pk=hot_desk_membership.pk)
    assert membership.state == State.ACTIVE
    with commit():
        key = issue_key(member=membership.member, number="FOB-1", kind="fob", actor=staff_user)
    assert key_now(key).sync_status == Sync.IN_SYNC
    backend.calls.clear()
    return membership, key


def test_issue_syncs_to_backend(keyed_membership, backend):
    membership, key = keyed_membership

    assert key_now(key).backend_state == Wanted.ACTIVE


def test_failure_within_grace_keeps_access(keyed_membership, backend, clock, commit):
    membership, key = keyed_membership

    with commit():
        apply(payment_failed(membership, number=2))

    assert Membership.objects.get(pk=membership.pk).state == State.PAST_DUE
    assert key_now(key).wanted_state == Wanted.ACTIVE
    assert backend.calls == []


def test_grace_over_suspends_key(keyed_membership, backend, clock, commit):
    membership, key = keyed_membership
    with commit():
        apply(payment_failed(membership, number=2))
    clock.advance(8)

    with commit():
        suspended = suspend_overdue_memberships()

    assert [m.pk for m in suspended] == [membership.pk]
    key = key_now(key)
    assert key.wanted_state == Wanted.SUSPENDED
    assert key.backend_state == Wanted.SUSPENDED
    assert backend.calls == [
        ("cancel_credential", membership.member_id, key.number),
        ("suspend", membership.member_id),
    ]
    event = key.events.last()
    assert event.cause == AccessEvent.Cause.SCHEDULE
    assert "suspended" in event.reason
    assert "grace period over" in event.reason


def test_payment_restores_key(keyed_membership, backend, clock, commit):
    membership, key = keyed_membership
    with commit():
        apply(payment_failed(membership, number=2))
    clock.advance(8)
    with commit():
        suspend_overdue_memberships()
    backend.calls.clear()

    with commit():
        apply(payment_succeeded(membership, number=2))

    key = key_now(key)
    assert key.wanted_state == Wanted.ACTIVE
    assert key.backend_state == Wanted.ACTIVE
    assert backend.calls[-1] == ("restore", membership.member_id)
    assert key.events.last().cause == AccessEvent.Cause.PAYMENT


def test_past_due_direct_then_payment(keyed_membership, backend, clock, commit):
    membership, key = keyed_membership
    with commit():
        mark_membership_past_due(
            membership=membership, cause="payment failed", grace_until=clock.today
        )
    clock.advance(1)
    with commit():
        suspend_overdue_memberships()

    assert key_now(key).backend_state == Wanted.SUSPENDED


def test_cancellation_revokes(keyed_membership, backend, staff_user, commit):
    membership, key = keyed_membership

    with commit():
        cancel_membership(
            membership=membership, actor=staff_user, reason="moving abroad", immediately=True
        )

    key = key_now(key)
    assert key.status == AccessKey.Status.REVOKED
    assert key.backend_state == Wanted.REVOKED
    assert backend.calls == [
        ("remove_access", membership.member_id),
        ("cancel_credential", membership.member_id, "FOB-1"),
    ]
    assert key.events.last().cause == AccessEvent.Cause.STAFF


def test_staff_hold_survives_payment(keyed_membership, backend, clock, staff_user, commit):
    membership, key = keyed_membership
    with commit():
        suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")
        apply(payment_failed(membership, number=2))
    clock.advance(8)
    with commit():
        suspend_overdue_memberships()

    with commit():
        apply(payment_succeeded(membership, number=2))

    assert Membership.objects.get(pk=membership.pk).state == State.ACTIVE
    assert key_now(key).wanted_state == Wanted.SUSPENDED
    assert key_now(key).backend_state == Wanted.SUSPENDED


def test_staff_restore_after_payment(keyed_membership, backend, staff_user, commit):
    membership, key = keyed_membership
    with commit():
        suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    with commit():
        restore_key(key=key, actor=staff_user)

    assert key_now(key).backend_state == Wanted.ACTIVE
    assert backend.calls[-1] == ("restore", membership.member_id)


def test_outage_during_suspension_converges(keyed_membership, backend, clock, commit):
    membership, key = keyed_membership
    with commit():
        apply(payment_failed(membership, number=2))
    clock.advance(8)
    backend.failing = True

    with commit():
        suspend_overdue_memberships()

    assert Membership.objects.get(pk=membership.pk).state == State.SUSPENDED
    key = key_now(key)
    assert key.wanted_state == Wanted.SUSPENDED
    assert key.sync_status == Sync.PENDING
    assert key.backend_state == Wanted.ACTIVE

    backend.failing = False
    reconcile_all()

    assert key_now(key).backend_state == Wanted.SUSPENDED
    assert backend.calls == [
        ("cancel_credential", membership.member_id, key.number),
        ("suspend", membership.member_id),
    ]


def test_receiver_error_not_raised(keyed_membership, monkeypatch, staff_user, commit, caplog):
    membership, key = keyed_membership

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("access.services.refresh_member_keys", broken)

    with commit():
        cancel_membership(
            membership=membership, actor=staff_user, reason="moving abroad", immediately=True
        )

    assert Membership.objects.get(pk=membership.pk).state == State.CANCELLED
    assert f"after membership {membership.pk} changed failed" in caplog.text


def live_credentials(calls, assigned_before=("FOB-1",)) -> set[str]:
    """Replay backend calls into the set of key numbers that still open doors."""
    live = set(assigned_before)
    for call in calls:
        if call[0] == "assign_credential":
            live.add(call[2])
        elif call[0] == "cancel_credential":
            live.discard(call[2])
    return live


def test_held_key_stays_shut_when_other_key_issued(keyed_membership, backend, staff_user, commit):
    membership, key = keyed_membership
    with commit():
        suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    with commit():
        issue_key(member=membership.member, number="CARD-2", kind="card", actor=staff_user)

    # The card's grant gives the member access again; the held fob must not come with it.
    assert backend.calls[-1] == ("grant_access", membership.member_id)
    assert live_credentials(backend.calls) == {"CARD-2"}


def test_held_key_stays_shut_after_payment_suspension(
    keyed_membership, backend, clock, staff_user, commit
):
    membership, key = keyed_membership
    with commit():
        issue_key(member=membership.member, number="CARD-2", kind="card", actor=staff_user)
        apply(payment_failed(membership, number=2))
    clock.advance(8)
    with commit():
        suspend_overdue_memberships()
    with commit():
        suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    with commit():
        apply(payment_succeeded(membership, number=2))

    assert ("restore", membership.member_id) in backend.calls
    assert live_credentials(backend.calls) == {"CARD-2"}
    assert key_now(key).wanted_state == Wanted.SUSPENDED
