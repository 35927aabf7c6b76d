"""Services of the members domain: applications, approval and the membership state machine."""

import datetime
import itertools
from decimal import Decimal

import pytest
from django.utils import timezone

from members import services
from members.models import Member, Membership, MembershipApplication, MembershipEvent, Plan
from members.periods import add_months
from members.services import DuplicateApplicationError, IllegalTransitionError, MembersError
from tests.factories import ApplicationFactory, MemberFactory, MembershipFactory, PlanFactory

D = datetime.date
State = Membership.State
Status = MembershipApplication.Status

TODAY = D(2025, 3, 10)
LONG_AGO = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def today(monkeypatch):
    """Fix the portal's "today" to TODAY for the services under test."""
    monkeypatch.setattr(services, "local_today", lambda: TODAY)
    return TODAY


def submit(plan, **overrides):
    values = {
        "first_name": "Ana",
        "last_name": "Rivera",
        "email": "ana@example.com",
        "plan": plan,
    }
    values.update(overrides)
    return services.submit_application(**values)


def make_membership(state=State.PENDING, *, start_date=None, **fields):
    """Create a membership directly in `state`, started 60 days before TODAY by default."""
    start_date = start_date or TODAY - datetime.timedelta(days=60)
    if state in (State.CANCELLED, State.ENDED):
        fields.setdefault("end_date", TODAY - datetime.timedelta(days=1))
    fields.setdefault("state_changed_at", LONG_AGO)
    return MembershipFactory(state=state, start_date=start_date, **fields)


# --- local_today -----------------------------------------------------------------


