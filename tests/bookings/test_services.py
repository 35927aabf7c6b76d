"""Booking and cancelling through `bookings.services`: times, eligibility and money."""

import datetime
from decimal import Decimal

import pytest

from billing import selectors as billing_selectors
from billing.models import CreditEntry, Invoice, InvoiceItem
from billing.services import BillingError, record_manual_payment, suspend_overdue_memberships
from bookings import services
from bookings.models import Booking
from members import services as members_services
from members.models import Membership
from outbox.models import OutboxEmail
from tests.factories import PlanFactory
from tests.factories.billing import CreditLotFactory
from tests.factories.bookings import RoomFactory

from .conftest import PERIOD_END, START, at, paid_member

pytestmark = pytest.mark.django_db

TUESDAY = START + datetime.timedelta(days=1)
Kind = CreditEntry.Kind


def book(member, room, start, end, **kwargs) -> Booking:
    return services.book_room(member=member, room=room, start=start, end=end, **kwargs)


def balance(member) -> Decimal:
    return billing_selectors.credit_balance(member)


def entries(member, kind) -> list[CreditEntry]:
    return list(CreditEntry.objects.filter(member=member, kind=kind).order_by("id"))


# --- Done when ----------------------------------------------------------------------------


def test_hot_desk_member_books_two_hours(member, other_member, room, hot_desk):
    assert member.memberships.get().plan == hot_desk
    assert balance(member) == Decimal("150.00")

    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))

    assert booking.price == Decimal("50.00")
    assert booking.credit_used == Decimal("50.00")
    assert booking.overage == Decimal("0.00")
    assert balance(member) == Decimal("100.00")
    [spend] = entries(member, Kind.SPEND)
    assert spend.amount == Decimal("-50.00")
    assert spend.reference == f"booking:{booking.pk}"

    with pytest.raises(services.BookingConflictError, match="Sala Morro is already booked"):
        book(other_member, room, at(TUESDAY, 11), at(TUESDAY, 13))

    assert Booking.objects.count() == 1
    assert balance(other_member) == Decimal("150.00")
    assert entries(other_member, Kind.SPEND) == []


def test_booking_queues_confirmation(member, room, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))

    email = OutboxEmail.objects.get(template="booking_confirmed")
    assert email.recipient == "ana@example.com"
    assert email.dedupe_key == f"booking_confirmed:booking:{booking.pk}"
    assert email.context["price"] == "50.00"


# --- Times --------------------------------------------------------------------------------


def test_back_to_back_bookings_allowed(member, other_member, room):
    first = book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))
    second = book(other_member, room, at(TUESDAY, 11), at(TUESDAY, 12))

    assert first.end == second.start
    assert Booking.objects.filter(status=Booking.Status.CONFIRMED).count() == 2


def test_same_time_other_room_allowed(member, other_member, room):
    other_room = RoomFactory(name="Sala Viejo San Juan")

    book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))
    book(other_member, other_room, at(TUESDAY, 10), at(TUESDAY, 11))

    assert Booking.objects.count() == 2


def test_cancelled_booking_frees_slot(member, other_member, room):
    first = book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))
    services.cancel_booking(booking=first, actor=None)

    second = book(other_member, room, at(TUESDAY, 10), at(TUESDAY, 11))

    assert second.is_confirmed


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ((17, 30), (18, 30), "outside the bookable hours"),
        ((7, 30), (8, 30), "outside the bookable hours"),
        ((10, 15), (11, 15), "30-minute slots"),
        ((10, 0), (10, 45), "30-minute slots"),
        ((10, 0), (15, 0), "at most 240 minutes"),
        ((11, 0), (10, 0), "must end after it starts"),
    ],
)
def test_times_outside_rules_rejected(member, room, start, end, message):
    with pytest.raises(services.BookingError, match=message):
        book(member, room, at(TUESDAY, *start), at(TUESDAY, *end))

    assert not Booking.objects.exists()
    assert balance(member) == Decimal("150.00")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(TUESDAY, 12) + datetime.timedelta(seconds=30), at(TUESDAY, 13, 0)),
        (
            at(TUESDAY, 12) + datetime.timedelta(seconds=30),
            at(TUESDAY, 13) + datetime.timedelta(seconds=30),
        ),
        (
            at(TUESDAY, 12) + datetime.timedelta(microseconds=500_000),
            at(TUESDAY, 13) + datetime.timedelta(microseconds=500_000),
        ),
        (at(TUESDAY, 12), at(TUESDAY, 13) + datetime.timedelta(seconds=1)),
    ],
)
def test_times_off_grid_by_seconds_rejected(member, room, start, end):
    with pytest.raises(services.BookingError, match="30-minute slots"):
        book(member, room, start, end)
    with pytest.raises(services.BookingError, match="30-minute slots"):
        services.quote_booking(member=member, room=room, start=start, end=end)

    assert not Booking.objects.exists()


