"""Member portal pages of meeting rooms and the private calendar feed."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from icalendar import Calendar

from billing import selectors as billing_selectors
from billing.services import suspend_overdue_memberships
from bookings import services
from bookings.models import Booking, CalendarFeed
from members.models import Membership
from tests.factories import MembershipFactory, MemberWithUserFactory
from tests.factories.bookings import RoomFactory

from .conftest import START, at, paid_member

pytestmark = pytest.mark.django_db

TUESDAY = START + datetime.timedelta(days=1)


def day_url(room, day):
    return reverse("bookings:room_day", args=[room.pk]) + f"?date={day.isoformat()}"


def week_url(room, day):
    return reverse("bookings:room_week", args=[room.pk]) + f"?week={day.isoformat()}"


def form_data(day, time, minutes, **extra):
    return {"date": day.isoformat(), "start_time": time, "minutes": str(minutes), **extra}


# --- Navigation -----------------------------------------------------------------------


def test_dashboard_links_to_rooms(member_client):
    response = member_client.get(reverse("members:portal_dashboard"))

    assert reverse("bookings:rooms").encode() in response.content
    assert reverse("bookings:my_bookings").encode() in response.content


def test_rooms_page_lists_active_rooms(member_client, room):
    RoomFactory(name="Closed room", is_active=False)

    response = member_client.get(reverse("bookings:rooms"))

    assert response.status_code == 200
    assert b"Sala Morro" in response.content
    assert b"Closed room" not in response.content
    assert b"$25.00 an hour" in response.content


def test_anonymous_sent_to_login(client, room):
    response = client.get(reverse("bookings:rooms"))

    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_inactive_room_pages_404(member_client):
    room = RoomFactory(is_active=False)

    assert member_client.get(day_url(room, TUESDAY)).status_code == 404
    assert member_client.get(reverse("bookings:book", args=[room.pk])).status_code == 404


# --- Day and week views ---------------------------------------------------------------


def test_day_view_free_and_taken(member_client, member, other_member, room):
    services.book_room(member=other_member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))
    services.book_room(member=member, room=room, start=at(TUESDAY, 14), end=at(TUESDAY, 15))

    response = member_client.get(day_url(room, TUESDAY))

    grid = response.context["grid"]
    assert len(grid.slots) == 20  # 08:00 to 18:00 in 30-minute slots
    taken = [slot.start for slot in grid.slots if slot.taken and not slot.mine]
    mine = [slot.start for slot in grid.slots if slot.mine]
    assert taken == [at(TUESDAY, 10), at(TUESDAY, 10, 30)]
    assert mine == [at(TUESDAY, 14), at(TUESDAY, 14, 30)]
    assert grid.free_count == 16
    content = response.content.decode()
    assert "Taken" in content
    assert "Your booking" in content
    assert f"?date={TUESDAY.isoformat()}&amp;time=09:00" in content


def test_day_view_past_slots_not_bookable(member_client, room):
    response = member_client.get(day_url(room, START))

    # The clock is at 09:00, so the 09:00 slot has started.
    slots = response.context["grid"].slots
    assert [slot.bookable for slot in slots[:4]] == [False, False, False, True]


def test_day_view_closed_day(member_client):
    room = RoomFactory(opening_hours={0: (datetime.time(8), datetime.time(12))})

    response = member_client.get(day_url(room, TUESDAY))

    assert b"cannot be booked on this day" in response.content


def test_week_view_shows_seven_days(member_client, member, room):
    services.book_room(member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))

    response = member_client.get(week_url(room, TUESDAY + datetime.timedelta(days=2)))

    days = response.context["days"]
    assert [day.day for day in days] == [START + datetime.timedelta(n) for n in range(7)]
    assert sum(1 for slot in days[1].slots if slot.mine) == 2
    assert len(response.context["rows"]) == 20


def test_week_view_queries_constant(member_client, member, room, hot_desk):
    url = week_url(room, TUESDAY)
    member_client.get(url)
    with CaptureQueriesContext(connection) as few:
        member_client.get(url)

    others = [paid_member(hot_desk, email=f"busy{n}@example.com") for n in range(6)]
    for day in range(1, 7):
        for index, hour in enumerate(range(8, 18, 2)):
            services.book_room(
                member=others[index % len(others)],
                room=room,
                start=at(START + datetime.timedelta(days=day), hour),
                end=at(START + datetime.timedelta(days=day), hour + 1),
            )
    assert Booking.objects.count() == 30

    with CaptureQueriesContext(connection) as many:
        response = member_client.get(url)

    assert response.status_code == 200
    assert len(many) == len(few)


def test_day_view_queries_constant(member_client, member, other_member, room):
    url = day_url(room, TUESDAY)
    member_client.get(url)
    with CaptureQueriesContext(connection) as few:
        member_client.get(url)
    for hour in range(8, 18):
        services.book_room(
            member=other_member, room=room, start=at(TUESDAY, hour), end=at(TUESDAY, hour, 30)
        )

    with CaptureQueriesContext(connection) as many:
        member_client.get(url)

    assert len(many) == len(few)


# --- Booking form ---------------------------------------------------------------------


def test_form_prefilled_from_slot(member_client, room):
    url = reverse("bookings:book", args=[room.pk]) + f"?date={TUESDAY}&time=10:00"

    response = member_client.get(url)

    assert response.status_code == 200
    assert response.context["form"].initial["start_time"] == "10:00"


def test_preview_shows_price_without_booking(member_client, member, room):
    url = reverse("bookings:book", args=[room.pk])

    response = member_client.post(url, form_data(TUESDAY, "10:00", 120))

    assert response.status_code == 200
    assert not Booking.objects.exists()
    quote = response.context["quote"]
    assert (quote.price, quote.credit_used, quote.overage) == (
        Decimal("50.00"),
        Decimal("50.00"),
        Decimal("0.00"),
    )
    content = response.content.decode()
    assert "$50.00" in content
    assert "$100.00" in content  # credit left
    assert 'name="confirm"' in content


def test_confirm_books_and_spends_credit(member_client, member, room):
    url = reverse("bookings:book", args=[room.pk])

    response = member_client.post(url, form_data(TUESDAY, "10:00", 120, confirm="1"))

    assert response.status_code == 302
    assert response["Location"] == reverse("bookings:my_bookings")
    booking = Booking.objects.get()
    assert booking.start == at(TUESDAY, 10)
    assert booking.end == at(TUESDAY, 12)
    assert booking.booked_by == member.user
    assert billing_selectors.credit_balance(member) == Decimal("100.00")
    page = member_client.get(response["Location"])
    assert b"$50.00 was taken from your credit" in page.content


def test_preview_shows_overage(member_client, member, room):
    services.book_room(member=member, room=room, start=at(TUESDAY, 8), end=at(TUESDAY, 12))
    services.book_room(member=member, room=room, start=at(TUESDAY, 12), end=at(TUESDAY, 14))

    response = member_client.post(
        reverse("bookings:book", args=[room.pk]), form_data(TUESDAY, "14:00", 120)
    )

    quote = response.context["quote"]
    assert quote.credit_used == Decimal("0.00")
    assert quote.overage == Decimal("50.00")
    assert b"Charged on your next invoice" in response.content


def test_preview_of_refused_overage(now, client, room):
    from tests.factories import PlanFactory

    member = paid_member(PlanFactory(included_credit=Decimal("30.00"), allows_overage=False))
    client.force_login(member.user)

    response = client.post(
        reverse("bookings:book", args=[room.pk]), form_data(TUESDAY, "10:00", 120)
    )

    assert b"$20.00 is missing" in response.content
    assert b'name="confirm"' not in response.content


def test_taken_slot_on_confirm_keeps_input(member_client, other_member, room):
    services.book_room(member=other_member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))

    response = member_client.post(
        reverse("bookings:book", args=[room.pk]), form_data(TUESDAY, "10:00", 60, confirm="1")
    )

    assert response.status_code == 200
    assert b"already booked" in response.content
    assert b"<h2>Not booked</h2>" in response.content
    assert b"Your form was not sent." not in response.content
    assert b"a.m.." not in response.content
    assert response.context["form"]["start_time"].value() == "10:00"
    assert Booking.objects.count() == 1


def test_rule_error_shown_on_form(member_client, room):
    response = member_client.post(
        reverse("bookings:book", args=[room.pk]), form_data(TUESDAY, "17:30", 60)
    )

    assert response.status_code == 200
    assert b"outside the bookable hours" in response.content


def test_suspended_member_sees_reason(client, member, room):
    member.memberships.update(
        state=Membership.State.PAST_DUE, grace_until=START - datetime.timedelta(days=1)
    )
    suspend_overdue_memberships()
    client.force_login(member.user)

    page = client.get(reverse("bookings:rooms"))
    response = client.post(
        reverse("bookings:book", args=[room.pk]), form_data(TUESDAY, "10:00", 60, confirm="1")
    )

    assert b"suspended because a payment is overdue" in page.content
    assert b"suspended because a payment is overdue" in response.content
    assert not Booking.objects.exists()


@pytest.mark.parametrize("time", ["12:00:30", "12:00:00.5", "12:00:00"])
def test_start_time_with_seconds_rejected(member_client, room, time):
    url = reverse("bookings:book", args=[room.pk])

    preview = member_client.post(url, form_data(TUESDAY, time, 60))
    confirm = member_client.post(url, form_data(TUESDAY, time, 60, confirm="1"))

    for response in (preview, confirm):
        assert response.status_code == 200
        assert "quote" not in response.context
        errors = response.context["form"].errors["start_time"]
        assert errors == ["Enter the start time as hours and minutes, such as 10:30."]
    assert not Booking.objects.exists()


def test_form_offers_hours_and_minutes(member_client, room):
    response = member_client.get(reverse("bookings:book", args=[room.pk]))

    assert 'step="1800"' in response.content.decode()
    assert response.context["form"].fields["start_time"].input_formats == ["%H:%M"]


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("9999-12-31", "is too far ahead. Rooms can be booked up to 90 days ahead, until"),
        ("0001-01-01", "has passed. Choose today or a later day."),
        (START - datetime.timedelta(days=1), "has passed. Choose today or a later day."),
        (START + datetime.timedelta(days=91), "Rooms can be booked up to 90 days ahead"),
    ],
)
def test_date_outside_horizon_rejected(member_client, room, settings, day, message):
    settings.CPR_BOOKING_HORIZON_DAYS = 90
    day = day if isinstance(day, str) else day.isoformat()
    url = reverse("bookings:book", args=[room.pk])

    response = member_client.post(url, {**form_data(TUESDAY, "23:30", 120), "date": day})

    assert response.status_code == 200
    [error] = response.context["form"].errors["date"]
    assert message in error
    assert not Booking.objects.exists()


def test_last_bookable_day_accepted(member_client, room, settings):
    settings.CPR_BOOKING_HORIZON_DAYS = 90
    last_day = START + datetime.timedelta(days=90)

    response = member_client.post(
        reverse("bookings:book", args=[room.pk]), form_data(last_day, "10:00", 60)
    )

    assert response.status_code == 200
    assert response.context["quote"].start == at(last_day, 10)


def test_views_clamp_dates_to_horizon(member_client, room, settings):
    settings.CPR_BOOKING_HORIZON_DAYS = 90
    last_day = START + datetime.timedelta(days=90)
    day = reverse("bookings:room_day", args=[room.pk])
    week = reverse("bookings:room_week", args=[room.pk])

    latest_day = member_client.get(day + "?date=9999-12-31")
    earliest_day = member_client.get(day + "?date=0001-01-01")
    latest_week = member_client.get(week + "?week=9999-12-31")
    earliest_week = member_client.get(week + "?week=0001-01-01")

    for response in (latest_day, earliest_day, latest_week, earliest_week):
        assert response.status_code == 200
    assert latest_day.context["grid"].day == last_day
    assert latest_day.context["next"] is None
    assert latest_day.context["previous"] == last_day - datetime.timedelta(days=1)
    assert earliest_day.context["grid"].day == START
    assert earliest_day.context["previous"] is None
    assert b'rel="prev"' not in earliest_day.content
    assert latest_week.context["days"][0].day == last_day - datetime.timedelta(
        days=last_day.weekday()
    )
    assert latest_week.context["next"] is None
    assert b'rel="next"' not in latest_week.content
    assert earliest_week.context["days"][0].day == START  # a Monday
    assert earliest_week.context["previous"] is None


def test_booked_message_has_one_full_stop(member_client, room):
    response = member_client.post(
        reverse("bookings:book", args=[room.pk]),
        form_data(TUESDAY, "10:00", 60, confirm="1"),
        follow=True,
    )

    content = response.content.decode()
    assert "Your booking of Sala Morro for March 3, 2026, 10 a.m. to 11 a.m. is confirmed." in (
        content
    )
    assert "a.m.." not in content


# --- My bookings and cancelling -------------------------------------------------------


def test_my_bookings_lists_and_cancels(member_client, member, room):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )
    page = member_client.get(reverse("bookings:my_bookings"))
    assert b"Sala Morro" in page.content
    cancel_url = reverse("bookings:cancel", args=[booking.pk])
    assert cancel_url.encode() in page.content

    confirm = member_client.get(cancel_url)
    assert b"$50.00 of credit comes back" in confirm.content
    response = member_client.post(cancel_url)

    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert billing_selectors.credit_balance(member) == Decimal("150.00")


def test_late_cancel_page_warns(member_client, member, room, time_machine):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )
    time_machine.move_to(at(START, 18), tick=False)

    confirm = member_client.get(reverse("bookings:cancel", args=[booking.pk]))
    member_client.post(reverse("bookings:cancel", args=[booking.pk]))

    assert b"still charged" in confirm.content
    assert b"deadline passed on March 2, 2026, 10 a.m., so" in confirm.content
    assert b"a.m.." not in confirm.content
    booking.refresh_from_db()
    assert booking.charge_kept is True


def test_other_members_booking_404(member_client, other_member, room):
    booking = services.book_room(
        member=other_member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11)
    )

    assert member_client.get(reverse("bookings:cancel", args=[booking.pk])).status_code == 404
    assert member_client.post(reverse("bookings:cancel", args=[booking.pk])).status_code == 404
    booking.refresh_from_db()
    assert booking.is_confirmed


def test_my_bookings_queries_constant(member_client, member, room):
    url = reverse("bookings:my_bookings")
    member_client.get(url)
    with CaptureQueriesContext(connection) as few:
        member_client.get(url)
    for day in range(1, 6):
        services.book_room(
            member=member,
            room=room,
            start=at(START + datetime.timedelta(days=day), 8),
            end=at(START + datetime.timedelta(days=day), 9),
        )

    with CaptureQueriesContext(connection) as many:
        member_client.get(url)

    assert len(many) == len(few)


# --- Calendar feed --------------------------------------------------------------------


def feed_url(member) -> str:
    feed = services.calendar_feed(member)
    return reverse("bookings:calendar_feed", kwargs={"token": feed.token})


def test_feed_is_valid_icalendar(client, member, room):
    long_name = "Sala de conferencias del Viejo San Juan con vista a la bahía y pizarra"
    room.name = long_name
    room.save()
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )

    response = client.get(feed_url(member))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.content
    lines = body.split(b"\r\n")
    assert body.endswith(b"\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in lines)
    assert any(line.startswith(b" ") for line in lines)  # the long summary is folded
    assert lines[0] == b"BEGIN:VCALENDAR"
    assert b"VERSION:2.0" in lines
    assert b"DTSTART:20260303T140000Z" in lines
    assert b"DTEND:20260303T160000Z" in lines
    assert b"DTSTAMP:20260302T130000Z" in lines
    assert f"UID:booking-{booking.pk}@127.0.0.1".encode() in lines

    [event] = Calendar.from_ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == f"Meeting room: {long_name}"
    assert event.decoded("DTSTART") == at(TUESDAY, 10)
    assert str(event["STATUS"]) == "CONFIRMED"


def test_feed_marks_cancelled(client, member, room):
    booking = services.book_room(
        member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 12)
    )
    services.cancel_booking(booking=booking, actor=None)

    [event] = Calendar.from_ical(client.get(feed_url(member)).content).walk("VEVENT")

    assert str(event["STATUS"]) == "CANCELLED"
    assert event["SEQUENCE"] == 1


def test_feed_has_only_own_bookings(client, member, other_member, room):
    services.book_room(member=other_member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11))

    calendar = Calendar.from_ical(client.get(feed_url(member)).content)

    assert calendar.walk("VEVENT") == []


def test_rotate_revokes_old_address(member_client, member):
    old = feed_url(member)

    response = member_client.post(reverse("bookings:rotate_feed"))

    assert response.status_code == 302
    assert member_client.get(old).status_code == 404
    new = feed_url(member)
    assert new != old
    assert member_client.get(new).status_code == 200
    assert CalendarFeed.objects.get(member=member).rotated_at is not None


def test_unknown_token_404(client, db):
    assert client.get("/calendar/not-a-token.ics").status_code == 404


def test_my_bookings_shows_feed_address(member_client, member):
    response = member_client.get(reverse("bookings:my_bookings"))

    token = CalendarFeed.objects.get(member=member).token
    assert f"http://testserver/calendar/{token}.ics".encode() in response.content


def test_non_member_login_gets_not_a_member(client, db):
    user = MemberWithUserFactory().user
    user.member.delete()
    client.force_login(user)

    response = client.get(reverse("bookings:rooms"))

    assert response.status_code == 403


def test_pending_membership_rooms_page(client, now, room):
    member = MemberWithUserFactory()
    MembershipFactory(member=member)
    client.force_login(member.user)

    response = client.get(reverse("bookings:rooms"))

    assert b"once the first payment is received" in response.content