def test_local_today_uses_puerto_rico(monkeypatch):
    # 02:00 UTC on 1 March is still 22:00 on 28 February in San Juan (UTC-4).
    instant = datetime.datetime(2025, 3, 1, 2, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(timezone, "now", lambda: instant)

    assert services.local_today() == D(2025, 2, 28)


# --- submit_application ------------------------------------------------------------


def test_submit_strips_text(hot_desk):
    application = submit(
        hot_desk,
        first_name="  José ",
        last_name=" Núñez  ",
        email="  jose@example.com ",
        phone=" 787-555-0100 ",
        company=" Núñez & Hijos ",
        message="  Hola  ",
    )

    application.refresh_from_db()
    assert application.first_name == "José"
    assert application.last_name == "Núñez"
    assert application.email == "jose@example.com"
    assert application.phone == "787-555-0100"
    assert application.company == "Núñez & Hijos"
    assert application.message == "Hola"


def test_submit_stores_request_details(hot_desk):
    application = submit(
        hot_desk,
        language="es",
        ip_address="203.0.113.5",
        desired_start_date=D(2025, 4, 1),
        referral_source=MembershipApplication.ReferralSource.FRIEND,
    )

    application.refresh_from_db()
    assert application.language == "es"
    assert application.ip_address == "203.0.113.5"
    assert application.desired_start_date == D(2025, 4, 1)
    assert application.referral_source == "friend"
    assert application.status == Status.SUBMITTED
    assert application.plan == hot_desk


def test_submit_duplicate_open_application(hot_desk):
    ApplicationFactory(email="ana@example.com", plan=hot_desk)

    with pytest.raises(DuplicateApplicationError, match="ANA@example.com"):
        submit(hot_desk, email="ANA@Example.COM")

    assert MembershipApplication.objects.count() == 1


def test_submit_duplicate_caught_by_database(hot_desk, monkeypatch):
    # Two requests can both pass the duplicate check, so the partial unique index stops one.
    ApplicationFactory(email="ana@example.com", plan=hot_desk)
    monkeypatch.setattr(services, "check_can_apply", lambda *, email: None)

    with pytest.raises(DuplicateApplicationError):
        submit(hot_desk, email="Ana@example.com")

    assert MembershipApplication.objects.count() == 1


@pytest.mark.parametrize("state", Membership.CURRENT_STATES)
def test_submit_duplicate_current_membership(hot_desk, state):
    make_membership(state, member__email="ana@example.com")

    with pytest.raises(DuplicateApplicationError, match="current membership"):
        submit(hot_desk, email="Ana@Example.com")

    assert MembershipApplication.objects.count() == 0


@pytest.mark.parametrize("status", [Status.REJECTED, Status.WITHDRAWN])
def test_submit_after_closed_application(hot_desk, status):
    ApplicationFactory(email="ana@example.com", plan=hot_desk, status=status)

    application = submit(hot_desk, email="Ana@example.com")

    assert application.status == Status.SUBMITTED
    assert MembershipApplication.objects.count() == 2


@pytest.mark.parametrize("state", [State.CANCELLED, State.ENDED])
def test_submit_after_membership_finished(hot_desk, state):
    make_membership(state, member__email="ana@example.com")

    application = submit(hot_desk, email="ana@example.com")

    assert application.pk is not None
    assert MembershipApplication.objects.count() == 1


@pytest.mark.parametrize("flags", [{"is_public": False}, {"is_active": False}])
def test_submit_plan_closed(flags):
    plan = PlanFactory(name="Private Office", **flags)

    with pytest.raises(MembersError, match="Private Office"):
        submit(plan)

    assert MembershipApplication.objects.count() == 0


# --- approve_application -----------------------------------------------------------


def test_approve_creates_member(hot_desk, staff_user, today):
    application = ApplicationFactory(
        plan=hot_desk,
        first_name="Iñaki",
        last_name="Muñoz",
        email="inaki@example.com",
        phone="787-555-0199",
        company="Muñoz Labs",
    )

    membership = services.approve_application(application=application, actor=staff_user)

    member = membership.member
    assert Member.objects.count() == 1
    assert member.first_name == "Iñaki"
    assert member.last_name == "Muñoz"
    assert member.email == "inaki@example.com"
    assert member.phone == "787-555-0199"
    assert member.company == "Muñoz Labs"


def test_approve_reuses_member_ignoring_case(hot_desk, staff_user, today):
    existing = MemberFactory(email="Ana@Example.com")
    application = ApplicationFactory(plan=hot_desk, email="ana@example.com")

    membership = services.approve_application(application=application, actor=staff_user)

    assert membership.member == existing
    assert Member.objects.count() == 1


def test_approve_member_created_concurrently(hot_desk, staff_user, today, monkeypatch):
    # The lookup misses a member that another transaction created a moment later.
    MemberFactory(email="ana@example.com")
    application = ApplicationFactory(plan=hot_desk, email="ana@example.com")
    monkeypatch.setattr(Member.objects, "select_for_update", Member.objects.none)

    with pytest.raises(MembersError, match="created at the same moment"):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == Status.SUBMITTED
    assert Member.objects.count() == 1
    assert not Membership.objects.exists()


def test_approve_reuses_member_after_ended(hot_desk, staff_user, today):
    previous = make_membership(State.ENDED, member__email="ana@example.com")
    member = previous.member
    Member.objects.filter(pk=member.pk).update(member_since=D(2020, 5, 1))
    application = ApplicationFactory(plan=hot_desk, email="ANA@example.com")

    membership = services.approve_application(application=application, actor=staff_user)

    member.refresh_from_db()
    assert membership.member == member
    assert member.member_since == D(2020, 5, 1)


def test_approve_creates_pending_snapshot(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=D(2025, 4, 1))

    membership = services.approve_application(application=application, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.PENDING
    assert membership.plan == hot_desk
    assert membership.application == application
    assert membership.monthly_price == Decimal("250.00")
    assert membership.included_credit == Decimal("150.00")
    assert membership.contract_months == 12
    assert membership.start_date == D(2025, 4, 1)
    assert membership.commitment_end == D(2026, 4, 1)
    assert membership.end_date is None
    assert membership.cancel_at is None


@pytest.mark.parametrize(
    ("desired", "start"),
    [
        (None, TODAY),
        (TODAY - datetime.timedelta(days=3), TODAY),
        (TODAY, TODAY),
        (TODAY + datetime.timedelta(days=14), TODAY + datetime.timedelta(days=14)),
    ],
    ids=["no-date", "date-passed", "today", "future-date"],
)
def test_approve_start_date(hot_desk, staff_user, today, desired, start):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=desired)

    membership = services.approve_application(application=application, actor=staff_user)

    assert membership.start_date == start


def test_approve_explicit_start_date(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=D(2025, 4, 1))

    membership = services.approve_application(
        application=application, actor=staff_user, start_date=D(2025, 1, 31)
    )

    assert membership.start_date == D(2025, 1, 31)
    assert membership.commitment_end == D(2026, 1, 31)


def test_approve_start_uses_puerto_rico_date(hot_desk, staff_user, monkeypatch):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=None)
    # 02:00 UTC on 1 March is still 28 February in San Juan.
    instant = datetime.datetime(2025, 3, 1, 2, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(timezone, "now", lambda: instant)

    membership = services.approve_application(application=application, actor=staff_user)

    assert membership.start_date == D(2025, 2, 28)


@pytest.mark.parametrize(
    ("start", "months", "commitment_end"),
    [
        (D(2025, 1, 31), 12, D(2026, 1, 31)),
        (D(2025, 1, 31), 1, D(2025, 2, 28)),
        (D(2024, 1, 31), 1, D(2024, 2, 29)),
        (D(2025, 3, 31), 11, D(2026, 2, 28)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2025, 8, 31), 6, D(2026, 2, 28)),
    ],
)
def test_approve_commitment_end(staff_user, today, start, months, commitment_end):
    plan = PlanFactory(contract_months=months)
    application = ApplicationFactory(plan=plan)

    membership = services.approve_application(
        application=application, actor=staff_user, start_date=start
    )

    assert membership.commitment_end == commitment_end


