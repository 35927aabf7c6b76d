"""Concurrent bookings of one room on PostgreSQL, and the exclusion constraint behind them."""

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.models import CreditEntry
from bookings import services
from bookings.models import Booking
from tests.concurrency import run_at_once
from tests.factories.bookings import RoomFactory

from .conftest import START, at, paid_member

TUESDAY = START + datetime.timedelta(days=1)
THREADS = 10


@pytest.fixture
def transactional_now(time_machine, transactional_db):
    moment = at(START, 9)
    time_machine.move_to(moment, tick=False)
    return moment


@pytest.mark.postgres
def test_ten_members_one_slot(transactional_now, hot_desk):
    room = RoomFactory(name="Sala Morro")
    members = [paid_member(hot_desk, email=f"member{n}@example.com") for n in range(THREADS)]
    queue = list(members)

    def attempt():
        member = queue.pop()
        services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))

    errors = run_at_once(THREADS, attempt)

    assert Booking.objects.count() == 1
    assert len(errors) == THREADS - 1
    assert all(isinstance(error, services.BookingConflictError) for error in errors), errors
    assert all("Sala Morro is already booked" in str(error) for error in errors)
    spends = CreditEntry.objects.filter(kind=CreditEntry.Kind.SPEND)
    assert spends.count() == 1
    booking = Booking.objects.get()
    assert spends.get().member_id == booking.member_id
    assert spends.get().amount == Decimal("-25.00")


@pytest.mark.postgres
def test_one_member_ten_tabs(transactional_now, hot_desk):
    room = RoomFactory(name="Sala Morro")
    member = paid_member(hot_desk)

    def attempt():
        services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12))

    errors = run_at_once(THREADS, attempt)

    assert Booking.objects.count() == 1
    assert len(errors) == THREADS - 1
    assert all(isinstance(error, services.BookingConflictError) for error in errors), errors
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.SPEND).count() == 1
    assert CreditEntry.objects.balance(member=member, today=START) == Decimal("100.00")


@pytest.mark.postgres
def test_exclusion_constraint_rejects_overlap(member, room):
    first = services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12))
    overlapping = {
        "member": member,
        "membership": first.membership,
        "room": room,
        "start": at(TUESDAY, 11),
        "end": at(TUESDAY, 13),
        "price": Decimal("50.00"),
        "credit_used": Decimal("50.00"),
    }

    with pytest.raises(IntegrityError, match="booking_no_overlap"), transaction.atomic():
        Booking.objects.create(**overlapping)

    adjacent = {**overlapping, "start": at(TUESDAY, 12), "end": at(TUESDAY, 13)}
    assert Booking.objects.create(**adjacent).pk
    first.status = Booking.Status.CANCELLED
    first.cancelled_at = first.start
    first.save()
    assert Booking.objects.create(**{**overlapping, "end": at(TUESDAY, 12)}).pk


@pytest.mark.postgres
def test_constraint_violation_reads_as_conflict(member, other_member, room, monkeypatch):
    services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12))
    # Skip the service's own check, as a race past it would, so the constraint decides.
    monkeypatch.setattr(services, "is_room_free", lambda **kwargs: True)

    with pytest.raises(services.BookingConflictError, match="Sala Morro is already booked"):
        services.book_room(
            member=other_member, room=room, start=at(TUESDAY, 11), end=at(TUESDAY, 12)
        )

    assert Booking.objects.count() == 1
    assert not CreditEntry.objects.filter(member=other_member, kind="spend").exists()


def test_overlap_check_without_constraint(member, other_member, room):
    """On every database the service's check under the room lock rejects the overlap."""
    services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12))

    with pytest.raises(services.BookingConflictError):
        services.book_room(
            member=other_member, room=room, start=at(TUESDAY, 9), end=at(TUESDAY, 10, 30)
        )