def test_shorter_than_minimum_rejected(member):
    room = RoomFactory(min_minutes=60)

    with pytest.raises(services.BookingError, match="at least 60 minutes; 30 minutes is too short"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 10, 30))


def test_closed_weekday_rejected(member):
    weekdays_only = {day: (datetime.time(8), datetime.time(18)) for day in range(5)}
    room = RoomFactory(opening_hours=weekdays_only)
    saturday = START + datetime.timedelta(days=5)

    with pytest.raises(services.BookingError, match="cannot be booked on Saturday"):
        book(member, room, at(saturday, 10), at(saturday, 11))


def test_past_start_rejected(member, room, now):
    with pytest.raises(services.BookingError, match="already started"):
        book(member, room, at(START, 8, 30), at(START, 9, 30))


def test_beyond_horizon_rejected(member, room, settings):
    settings.CPR_BOOKING_HORIZON_DAYS = 7
    later = START + datetime.timedelta(days=8)

    with pytest.raises(services.BookingError, match="up to 7 days ahead"):
        book(member, room, at(later, 10), at(later, 11))


def test_inactive_room_rejected(member):
    room = RoomFactory(is_active=False)

    with pytest.raises(services.BookingError, match="not open for bookings"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))


def test_slots_follow_offset_changes(member, settings, time_machine):
    # New York moves its clocks from 02:00 to 03:00 on Sunday 8 March 2026, so a room
    # open from midnight to 06:00 is open five real hours that day.
    settings.TIME_ZONE = "America/New_York"
    sunday = datetime.date(2026, 3, 8)
    time_machine.move_to(at(datetime.date(2026, 3, 6), 9), tick=False)
    room = RoomFactory(max_minutes=360, opening_hours={6: (datetime.time(0), datetime.time(6))})

    booking = book(member, room, at(sunday, 1), at(sunday, 4))

    assert booking.end.astimezone(datetime.UTC) - booking.start.astimezone(
        datetime.UTC
    ) == datetime.timedelta(hours=2)
    assert booking.price == Decimal("50.00")
    with pytest.raises(services.BookingError, match="outside the bookable hours"):
        book(member, room, at(sunday, 5), at(sunday, 7))


# --- Who can book -------------------------------------------------------------------------


def test_suspended_for_overdue_told_to_pay(member, room):
    member.memberships.update(
        state=Membership.State.PAST_DUE, grace_until=START - datetime.timedelta(days=1)
    )
    [suspended] = suspend_overdue_memberships()
    assert suspended.member == member

    with pytest.raises(services.NotEligibleError) as error:
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))

    assert "suspended because a payment is overdue" in str(error.value)
    assert "Pay the open invoice" in str(error.value)
    assert not Booking.objects.exists()


def test_staff_suspension_gives_no_reason(member, room, staff_user):
    membership = member.memberships.get()
    membership = members_services.mark_membership_past_due(membership=membership, actor=staff_user)
    members_services.suspend_membership(membership=membership, actor=staff_user, reason="Noise")

    with pytest.raises(services.NotEligibleError) as error:
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))

    message = str(error.value)
    assert "Your membership is suspended, so you cannot book" in message
    assert "overdue" not in message
    assert "Noise" not in message  # the staff's reason stays internal
    assert not Booking.objects.exists()


