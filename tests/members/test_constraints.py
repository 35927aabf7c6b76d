"""Database constraints of the members domain, hit directly through the ORM.

Services check these rules first, and the constraints still apply when a write bypasses
them. The `postgres` tests are the proof on the production database. The
unmarked copies run the same cases on whatever DATABASE_URL points at (SQLite also
supports check constraints and partial unique indexes).
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from members.models import Member, Membership, MembershipApplication, Plan
from tests.factories import ApplicationFactory, MemberFactory, MembershipFactory, PlanFactory

D = datetime.date
State = Membership.State
Status = MembershipApplication.Status

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Violation:
    """A write that breaks `constraint`. `setup` stores valid rows and returns the write."""

    constraint: str
    setup: Callable[[], Callable[[], object]]
    # SQLite names the column, not the index, when a partial unique index on a plain
    # column is violated.
    sqlite_text: str | None = None

    def expected_text(self) -> str:
        if connection.vendor == "sqlite" and self.sqlite_text:
            return self.sqlite_text
        return self.constraint


def _member_email_other_case():
    MemberFactory(email="ana@example.com")
    return lambda: MemberFactory(email="Ana@Example.com")


def _two_pending():
    existing = MembershipFactory(state=State.PENDING)
    return lambda: MembershipFactory(member=existing.member, state=State.PENDING)


def _pending_beside_active():
    existing = MembershipFactory(state=State.ACTIVE)
    return lambda: MembershipFactory(member=existing.member, state=State.PENDING)


def _suspended_beside_past_due():
    existing = MembershipFactory(state=State.PAST_DUE)
    return lambda: MembershipFactory(member=existing.member, state=State.SUSPENDED)


def _cancelled_set_back_to_active():
    current = MembershipFactory(state=State.ACTIVE)
    cancelled = MembershipFactory(
        member=current.member, state=State.CANCELLED, end_date=current.start_date
    )
    return lambda: Membership.objects.filter(pk=cancelled.pk).update(state=State.ACTIVE)


def _plan_negative_price():
    return lambda: PlanFactory(monthly_price=Decimal("-0.01"))


def _plan_price_updated_negative():
    plan = PlanFactory()
    return lambda: Plan.objects.filter(pk=plan.pk).update(monthly_price=Decimal("-250.00"))


def _plan_negative_credit():
    return lambda: PlanFactory(included_credit=Decimal("-0.01"))


def _plan_zero_months():
    return lambda: PlanFactory(contract_months=0)


def _membership_negative_price():
    return lambda: MembershipFactory(monthly_price=Decimal("-0.01"))


def _membership_negative_credit():
    return lambda: MembershipFactory(included_credit=Decimal("-0.01"))


def _commitment_end_before_start():
    return lambda: MembershipFactory(start_date=D(2025, 3, 1), commitment_end=D(2025, 2, 28))


def _end_date_before_start():
    return lambda: MembershipFactory(
        state=State.ENDED, start_date=D(2025, 3, 1), end_date=D(2025, 2, 28)
    )


def _membership_unknown_state():
    return lambda: MembershipFactory(state="paused")


def _application_unknown_status():
    return lambda: ApplicationFactory(status="pending")


def _two_open_applications():
    ApplicationFactory(email="ana@example.com")
    return lambda: ApplicationFactory(email="ANA@example.com")


def _application_reopened():
    ApplicationFactory(email="ana@example.com")
    rejected = ApplicationFactory(email="Ana@example.com", status=Status.REJECTED)
    return lambda: MembershipApplication.objects.filter(pk=rejected.pk).update(
        status=Status.SUBMITTED
    )


ONE_CURRENT = "membership_one_current_per_member"
ONE_CURRENT_SQLITE = "members_membership.member_id"

VIOLATIONS = [
    pytest.param(
        Violation("member_email_unique_ignoring_case", _member_email_other_case),
        id="member-email-case",
    ),
    pytest.param(Violation(ONE_CURRENT, _two_pending, ONE_CURRENT_SQLITE), id="two-pending"),
    pytest.param(
        Violation(ONE_CURRENT, _pending_beside_active, ONE_CURRENT_SQLITE),
        id="pending-beside-active",
    ),
    pytest.param(
        Violation(ONE_CURRENT, _suspended_beside_past_due, ONE_CURRENT_SQLITE),
        id="suspended-beside-past-due",
    ),
    pytest.param(
        Violation(ONE_CURRENT, _cancelled_set_back_to_active, ONE_CURRENT_SQLITE),
        id="cancelled-set-back-to-active",
    ),
    pytest.param(
        Violation("plan_monthly_price_not_negative", _plan_negative_price),
        id="plan-negative-price",
    ),
    pytest.param(
        Violation("plan_monthly_price_not_negative", _plan_price_updated_negative),
        id="plan-price-updated-negative",
    ),
    pytest.param(
        Violation("plan_included_credit_not_negative", _plan_negative_credit),
        id="plan-negative-credit",
    ),
    pytest.param(
        Violation("plan_contract_months_at_least_one", _plan_zero_months),
        id="plan-zero-months",
    ),
    pytest.param(
        Violation("membership_monthly_price_not_negative", _membership_negative_price),
        id="membership-negative-price",
    ),
    pytest.param(
        Violation("membership_included_credit_not_negative", _membership_negative_credit),
        id="membership-negative-credit",
    ),
    pytest.param(
        Violation("membership_commitment_end_not_before_start", _commitment_end_before_start),
        id="commitment-end-before-start",
    ),
    pytest.param(
        Violation("membership_end_date_not_before_start", _end_date_before_start),
        id="end-date-before-start",
    ),
    pytest.param(
        Violation("membership_state_valid", _membership_unknown_state),
        id="membership-unknown-state",
    ),
    pytest.param(
        Violation("application_status_valid", _application_unknown_status),
        id="application-unknown-status",
    ),
    pytest.param(
        Violation("application_one_open_per_email", _two_open_applications),
        id="two-open-applications",
    ),
    pytest.param(
        Violation("application_one_open_per_email", _application_reopened),
        id="application-reopened",
    ),
]


def _row_counts():
    return {
        model.__name__: model.objects.count()
        for model in (Plan, Member, MembershipApplication, Membership)
    }


def _assert_violation(violation: Violation) -> None:
    violate = violation.setup()
    counts = _row_counts()

    # The savepoint keeps the test transaction usable on PostgreSQL after the error.
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        violate()

    assert violation.expected_text() in str(raised.value)
    assert _row_counts() == counts


@pytest.mark.postgres
@pytest.mark.parametrize("violation", VIOLATIONS)
def test_constraint_on_postgres(violation):
    _assert_violation(violation)


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_constraint_on_configured_database(violation):
    _assert_violation(violation)


# --- Rows the constraints must let through -----------------------------------------
# Each function stores rows that sit right at a constraint's limit and returns them.


def _finished_beside_current():
    current = MembershipFactory(state=State.ACTIVE, start_date=D(2025, 1, 1))
    finished = [
        MembershipFactory(
            member=current.member,
            state=state,
            start_date=D(2023, 1, 1),
            end_date=D(2024, 1, 1),
        )
        for state in (State.CANCELLED, State.ENDED, State.CANCELLED)
    ]
    return [current, *finished]


def _free_plan():
    return [
        PlanFactory(
            monthly_price=Decimal("0.00"), included_credit=Decimal("0.00"), contract_months=1
        )
    ]


def _free_membership():
    return [MembershipFactory(monthly_price=Decimal("0.00"), included_credit=Decimal("0.00"))]


def _dates_on_start():
    return [
        MembershipFactory(
            state=State.CANCELLED,
            start_date=D(2025, 3, 1),
            commitment_end=D(2025, 3, 1),
            end_date=D(2025, 3, 1),
        )
    ]


def _closed_applications_beside_open():
    closed = [
        ApplicationFactory(email="Ana@Example.com", status=status)
        for status in (Status.APPROVED, Status.REJECTED, Status.WITHDRAWN, Status.REJECTED)
    ]
    return [ApplicationFactory(email="ana@example.com"), *closed]


def _open_applications_other_emails():
    return [
        ApplicationFactory(email="ana@example.com"),
        ApplicationFactory(email="ana.rivera@example.com"),
    ]


ALLOWED = [
    pytest.param(_finished_beside_current, id="finished-beside-current"),
    pytest.param(_free_plan, id="free-plan"),
    pytest.param(_free_membership, id="free-membership"),
    pytest.param(_dates_on_start, id="dates-on-start"),
    pytest.param(_closed_applications_beside_open, id="closed-beside-open-application"),
    pytest.param(_open_applications_other_emails, id="open-applications-other-emails"),
]


def _assert_allowed(write) -> None:
    with transaction.atomic():
        rows = write()

    for row in rows:
        assert type(row).objects.filter(pk=row.pk).exists(), row


@pytest.mark.postgres
@pytest.mark.parametrize("write", ALLOWED)
def test_constraint_allows_on_postgres(write):
    _assert_allowed(write)


@pytest.mark.parametrize("write", ALLOWED)
def test_constraint_allows_on_configured_database(write):
    _assert_allowed(write)
