"""Fixtures of the Spanish tests: a Spanish-speaking member with a full portal.

The clock is 09:00 on Monday 2 March 2026 in San Juan. The member has an active Hot Desk
membership whose first month was paid in cash, an access key, and a room booking on
Tuesday at 10:00.
"""

import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from billing import services as billing_services
from bookings import services as bookings_services
from members.models import Membership
from tests.accounts.conftest import _commit_callbacks_after_requests  # noqa: F401 (autouse)
from tests.factories import MembershipFactory, MemberWithUserFactory
from tests.factories.access import AccessKeyFactory
from tests.factories.bookings import RoomFactory

START = datetime.date(2026, 3, 2)
TUESDAY = START + datetime.timedelta(days=1)


def at(day: datetime.date, hour: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(
        day, datetime.time(hour), tzinfo=timezone.get_default_timezone()
    )


@pytest.fixture
def now(time_machine):
    moment = at(START, 9)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.fixture
def room(db):
    return RoomFactory(name="Sala Morro")


@pytest.fixture
def spanish_member(now, hot_desk, room):
    member = MemberWithUserFactory(
        first_name="Ana", last_name="Rivera", email="ana@example.com", language="es"
    )
    membership = MembershipFactory(
        member=member, plan=hot_desk, state=Membership.State.ACTIVE, start_date=START
    )
    billing_services.record_manual_payment(
        membership=membership,
        amount=membership.monthly_price,
        method="cash",
        reference="",
        received_at=START,
        actor=None,
    )
    AccessKeyFactory(member=member)
    bookings_services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11)
    )
    return member


@pytest.fixture
def spanish_client(client):
    """A client whose browser asks for English but who chose Español with the switch."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    return client