def test_suspension_without_event_neutral(member, room):
    member.memberships.update(state=Membership.State.SUSPENDED)

    with pytest.raises(services.NotEligibleError, match="suspended, so you cannot book"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))


def test_past_due_within_grace_can_book(member, room):
    member.memberships.update(
        state=Membership.State.PAST_DUE, grace_until=START + datetime.timedelta(days=2)
    )

    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))

    assert booking.is_confirmed


def test_past_due_after_grace_rejected(member, room):
    member.memberships.update(
        state=Membership.State.PAST_DUE, grace_until=START - datetime.timedelta(days=1)
    )

    with pytest.raises(services.NotEligibleError, match="grace period ended on March 1, 2026"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))


def test_pending_member_rejected(member, room):
    member.memberships.update(state=Membership.State.PENDING)

    with pytest.raises(services.NotEligibleError, match="first payment"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))


def test_member_without_membership_rejected(member, room):
    member.memberships.update(state=Membership.State.CANCELLED)

    with pytest.raises(services.NotEligibleError, match="no current membership"):
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))


# --- Money --------------------------------------------------------------------------------


def test_price_fixed_when_booked(member, room):
    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))
    room.hourly_rate = Decimal("40.00")
    room.save()

    booking.refresh_from_db()

    assert booking.price == Decimal("50.00")


def test_credit_exhaustion_charges_overage(member, room):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))  # $100
    second = book(member, room, at(TUESDAY, 12), at(TUESDAY, 16))  # $100, $50 of credit left

    assert second.credit_used == Decimal("50.00")
    assert second.overage == Decimal("50.00")
    assert balance(member) == Decimal("0.00")
    item = InvoiceItem.objects.get(reference=f"booking:{second.pk}")
    assert item.amount == Decimal("50.00")
    assert item.status == InvoiceItem.Status.PENDING
    assert item.membership == member.memberships.get()
    assert "Sala Morro" in item.description


def test_overage_reaches_next_invoice(member, room, time_machine):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))
    second = book(member, room, at(TUESDAY, 12), at(TUESDAY, 16))
    membership = member.memberships.get()
    time_machine.move_to(at(PERIOD_END, 9), tick=False)

    with pytest.raises(BillingError, match="does not match invoice"):
        record_manual_payment(
            membership=membership,
            amount=Decimal("250.00"),
            method="cash",
            reference="",
            received_at=PERIOD_END,
            actor=None,
        )
    payment = record_manual_payment(
        membership=membership,
        amount=Decimal("300.00"),
        method="cash",
        reference="",
        received_at=PERIOD_END,
        actor=None,
    )

    invoice = payment.invoice
    assert invoice.period_number == 2
    assert invoice.amount == Decimal("300.00")
    [item] = invoice.items.all()
    assert item.status == InvoiceItem.Status.INVOICED
    assert item.reference == f"booking:{second.pk}"


def test_plan_without_overage_rejects_with_missing(now, room):
    plan = PlanFactory(included_credit=Decimal("30.00"), allows_overage=False)
    member = paid_member(plan)

    with pytest.raises(services.OverageNotAllowedError, match=r"\$20.00 is missing") as caught:
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))

    assert caught.value.missing == Decimal("20.00")
    assert not Booking.objects.exists()
    assert entries(member, Kind.SPEND) == []
    assert not InvoiceItem.objects.exists()
    assert balance(member) == Decimal("30.00")


def test_plan_without_overage_books_within_credit(now, room):
    plan = PlanFactory(included_credit=Decimal("30.00"), allows_overage=False)
    member = paid_member(plan)

    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))

    assert booking.credit_used == Decimal("25.00")
    assert balance(member) == Decimal("5.00")


