"""Fixtures of the Spanish tests: a Spanish-speaking member with a full portal.

The clock is 09:00 on Monday 2 March 2026 in San Juan. The member has an active Hot Desk
membership whose first month was paid in cash, an access key, and a room booking on
Tuesday at 10:00.
"""

import datetime

import pytest
from django.conf import settings

from bookings import services as bookings_services
from tests.accounts.conftest import _commit_callbacks_after_requests  # noqa: F401 (autouse)
from tests.bookings.conftest import START, at, now, paid_member, room  # noqa: F401 (fixtures)
from tests.factories.access import AccessKeyFactory

TUESDAY = START + datetime.timedelta(days=1)


@pytest.fixture
def spanish_member(now, hot_desk, room):  # noqa: F811 (fixtures imported above)
    member = paid_member(
        hot_desk, first_name="Ana", last_name="Rivera", email="ana@example.com", language="es"
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
