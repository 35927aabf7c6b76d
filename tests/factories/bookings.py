"""factory-boy factories for meeting rooms."""

import datetime
from decimal import Decimal

import factory

from bookings.models import Room, RoomHours


class RoomFactory(factory.django.DjangoModelFactory):
    """A $25/hour room bookable every day from 08:00 to 18:00, in 30-minute slots."""

    class Meta:
        model = Room
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Room {n}")
    capacity = 6
    hourly_rate = Decimal("25.00")
    slot_minutes = 30
    min_minutes = 30
    max_minutes = 240

    @factory.post_generation
    def opening_hours(room, create, extracted, **kwargs):
        """Create hours for each weekday; pass opening_hours={weekday: (open, close)} to choose."""
        if not create:
            return
        hours = extracted
        if hours is None:
            hours = {day: (datetime.time(8), datetime.time(18)) for day in range(7)}
        for weekday, (opens_at, closes_at) in hours.items():
            RoomHours.objects.create(
                room=room, weekday=weekday, opens_at=opens_at, closes_at=closes_at
            )
