"""The member's bookings as an iCalendar feed (RFC 5545), written by the icalendar package.

icalendar writes CRLF line ends and folds lines longer than 75 octets. Times are in UTC
(a trailing Z), so no VTIMEZONE is needed. Each booking keeps one UID, so a calendar app
updates its event when the booking changes, and a cancelled booking stays in the feed
with STATUS:CANCELLED so that the app removes it.
"""

import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from .models import Booking

PRODUCT_ID = "-//Code Puerto Rico//CPR Portal meeting rooms//EN"


def _domain() -> str:
    return urlsplit(settings.CPR_SITE_URL).hostname or "localhost"


def booking_uid(booking: Booking) -> str:
    return f"booking-{booking.pk}@{_domain()}"


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC)


def render_feed(bookings: list[Booking], *, now: datetime.datetime | None = None) -> bytes:
    """Return the VCALENDAR of `bookings` as bytes."""
    stamp = _utc(now or timezone.now())
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", _("Code Puerto Rico room bookings"))

    for booking in bookings:
        event = Event()
        event.add("uid", booking_uid(booking))
        event.add("dtstamp", stamp)
        event.add("dtstart", _utc(booking.start))
        event.add("dtend", _utc(booking.end))
        event.add("summary", _("Meeting room: %(room)s") % {"room": booking.room.name})
        event.add("location", booking.room.name)
        event.add("last-modified", _utc(booking.updated_at))
        confirmed = booking.status == Booking.Status.CONFIRMED
        event.add("status", "CONFIRMED" if confirmed else "CANCELLED")
        # A cancelled event must outrank the confirmed one the app stored (RFC 5545 3.8.7.4).
        event.add("sequence", 0 if confirmed else 1)
        calendar.add_component(event)
    return calendar.to_ical()
