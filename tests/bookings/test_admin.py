"""Back office of meeting rooms: rooms, the bookings list, staff booking and cancelling."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from billing import selectors as billing_selectors
from bookings import services
from bookings.models import Booking, Room
from members.admin.base import REASON_STEP_FIELD
from tests.factories.bookings import RoomFactory

from .conftest import START, at

pytestmark = pytest.mark.django_db

TUESDAY = START + datetime.timedelta(days=1)
CHANGELIST = reverse("admin:bookings_booking_changelist")


def test_room_added_with_hours(staff_client, now):
    response = staff_client.post(
        reverse("admin:bookings_room_add"),
        {
            "name": "Sala Yunque",
            "capacity": "4",
            "description": "",
            "sort_order": "0",
            "hourly_rate": "30.00",
            "slot_minutes": "30",
            "min_minutes": "60",
            "max_minutes": "180",
            "is_active": "on",
            "hours-TOTAL_FORMS": "1",
            "hours-INITIAL_FORMS": "0",
            "hours-MIN_NUM_FORMS": "0",
            "hours-MAX_NUM_FORMS": "1000",
            "hours-0-weekday": "1",
            "hours-0-opens_at": "09:00",
            "hours-0-closes_at": "17:00",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    room = Room.objects.get(name="Sala Yunque")
    assert [(h.weekday, h.opens_at) for h in room.hours.all()] == [(1, datetime.time(9))]


def test_room_lengths_must_fit_slots(staff_client, now):
    response = staff_client.post(
        reverse("admin:bookings_room_add"),
        {
            "name": "Sala Yunque",
            "capacity": "4",
            "sort_order": "0",
            "hourly_rate": "30.00",
            "slot_minutes": "30",
            "min_minutes": "45",
            "max_minutes": "180",
            "hours-TOTAL_FORMS": "0",
            "hours-INITIAL_FORMS": "0",
            "hours-MIN_NUM_FORMS": "0",
            "hours-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 200
    assert b"not a whole number of 30-minute slots" in response.content
    assert not Room.objects.exists()


def test_changelist_filters_room_and_date(staff_client, member, other_member, room):
    other_room = RoomFactory(name="Sala Yunque")
    wednesday = TUESDAY + datetime.timedelta(days=1)
    services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))
    services.book_room(member=member, room=room, start=at(wednesday, 10), end=at(wednesday, 11))
    services.book_room(
        member=other_member, room=other_room, start=at(TUESDAY, 10), end=at(TUESDAY, 11)
    )

    by_room = staff_client.get(CHANGELIST, {"room__id__exact": room.pk})
    by_day = staff_client.get(
        CHANGELIST,
        {"start__gte": f"{TUESDAY} 00:00:00-04:00", "start__lt": f"{wednesday} 00:00:00-04:00"},
    )

    assert by_room.context["cl"].result_count == 2
    assert by_day.context["cl"].result_count == 2
    assert {b.room_id for b in by_day.context["cl"].result_list} == {room.pk, other_room.pk}


def test_staff_books_for_member(staff_client, staff_user, member, room):
    response = staff_client.post(
        reverse("admin:bookings_booking_book"),
        {
            "member": member.pk,
            "room_choice": room.pk,
            "date": TUESDAY.isoformat(),
            "start_time": "10:00",
            "minutes": "120",
        },
    )

    assert response.status_code == 302
    booking = Booking.objects.get()
    assert booking.member == member
    assert booking.booked_by == staff_user
    assert booking.credit_used == Decimal("50.00")
    assert billing_selectors.credit_balance(member) == Decimal("100.00")


def test_staff_booking_follows_rules(staff_client, member, room):
    response = staff_client.post(
        reverse("admin:bookings_booking_book"),
        {
            "member": member.pk,
            "room_choice": room.pk,
            "date": TUESDAY.isoformat(),
            "start_time": "17:00",
            "minutes": "120",
        },
    )

    assert response.status_code == 200
    assert b"outside the bookable hours" in response.content
    assert not Booking.objects.exists()


def test_staff_booking_beyond_horizon_rejected(staff_client, member, room, settings):
    settings.CPR_BOOKING_HORIZON_DAYS = 90

    response = staff_client.post(
        reverse("admin:bookings_booking_book"),
        {
            "member": member.pk,
            "room_choice": room.pk,
            "date": "9999-12-31",
            "start_time": "23:30",
            "minutes": "120",
        },
    )

    assert response.status_code == 200
    assert b"Rooms can be booked up to 90 days ahead" in response.content
    assert not Booking.objects.exists()


def test_cancel_action_asks_reason(staff_client, staff_user, member, room):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )
    selection = {"action": "cancel_selected", ACTION_CHECKBOX_NAME: [booking.pk]}

    first = staff_client.post(CHANGELIST, selection)
    missing = staff_client.post(CHANGELIST, {**selection, REASON_STEP_FIELD: "1", "reason": ""})
    done = staff_client.post(
        CHANGELIST, {**selection, REASON_STEP_FIELD: "1", "reason": "Room needed for an event"}
    )

    assert first.status_code == 200
    assert b"Reason for cancelling" in first.content
    assert b"Give a reason" in missing.content
    assert done.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert booking.cancel_reason == "Room needed for an event"
    assert booking.cancelled_by == staff_user
    assert billing_selectors.credit_balance(member) == Decimal("150.00")


def test_refund_action_after_cutoff(staff_client, member, room, time_machine):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )
    time_machine.move_to(at(TUESDAY, 8), tick=False)

    staff_client.post(
        CHANGELIST,
        {
            "action": "cancel_with_refund_selected",
            ACTION_CHECKBOX_NAME: [booking.pk],
            REASON_STEP_FIELD: "1",
            "reason": "Air conditioning broken",
        },
    )

    booking.refresh_from_db()
    assert booking.charge_kept is False
    assert billing_selectors.credit_balance(member) == Decimal("150.00")


def test_booking_page_read_only(staff_client, member, room):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )

    page = staff_client.get(reverse("admin:bookings_booking_change", args=[booking.pk]))

    assert page.status_code == 200
    assert b'name="price"' not in page.content
    assert staff_client.get(reverse("admin:bookings_booking_add")).status_code == 403
