"""Staff actions on keys: issue, lost, returned, suspend and restore."""

import pytest

from access.models import AccessEvent, AccessKey
from access.services import (
    AccessError,
    issue_key,
    mark_key_lost,
    mark_key_returned,
    normalize_key_number,
    refresh_member_keys,
    restore_key,
    suspend_key,
)
from members.models import Membership
from tests.factories import MemberFactory, MembershipFactory
from tests.factories.access import AccessKeyFactory

Status = AccessKey.Status
Wanted = AccessKey.Wanted
State = Membership.State


def test_issue_active_member(active_member, staff_user):
    key = issue_key(member=active_member, number=" FOB-1 ", kind="fob", actor=staff_user)

    assert key.number == "FOB-1"
    assert key.status == Status.ACTIVE
    assert key.wanted_state == Wanted.ACTIVE
    event = key.events.get()
    assert event.actor == staff_user
    assert event.to_status == Status.ACTIVE


def test_issue_without_membership_rejected(db, staff_user):
    member = MemberFactory()

    with pytest.raises(AccessError, match="no current membership"):
        issue_key(member=member, number="FOB-1", kind="fob", actor=staff_user)

    assert not AccessKey.objects.exists()


def test_issue_after_cancellation_rejected(db, staff_user):
    member = MembershipFactory(state=State.CANCELLED).member

    with pytest.raises(AccessError, match="no current membership"):
        issue_key(member=member, number="FOB-1", kind="fob", actor=staff_user)


def test_issue_pending_member_suspended(db, staff_user):
    member = MembershipFactory(state=State.PENDING).member

    key = issue_key(member=member, number="FOB-1", kind="card", actor=staff_user)

    assert key.wanted_state == Wanted.SUSPENDED


def test_issue_duplicate_number_rejected(active_member, staff_user):
    AccessKeyFactory(number="FOB-77")

    with pytest.raises(AccessError, match="fob-77 belongs to another key"):
        issue_key(member=active_member, number="fob-77", kind="fob", actor=staff_user)

    assert not active_member.access_keys.exists()


def test_issue_lost_number_rejected(active_member, staff_user):
    AccessKeyFactory(number="FOB-77", status=Status.LOST, wanted_state=Wanted.REVOKED)

    with pytest.raises(AccessError, match="not returned"):
        issue_key(member=active_member, number="FOB-77", kind="fob", actor=staff_user)


def test_issue_returned_number_reused(active_member, staff_user):
    AccessKeyFactory(number="FOB-77", status=Status.RETURNED, wanted_state=Wanted.REVOKED)

    key = issue_key(member=active_member, number="FOB-77", kind="fob", actor=staff_user)

    assert key.member == active_member
    assert AccessKey.objects.filter(number="FOB-77").count() == 2


def test_issue_empty_number_rejected(active_member, staff_user):
    with pytest.raises(AccessError, match="credential number"):
        issue_key(member=active_member, number="  ", kind="fob", actor=staff_user)


def test_issue_unknown_kind_rejected(active_member, staff_user):
    with pytest.raises(AccessError, match="watch"):
        issue_key(member=active_member, number="FOB-1", kind="watch", actor=staff_user)


def test_lost_revokes(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)

    key = mark_key_lost(key=key, actor=staff_user, reason="left on the bus")

    assert key.status == Status.LOST
    assert key.wanted_state == Wanted.REVOKED
    assert "left on the bus" in key.events.last().reason


def test_lost_then_new_key(active_member, staff_user):
    lost = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    mark_key_lost(key=lost, actor=staff_user)

    new = issue_key(member=active_member, number="FOB-2", kind="fob", actor=staff_user)

    assert new.wanted_state == Wanted.ACTIVE
    assert AccessKey.objects.get(pk=lost.pk).wanted_state == Wanted.REVOKED