def test_quote_matches_booking(member, room):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))

    quote = services.quote_booking(
        member=member, room=room, start=at(TUESDAY, 12), end=at(TUESDAY, 16)
    )
    booking = book(member, room, at(TUESDAY, 12), at(TUESDAY, 16))

    assert (quote.price, quote.credit_used, quote.overage) == (
        booking.price,
        booking.credit_used,
        booking.overage,
    )
    assert quote.credit_left == Decimal("0.00")


# --- Cancelling ---------------------------------------------------------------------------


def test_early_cancel_returns_credit_and_overage(member, room, time_machine):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))
    booking = book(member, room, at(TUESDAY, 12), at(TUESDAY, 16))
    # 24 hours before the start is the last moment for a refund.
    time_machine.move_to(at(START, 12), tick=False)

    cancelled = services.cancel_booking(booking=booking, actor=member.user)

    assert cancelled.status == Booking.Status.CANCELLED
    assert cancelled.charge_kept is False
    assert cancelled.cancelled_by == member.user
    [refund] = CreditEntry.objects.filter(kind=Kind.REFUND, reference=f"booking:{booking.pk}")
    assert refund.amount == Decimal("50.00")
    assert balance(member) == Decimal("50.00")
    item = InvoiceItem.objects.get(reference=f"booking:{booking.pk}")
    assert item.status == InvoiceItem.Status.VOID
    assert OutboxEmail.objects.filter(template="booking_cancelled").count() == 1


def test_late_cancel_keeps_charge(member, room, time_machine):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))
    booking = book(member, room, at(TUESDAY, 12), at(TUESDAY, 16))
    time_machine.move_to(at(START, 12, 1), tick=False)

    cancelled = services.cancel_booking(booking=booking, actor=member.user)

    assert cancelled.charge_kept is True
    assert not CreditEntry.objects.filter(kind=Kind.REFUND).exists()
    assert balance(member) == Decimal("0.00")
    item = InvoiceItem.objects.get(reference=f"booking:{booking.pk}")
    assert item.status == InvoiceItem.Status.PENDING


def test_staff_refund_after_cutoff(member, room, staff_user, time_machine):
    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))
    time_machine.move_to(at(TUESDAY, 9), tick=False)

    cancelled = services.cancel_booking(
        booking=booking, actor=staff_user, reason="Projector broken", refund=True
    )

    assert cancelled.charge_kept is False
    assert cancelled.cancel_reason == "Projector broken"
    assert balance(member) == Decimal("150.00")


def test_cutoff_setting_respected(member, room, settings, time_machine):
    settings.CPR_BOOKING_CANCEL_CUTOFF_HOURS = 2
    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))
    time_machine.move_to(at(TUESDAY, 7, 30), tick=False)

    cancelled = services.cancel_booking(booking=booking, actor=None)

    assert cancelled.charge_kept is False


def test_cancel_twice_rejected(member, room):
    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))
    services.cancel_booking(booking=booking, actor=None)

    with pytest.raises(services.BookingError, match="already cancelled"):
        services.cancel_booking(booking=booking, actor=None)

    assert CreditEntry.objects.filter(kind=Kind.REFUND).count() == 1


def test_messages_after_times_have_one_full_stop(member, other_member, room):
    book(other_member, room, at(TUESDAY, 10), at(TUESDAY, 11))
    booking = book(member, room, at(TUESDAY, 14), at(TUESDAY, 15))
    services.cancel_booking(booking=booking, actor=None)

    with pytest.raises(services.BookingConflictError) as conflict:
        book(member, room, at(TUESDAY, 10), at(TUESDAY, 11))
    with pytest.raises(services.BookingError) as outside:
        book(member, room, at(TUESDAY, 17), at(TUESDAY, 19))
    with pytest.raises(services.BookingError) as cancelled:
        services.cancel_booking(booking=booking, actor=None)

    assert "10 a.m. to 11 a.m., so choose" in str(conflict.value)
    assert "8 a.m. to 6 p.m. on that day." in str(outside.value)
    assert "9 a.m., so there is nothing to cancel." in str(cancelled.value)
    for error in (conflict, outside, cancelled):
        assert ".." not in str(error.value)