def test_approve_sets_member_since(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=D(2025, 4, 1))

    membership = services.approve_application(application=application, actor=staff_user)

    membership.member.refresh_from_db()
    assert membership.member.member_since == D(2025, 4, 1)


def test_approve_records_event(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)

    membership = services.approve_application(application=application, actor=staff_user)

    event = MembershipEvent.objects.get(membership=membership)
    assert event.from_state == ""
    assert event.to_state == State.PENDING
    assert event.actor == staff_user


def test_approve_decides_application(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)

    membership = services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == Status.APPROVED
    assert application.decided_by == staff_user
    assert application.decided_at is not None
    assert application.member == membership.member


def test_approve_snapshot_survives_plan_change(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)
    membership = services.approve_application(application=application, actor=staff_user)

    hot_desk.monthly_price = Decimal("300.00")
    hot_desk.included_credit = Decimal("100.00")
    hot_desk.contract_months = 6
    hot_desk.save()

    membership.refresh_from_db()
    assert membership.monthly_price == Decimal("250.00")
    assert membership.included_credit == Decimal("150.00")
    assert membership.contract_months == 12


def test_approve_twice(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)
    services.approve_application(application=application, actor=staff_user)
    application.refresh_from_db()
    decided_at = application.decided_at

    with pytest.raises(MembersError, match="already Approved"):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert Membership.objects.count() == 1
    assert MembershipEvent.objects.count() == 1
    assert application.decided_at == decided_at


@pytest.mark.parametrize("status", [Status.REJECTED, Status.WITHDRAWN])
def test_approve_closed_application(hot_desk, staff_user, today, status):
    application = ApplicationFactory(plan=hot_desk, status=status)

    with pytest.raises(MembersError, match=str(status.label)):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == status
    assert Member.objects.count() == 0
    assert Membership.objects.count() == 0


@pytest.mark.parametrize("state", Membership.CURRENT_STATES)
def test_approve_member_with_current_membership(hot_desk, staff_user, today, state):
    current = make_membership(state, member__email="ana@example.com")
    application = ApplicationFactory(plan=hot_desk, email="Ana@Example.com")

    with pytest.raises(MembersError, match="already has a current membership"):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == Status.SUBMITTED
    assert application.decided_by is None
    assert application.member is None
    assert list(Membership.objects.all()) == [current]
    assert MembershipEvent.objects.count() == 0


def test_approve_inactive_plan(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)
    hot_desk.is_active = False
    hot_desk.save()

    with pytest.raises(MembersError, match="inactive"):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == Status.SUBMITTED
    assert Member.objects.count() == 0
    assert Membership.objects.count() == 0


# --- reject_application and withdraw_application ---------------------------------


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_reject_needs_reason(hot_desk, staff_user, reason):
    application = ApplicationFactory(plan=hot_desk)

    with pytest.raises(MembersError, match="reason"):
        services.reject_application(application=application, actor=staff_user, reason=reason)

    application.refresh_from_db()
    assert application.status == Status.SUBMITTED
    assert application.decided_by is None
    assert application.decided_at is None


