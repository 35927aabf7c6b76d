"""Bookable hours and slots of a room, computed in the space's time zone.

A room's hours are wall-clock times (settings.TIME_ZONE). Each day's window is turned
into an aware start and end, and slots step through that window in real minutes, so a
day on which the zone changes its UTC offset gets the right number of slots. Puerto
Rico keeps UTC-4 all year, but nothing here depends on that.
"""

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone

from billing.money import CENT
from members import services as members_services


def local_zone() -> datetime.tzinfo:
    return timezone.get_default_timezone()


def local_today() -> datetime.date:
    """Return today in the space's time zone, from the clock the members and billing use."""
    return members_services.local_today()


def last_bookable_day() -> datetime.date:
    """Return the last day a room can be booked, CPR_BOOKING_HORIZON_DAYS after today."""
    return local_today() + datetime.timedelta(days=settings.CPR_BOOKING_HORIZON_DAYS)


def local_day(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(local_zone()).date()


def local_midnight(day: datetime.date) -> datetime.datetime:
    """Return the aware start of `day` in the space's time zone."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=local_zone())


@dataclass(frozen=True)
class DayWindow:
    """The bookable stretch of one local day: from `opens` to `closes`, both in UTC.

    Python compares and subtracts two datetimes with the same tzinfo by their wall-clock
    fields, which is wrong across an offset change, so windows and slots stay in UTC.
    """

    day: datetime.date
    opens: datetime.datetime
    closes: datetime.datetime


def day_window(hours_by_weekday: dict, day: datetime.date) -> DayWindow | None:
    """Return the window of `day` from {weekday: RoomHours}, or None when the room is closed."""
    hours = hours_by_weekday.get(day.weekday())
    if hours is None:
        return None
    zone = local_zone()
    opens = datetime.datetime.combine(day, hours.opens_at, tzinfo=zone)
    closes = datetime.datetime.combine(day, hours.closes_at, tzinfo=zone)
    return DayWindow(day=day, opens=to_utc(opens), closes=to_utc(closes))


def to_utc(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC)


def slot_starts(window: DayWindow, slot_minutes: int) -> list[datetime.datetime]:
    """Return the start of each whole slot in the window, stepping in UTC."""
    step = datetime.timedelta(minutes=slot_minutes)
    start = window.opens
    starts = []
    while start + step <= window.closes:
        starts.append(start)
        start += step
    return starts


def price_for(hourly_rate: Decimal, minutes: int) -> Decimal:
    """Return the price of `minutes` at `hourly_rate`, rounded to the cent."""
    return (hourly_rate * minutes / 60).quantize(CENT, rounding=ROUND_HALF_UP)