def test_started_booking_not_cancelled(member, room, time_machine):
    booking = book(member, room, at(TUESDAY, 10), at(TUESDAY, 12))
    time_machine.move_to(at(TUESDAY, 10, 30), tick=False)

    with pytest.raises(services.BookingError, match="already started"):
        services.cancel_booking(booking=booking, actor=None)


def test_cancel_after_overage_invoiced_credits_next_invoice(member, room, time_machine):
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))
    later = START + datetime.timedelta(days=35)
    booking = book(member, room, at(later, 12), at(later, 16))
    membership = member.memberships.get()
    time_machine.move_to(at(PERIOD_END, 9), tick=False)
    record_manual_payment(
        membership=membership,
        amount=Decimal("300.00"),
        method="cash",
        reference="",
        received_at=PERIOD_END,
        actor=None,
    )

    services.cancel_booking(booking=booking, actor=None)

    credit = InvoiceItem.objects.get(reference=f"booking:{booking.pk}:reversal")
    assert credit.amount == Decimal("-50.00")
    assert credit.status == InvoiceItem.Status.PENDING
    assert Invoice.objects.get(period_number=2).amount == Decimal("300.00")


# --- Credit periods -----------------------------------------------------------------------


def test_booking_across_credit_period_end(member, room, time_machine):
    # The last day of the first period: its credit pays for a booking in the next period.
    time_machine.move_to(at(PERIOD_END - datetime.timedelta(days=1), 9), tick=False)
    day_after = PERIOD_END + datetime.timedelta(days=2)
    booking = book(member, room, at(day_after, 10), at(day_after, 12))
    [grant] = entries(member, Kind.GRANT)
    [spend] = entries(member, Kind.SPEND)
    assert spend.lot == grant
    assert grant.expires_on == PERIOD_END

    # The period ends; the unused credit expires, and an early cancellation returns the
    # spent part to the period it came from, where it expires at once.
    time_machine.move_to(at(PERIOD_END, 9), tick=False)
    balance_at_period_end = balance(member)
    services.cancel_booking(booking=booking, actor=None)

    assert balance_at_period_end == Decimal("0.00")
    assert booking.credit_used == Decimal("50.00")
    [refund] = entries(member, Kind.REFUND)
    assert refund.lot == grant
    assert refund.amount == Decimal("50.00")
    expired = CreditEntry.objects.get(kind=Kind.EXPIRE, reference=f"booking:{booking.pk}")
    assert expired.amount == Decimal("-50.00")
    assert balance(member) == Decimal("0.00")


def test_cancel_before_period_end_returns_usable_credit(member, room, time_machine):
    time_machine.move_to(at(PERIOD_END - datetime.timedelta(days=3), 9), tick=False)
    day_after = PERIOD_END + datetime.timedelta(days=2)
    booking = book(member, room, at(day_after, 10), at(day_after, 12))

    services.cancel_booking(booking=booking, actor=None)

    assert balance(member) == Decimal("150.00")
    assert not CreditEntry.objects.filter(kind=Kind.EXPIRE).exists()


def test_spend_draws_from_two_lots(member, room):
    extra = CreditLotFactory(
        member=member, amount=Decimal("40.00"), expires_on=PERIOD_END + datetime.timedelta(9)
    )
    book(member, room, at(TUESDAY, 8), at(TUESDAY, 12))  # $100 of the $150 grant
    booking = book(member, room, at(TUESDAY, 12), at(TUESDAY, 15))  # $75: $50 + $25

    spends = CreditEntry.objects.filter(reference=f"booking:{booking.pk}").order_by("id")
    assert [(entry.lot_id, entry.amount) for entry in spends] == [
        (entries(member, Kind.GRANT)[0].pk, Decimal("-50.00")),
        (extra.pk, Decimal("-25.00")),
    ]
    services.cancel_booking(booking=booking, actor=None)
    assert balance(member) == Decimal("90.00")