def test_reject_stores_reason_and_actor(hot_desk, staff_user):
    application = ApplicationFactory(plan=hot_desk)

    returned = services.reject_application(
        application=application, actor=staff_user, reason="  No desks left in April.  "
    )

    application.refresh_from_db()
    assert returned.status == Status.REJECTED
    assert application.status == Status.REJECTED
    assert application.decision_reason == "No desks left in April."
    assert application.decided_by == staff_user
    assert application.decided_at is not None
    assert Member.objects.count() == 0


def test_reject_approved_application(hot_desk, staff_user, today):
    application = ApplicationFactory(plan=hot_desk)
    services.approve_application(application=application, actor=staff_user)

    with pytest.raises(MembersError, match="already Approved"):
        services.reject_application(application=application, actor=staff_user, reason="Late")

    application.refresh_from_db()
    assert application.status == Status.APPROVED
    assert application.decision_reason == ""


def test_withdraw_application(hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    returned = services.withdraw_application(application=application, reason=" Moved away ")

    application.refresh_from_db()
    assert returned.status == Status.WITHDRAWN
    assert application.status == Status.WITHDRAWN
    assert application.decision_reason == "Moved away"
    assert application.decided_at is not None
    assert application.decided_by is None


def test_withdraw_rejected_application(hot_desk, staff_user):
    application = ApplicationFactory(plan=hot_desk)
    services.reject_application(application=application, actor=staff_user, reason="Full")

    with pytest.raises(MembersError, match="already Rejected"):
        services.withdraw_application(application=application)

    application.refresh_from_db()
    assert application.status == Status.REJECTED
    assert application.decision_reason == "Full"


# --- Membership state machine ------------------------------------------------------

TRANSITION_SERVICES = {
    "activate": services.activate_membership,
    "mark_past_due": services.mark_membership_past_due,
    "suspend": services.suspend_membership,
    "reinstate": services.reinstate_membership,
    "cancel": services.cancel_membership,
    "end": services.end_membership,
}
TARGETS = {
    "activate": State.ACTIVE,
    "mark_past_due": State.PAST_DUE,
    "suspend": State.SUSPENDED,
    "reinstate": State.ACTIVE,
    "cancel": State.CANCELLED,
    "end": State.ENDED,
}
# Written out rather than read from services.TRANSITIONS, so that a change to the state
# machine has to change this table too.
LEGAL = {
    (State.PENDING, "activate"),
    (State.ACTIVE, "mark_past_due"),
    (State.PAST_DUE, "suspend"),
    (State.PAST_DUE, "reinstate"),
    (State.SUSPENDED, "reinstate"),
    (State.PENDING, "cancel"),
    (State.ACTIVE, "cancel"),
    (State.PAST_DUE, "cancel"),
    (State.SUSPENDED, "cancel"),
    (State.ACTIVE, "end"),
    (State.PAST_DUE, "end"),
    (State.SUSPENDED, "end"),
}
ILLEGAL = sorted(set(itertools.product(State.values, TRANSITION_SERVICES)) - LEGAL)


def run_transition(transition, membership, actor):
    """Call the service for `transition`, with cancel forced to take effect now."""
    extra = {"immediately": True} if transition == "cancel" else {}
    return TRANSITION_SERVICES[transition](
        membership=membership, actor=actor, cause="test", reason="Checked by staff", **extra
    )


def test_transition_table_size():
    assert len(LEGAL) == 12
    assert len(ILLEGAL) == 6 * 6 - 12


@pytest.mark.parametrize(("state", "transition"), sorted(LEGAL))
def test_legal_transition(staff_user, today, state, transition):
    membership = make_membership(state)

    returned = run_transition(transition, membership, staff_user)

    membership.refresh_from_db()
    assert returned.state == TARGETS[transition]
    assert membership.state == TARGETS[transition]
    assert membership.state_changed_at > LONG_AGO


@pytest.mark.parametrize(("state", "transition"), sorted(LEGAL))
def test_legal_transition_records_event(staff_user, today, state, transition):
    membership = make_membership(state)

    run_transition(transition, membership, staff_user)

    event = MembershipEvent.objects.get(membership=membership)
    assert event.from_state == state
    assert event.to_state == TARGETS[transition]
    assert event.actor == staff_user
    assert event.cause == "test"
    assert event.reason == "Checked by staff"


@pytest.mark.parametrize(("state", "transition"), ILLEGAL)
def test_illegal_transition(staff_user, today, state, transition):
    membership = make_membership(state)
    current_label = State(state).label
    target_label = TARGETS[transition].label

    with pytest.raises(IllegalTransitionError) as raised:
        run_transition(transition, membership, staff_user)

    assert f"from {current_label} to {target_label}" in str(raised.value)
    saved = Membership.objects.get(pk=membership.pk)
    assert saved.state == state
    assert saved.state_changed_at == LONG_AGO
    assert saved.end_date == membership.end_date
    assert saved.cancel_at is None
    assert MembershipEvent.objects.count() == 0


def test_end_pending_future_start(staff_user, today):
    # The state check comes first, so the error names the states, not the dates.
    membership = make_membership(State.PENDING, start_date=TODAY + datetime.timedelta(days=7))

    with pytest.raises(IllegalTransitionError, match="from Pending first payment to Ended"):
        services.end_membership(membership=membership, actor=staff_user)


# --- end_membership ----------------------------------------------------------------


def test_end_sets_end_date(staff_user, today):
    membership = make_membership(State.ACTIVE, cancel_at=TODAY + datetime.timedelta(days=30))

    services.end_membership(
        membership=membership, actor=staff_user, end_date=D(2025, 3, 31), reason="Moved abroad"
    )

    membership.refresh_from_db()
    assert membership.state == State.ENDED
    assert membership.end_date == D(2025, 3, 31)
    assert membership.cancel_at is None


def test_end_defaults_to_today(staff_user, today):
    # Started 13 months ago, so the 12-month commitment is over.
    membership = make_membership(State.ACTIVE, start_date=D(2024, 2, 10))

    services.end_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.end_date == TODAY


def test_end_early_needs_reason(staff_user, today):
    membership = make_membership(State.ACTIVE)

    with pytest.raises(MembersError, match="without a reason"):
        services.end_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert membership.end_date is None
    assert MembershipEvent.objects.count() == 0


def test_end_on_commitment_end_without_reason(staff_user, today):
    membership = make_membership(State.ACTIVE, start_date=D(2024, 3, 10))

    services.end_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.commitment_end == TODAY
    assert membership.state == State.ENDED


def test_end_before_start(staff_user, today):
    membership = make_membership(State.ACTIVE, start_date=D(2025, 2, 1))

    with pytest.raises(MembersError, match="Jan. 31, 2025"):
        services.end_membership(membership=membership, actor=staff_user, end_date=D(2025, 1, 31))

    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert membership.end_date is None
    assert MembershipEvent.objects.count() == 0


# --- cancel_membership -------------------------------------------------------------


def test_cancel_pending_now(staff_user, today):
    membership = make_membership(State.PENDING, start_date=TODAY + datetime.timedelta(days=7))

    services.cancel_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    # Cancelled before it started, so it ends on its start date.
    assert membership.end_date == membership.start_date
    assert membership.cancel_at is None


@pytest.mark.parametrize("state", [State.ACTIVE, State.PAST_DUE, State.SUSPENDED])
def test_cancel_before_commitment_end_scheduled(staff_user, today, state):
    membership = make_membership(state)

    returned = services.cancel_membership(
        membership=membership, actor=staff_user, reason="Leaving the island"
    )

    membership.refresh_from_db()
    assert returned.cancel_at == membership.commitment_end
    assert membership.cancel_at == membership.commitment_end
    assert membership.state == state
    assert membership.state_changed_at == LONG_AGO
    assert membership.end_date is None


def test_cancel_scheduled_records_event(staff_user, today):
    membership = make_membership(State.ACTIVE)

    services.cancel_membership(membership=membership, actor=staff_user, reason="Leaving")

    event = MembershipEvent.objects.get(membership=membership)
    assert event.from_state == State.ACTIVE
    assert event.to_state == State.ACTIVE
    assert event.actor == staff_user
    assert event.reason == "Leaving"


@pytest.mark.parametrize("reason", ["", "  "])
def test_cancel_immediately_needs_reason(staff_user, today, reason):
    membership = make_membership(State.ACTIVE)

    with pytest.raises(MembersError, match="reason"):
        services.cancel_membership(
            membership=membership, actor=staff_user, immediately=True, reason=reason
        )

    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert membership.cancel_at is None
    assert MembershipEvent.objects.count() == 0


def test_cancel_immediately_with_reason(staff_user, today):
    membership = make_membership(State.ACTIVE)
    services.cancel_membership(membership=membership, actor=staff_user)

    services.cancel_membership(
        membership=membership, actor=staff_user, immediately=True, reason="Relocated"
    )

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.end_date == TODAY
    assert membership.cancel_at is None


def test_cancel_immediate_policy(staff_user, today):
    plan = PlanFactory(cancellation_policy=Plan.CancellationPolicy.IMMEDIATE)
    membership = make_membership(State.ACTIVE, plan=plan)

    services.cancel_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.end_date == TODAY


@pytest.mark.parametrize("days_after_commitment_end", [0, 1, 40])
def test_cancel_after_commitment_end(staff_user, today, days_after_commitment_end):
    commitment_end = TODAY - datetime.timedelta(days=days_after_commitment_end)
    membership = make_membership(
        State.ACTIVE, start_date=add_months(commitment_end, -12), commitment_end=commitment_end
    )

    services.cancel_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.end_date == TODAY


def test_cancel_day_before_commitment_end(staff_user, today):
    commitment_end = TODAY + datetime.timedelta(days=1)
    membership = make_membership(
        State.ACTIVE, start_date=add_months(commitment_end, -12), commitment_end=commitment_end
    )

    services.cancel_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert membership.cancel_at == commitment_end


def test_apply_scheduled_cancellations(today):
    due_today = make_membership(State.ACTIVE, cancel_at=TODAY)
    overdue = make_membership(State.SUSPENDED, cancel_at=TODAY - datetime.timedelta(days=2))
    later = make_membership(State.ACTIVE, cancel_at=TODAY + datetime.timedelta(days=1))
    unscheduled = make_membership(State.ACTIVE)
    already_cancelled = make_membership(
        State.CANCELLED, cancel_at=TODAY - datetime.timedelta(days=5)
    )

    cancelled = services.apply_scheduled_cancellations()

    assert sorted(m.pk for m in cancelled) == sorted([due_today.pk, overdue.pk])
    for membership in (due_today, overdue):
        membership.refresh_from_db()
        assert membership.state == State.CANCELLED
        assert membership.end_date == membership.cancel_at
    for membership in (later, unscheduled):
        membership.refresh_from_db()
        assert membership.state == State.ACTIVE
    already_cancelled.refresh_from_db()
    assert already_cancelled.state_changed_at == LONG_AGO


def test_apply_scheduled_cancellations_event(today):
    membership = make_membership(State.ACTIVE, cancel_at=TODAY)

    services.apply_scheduled_cancellations(today=TODAY)

    event = MembershipEvent.objects.get(membership=membership)
    assert event.from_state == State.ACTIVE
    assert event.to_state == State.CANCELLED
    assert event.actor is None
    assert event.cause == "scheduled cancellation"


def test_withdraw_cancellation(staff_user, today):
    membership = make_membership(State.ACTIVE)
    services.cancel_membership(membership=membership, actor=staff_user)

    returned = services.withdraw_cancellation(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert returned.cancel_at is None
    assert membership.cancel_at is None
    assert membership.state == State.ACTIVE
    assert services.apply_scheduled_cancellations(today=membership.commitment_end) == []
    assert MembershipEvent.objects.filter(cause="cancellation withdrawn").count() == 1


def test_withdraw_cancellation_none_scheduled(staff_user, today):
    membership = make_membership(State.ACTIVE)

    with pytest.raises(MembersError, match="no scheduled cancellation"):
        services.withdraw_cancellation(membership=membership, actor=staff_user)

    assert MembershipEvent.objects.count() == 0


def test_withdraw_cancellation_after_it_applied(staff_user, today):
    membership = make_membership(State.ACTIVE, cancel_at=TODAY)
    services.apply_scheduled_cancellations(today=TODAY)

    with pytest.raises(MembersError, match="already Cancelled"):
        services.withdraw_cancellation(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.cancel_at == TODAY
    assert MembershipEvent.objects.count() == 1
