"""Fixtures of the meeting-room tests.

The clock is set to 09:00 on Monday 2 March 2026 in San Juan (`now`). `member` is an
active Hot Desk member whose first month was paid through the billing services, so the
ledger holds a $150.00 grant that expires when the period ends on 2 April 2026.
"""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services as billing_services
from members.models import Membership
from tests.factories import MembershipFactory, MemberWithUserFactory
from tests.factories.bookings import RoomFactory

START = datetime.date(2026, 3, 2)
PERIOD_END = datetime.date(2026, 4, 2)


def at(day: datetime.date, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """Return the aware moment of `day` at hour:minute in San Juan."""
    return datetime.datetime.combine(
        day, datetime.time(hour, minute), tzinfo=timezone.get_default_timezone()
    )


def paid_member(plan, **member_fields):
    """Return a member with an active membership on `plan` and its first month paid."""
    member = MemberWithUserFactory(**member_fields)
    membership = MembershipFactory(
        member=member, plan=plan, state=Membership.State.ACTIVE, start_date=START
    )
    billing_services.record_manual_payment(
        membership=membership,
        amount=membership.monthly_price,
        method="cash",
        reference="",
        received_at=START,
        actor=None,
    )
    return member


@pytest.fixture
def now(time_machine):
    moment = at(START, 9)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture
def room(db):
    return RoomFactory(name="Sala Morro", hourly_rate=Decimal("25.00"))


@pytest.fixture
def member(now, hot_desk):
    return paid_member(hot_desk, first_name="Ana", last_name="Rivera", email="ana@example.com")


@pytest.fixture
def other_member(now, hot_desk):
    return paid_member(hot_desk, first_name="Benito", last_name="Ortiz", email="ben@example.com")


@pytest.fixture
def member_client(client, member):
    client.force_login(member.user)
    return client
