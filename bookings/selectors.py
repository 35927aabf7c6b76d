"""Read-side queries of meeting rooms that the portal pages and the calendar feed share.

Each function issues a fixed number of queries whatever the number of bookings, so a
busy week costs what an empty one does.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from members.models import Member

from . import availability
from .models import Booking, Room, RoomHours

# How many past and cancelled bookings "My bookings" lists, newest first.
RECENT_BOOKINGS_LIMIT = 20
# How far back the calendar feed goes; calendar apps keep what they fetched before.
FEED_HISTORY_DAYS = 90


def active_rooms() -> QuerySet[Room]:
    """Return the rooms open for bookings, each with its hours (two queries)."""
    return Room.objects.filter(is_active=True).prefetch_related(
        Prefetch("hours", queryset=RoomHours.objects.order_by("weekday"))
    )


def active_room(pk: int) -> Room | None:
    return active_rooms().filter(pk=pk).first()


@dataclass(frozen=True)
class Slot:
    """One slot of a room's day: free, taken by someone, taken by the member, or past."""

    start: datetime.datetime
    end: datetime.datetime
    taken: bool
    mine: bool
    past: bool

    @property
    def bookable(self) -> bool:
        return not self.taken and not self.past


@dataclass(frozen=True)
class Day:
    """A local day of a room: its bookable window (None when closed) and its slots."""

    day: datetime.date
    window: availability.DayWindow | None
    slots: list[Slot] = field(default_factory=list)

    @property
    def free_count(self) -> int:
        return sum(1 for slot in self.slots if slot.bookable)


def room_days(
    room: Room,
    days: list[datetime.date],
    *,
    member: Member | None = None,
    now: datetime.datetime | None = None,
) -> list[Day]:
    """Return the slots of `room` on each of `days`, in one query for the bookings.

    `room.hours` should be prefetched (see `active_rooms`); otherwise reading them costs
    one more query. A slot is taken when any confirmed booking overlaps it.
    """
    now = now or timezone.now()
    hours = {entry.weekday: entry for entry in room.hours.all()}
    windows = [availability.day_window(hours, day) for day in days]
    open_windows = [window for window in windows if window is not None]
    bookings = []
    if open_windows:
        first = min(window.opens for window in open_windows)
        last = max(window.closes for window in open_windows)
        bookings = list(
            Booking.objects.filter(
                room=room, status=Booking.Status.CONFIRMED, start__lt=last, end__gt=first
            )
            .order_by("start")
            .only("start", "end", "member_id")
        )

    result = []
    for day, window in zip(days, windows, strict=True):
        if window is None:
            result.append(Day(day=day, window=None))
            continue
        step = datetime.timedelta(minutes=room.slot_minutes)
        slots = []
        for start in availability.slot_starts(window, room.slot_minutes):
            end = start + step
            overlapping = [b for b in bookings if b.start < end and b.end > start]
            slots.append(
                Slot(
                    start=start,
                    end=end,
                    taken=bool(overlapping),
                    mine=member is not None and any(b.member_id == member.pk for b in overlapping),
                    past=start <= now,
                )
            )
        result.append(Day(day=day, window=window, slots=slots))
    return result


def week_start(day: datetime.date) -> datetime.date:
    """Return the Monday of the week that contains `day`."""
    return day - datetime.timedelta(days=day.weekday())


@dataclass(frozen=True)
class MemberBookings:
    upcoming: list[Booking]
    recent: list[Booking]
    more_recent: bool


def member_bookings(member: Member, *, now: datetime.datetime | None = None) -> MemberBookings:
    """Return the member's upcoming confirmed bookings and the latest others (two queries)."""
    now = now or timezone.now()
    mine = Booking.objects.filter(member=member).select_related("room")
    upcoming = list(
        mine.filter(status=Booking.Status.CONFIRMED, end__gt=now).order_by("start", "id")
    )
    recent = list(
        mine.exclude(status=Booking.Status.CONFIRMED, end__gt=now).order_by("-start", "-id")[
            : RECENT_BOOKINGS_LIMIT + 1
        ]
    )
    return MemberBookings(
        upcoming=upcoming,
        recent=recent[:RECENT_BOOKINGS_LIMIT],
        more_recent=len(recent) > RECENT_BOOKINGS_LIMIT,
    )


def feed_bookings(member: Member, *, now: datetime.datetime | None = None) -> list[Booking]:
    """Return the member's bookings for the calendar feed: confirmed and cancelled ones.

    Cancelled bookings stay in the feed with STATUS:CANCELLED, so calendar apps remove
    the event they showed before.
    """
    since = (now or timezone.now()) - datetime.timedelta(days=FEED_HISTORY_DAYS)
    return list(
        Booking.objects.filter(member=member, end__gte=since)
        .select_related("room")
        .order_by("start", "id")
    )