def test_lost_key_stays_revoked(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    mark_key_lost(key=key, actor=staff_user)

    refresh_member_keys(member_id=active_member.pk, cause="payment")

    assert AccessKey.objects.get(pk=key.pk).status == Status.LOST


def test_lost_twice_rejected(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    mark_key_lost(key=key, actor=staff_user)

    with pytest.raises(AccessError, match="Issue a new key"):
        mark_key_lost(key=key, actor=staff_user)


def test_returned(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)

    key = mark_key_returned(key=key, actor=staff_user)

    assert key.status == Status.RETURNED
    assert key.wanted_state == Wanted.REVOKED
    assert key.returned_at is not None


def test_returned_twice_rejected(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    mark_key_returned(key=key, actor=staff_user)

    with pytest.raises(AccessError, match="already marked returned"):
        mark_key_returned(key=key, actor=staff_user)


def test_suspend_needs_reason(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)

    with pytest.raises(AccessError, match="reason"):
        suspend_key(key=key, actor=staff_user, reason=" ")

    assert AccessKey.objects.get(pk=key.pk).staff_hold is False


def test_suspend_records_reason(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)

    key = suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    assert key.status == Status.SUSPENDED
    assert key.wanted_state == Wanted.SUSPENDED
    assert key.staff_hold_reason == "lent the fob to a guest"
    event = key.events.last()
    assert event.cause == AccessEvent.Cause.STAFF
    assert "lent the fob to a guest" in event.reason


def test_staff_hold_survives_refresh(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    changed = refresh_member_keys(member_id=active_member.pk, cause="payment")

    assert changed == []
    assert AccessKey.objects.get(pk=key.pk).wanted_state == Wanted.SUSPENDED


def test_restore_follows_membership(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)
    suspend_key(key=key, actor=staff_user, reason="lent the fob to a guest")

    key = restore_key(key=key, actor=staff_user, reason="talked it through")

    assert key.staff_hold is False
    assert key.status == Status.ACTIVE
    assert key.wanted_state == Wanted.ACTIVE


def test_restore_without_hold_rejected(active_member, staff_user):
    key = issue_key(member=active_member, number="FOB-1", kind="fob", actor=staff_user)

    with pytest.raises(AccessError, match="not suspended by staff"):
        restore_key(key=key, actor=staff_user)


def test_refresh_unknown_cause_rejected(active_member):
    with pytest.raises(AccessError, match="weather"):
        refresh_member_keys(member_id=active_member.pk, cause="weather")


@pytest.mark.parametrize(
    ("state", "wanted"),
    [
        (State.ACTIVE, Wanted.ACTIVE),
        (State.SUSPENDED, Wanted.SUSPENDED),
        (State.PENDING, Wanted.SUSPENDED),
        (State.CANCELLED, Wanted.REVOKED),
        (State.ENDED, Wanted.REVOKED),
    ],
)
def test_refresh_wanted_by_state(db, clock, state, wanted):
    membership = MembershipFactory(state=state)
    key = AccessKeyFactory(
        member=membership.member,
        status=Status.SUSPENDED if wanted == Wanted.ACTIVE else Status.ACTIVE,
        wanted_state=Wanted.SUSPENDED if wanted == Wanted.ACTIVE else Wanted.ACTIVE,
    )

    refresh_member_keys(member_id=membership.member_id, cause="payment")

    assert AccessKey.objects.get(pk=key.pk).wanted_state == wanted


def test_refresh_past_due_in_grace(db, clock):
    membership = MembershipFactory(state=State.PAST_DUE, grace_until=clock.today)
    key = AccessKeyFactory(member=membership.member)

    assert refresh_member_keys(member_id=membership.member_id, cause="payment") == []
    assert AccessKey.objects.get(pk=key.pk).wanted_state == Wanted.ACTIVE


def test_refresh_past_due_after_grace(db, clock):
    membership = MembershipFactory(state=State.PAST_DUE, grace_until=clock.today)
    key = AccessKeyFactory(member=membership.member)
    clock.advance(1)

    refresh_member_keys(member_id=membership.member_id, cause="schedule")

    assert AccessKey.objects.get(pk=key.pk).wanted_state == Wanted.SUSPENDED


@pytest.mark.parametrize("variant", ["12345678", "1234  5678", "1234\t5678", "\u200b1234 5678"])
def test_issue_number_variants_refused(variant, staff_user):
    first = AccessKeyFactory(number=normalize_key_number("1234 5678"))
    MembershipFactory(member=first.member, state=Membership.State.ACTIVE)

    with pytest.raises(AccessError, match="belongs to another key"):
        issue_key(member=first.member, number=variant, kind="fob", actor=staff_user)

    assert AccessKey.objects.count() == 1
