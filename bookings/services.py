"""State changes of meeting rooms: booking, cancelling, and the calendar feed token.

Each function takes keyword arguments, runs in one transaction, and returns what it
changed. A broken rule raises `BookingError` with a message the member or staff can act
on, and changes nothing.

Money goes through `billing.services`: a booking spends the member's credit under the
reference `booking:<id>`, oldest-expiring lot first, and charges what the credit does
not cover as an invoice item on the membership's next invoice (when the plan allows
overage). Cancelling before the cut-off refunds that credit to its lots and withdraws
the charge; a later cancellation keeps both.

Two bookings of one room never overlap. The booking locks the room's row and checks for
an overlapping confirmed booking, so concurrent bookings of a room take turns (on
SQLite the IMMEDIATE transaction mode serialises writers instead). On PostgreSQL the
exclusion constraint `booking_no_overlap` backs that check, and its violation gives the
same message.
"""

import datetime
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.money import format_usd
from members import services as members_services
from members.models import Member, Membership, MembershipEvent

from . import availability, emails
from .models import NO_OVERLAP_CONSTRAINT, ZERO, Booking, CalendarFeed, Room

logger = logging.getLogger(__name__)

State = Membership.State


class BookingError(Exception):
    """A booking rule was broken. The message names the rule and what to do."""


class BookingConflictError(BookingError):
    """The room is already booked for part of the requested time."""


class NotEligibleError(BookingError):
    """The member's membership does not allow booking now."""


class OverageNotAllowedError(BookingError):
    """The member's credit does not cover the price and the plan allows no overage."""

    def __init__(self, message: str, *, missing: Decimal):
        super().__init__(message)
        self.missing = missing


def describe_span(start: datetime.datetime, end: datetime.datetime) -> str:
    """Return "Jan. 5, 2026, 10 a.m. to 11 a.m." in the space's time zone and active language.

    The text can end in "a.m." or "p.m.", so messages put it inside a sentence, never
    right before the full stop.
    """
    local_start = start.astimezone(availability.local_zone())
    local_end = end.astimezone(availability.local_zone())
    return _("%(date)s, %(start)s to %(end)s") % {
        "date": formats.date_format(local_start, "DATE_FORMAT"),
        "start": formats.time_format(local_start, "TIME_FORMAT"),
        "end": formats.time_format(local_end, "TIME_FORMAT"),
    }


def _conflict(room: Room, start: datetime.datetime, end: datetime.datetime):
    return BookingConflictError(
        _(
            "%(room)s is already booked for part of %(span)s, so choose another time or another "
            "room. The day view shows the free slots."
        )
        % {"room": room.name, "span": describe_span(start, end)}
    )


# --- Who can book -------------------------------------------------------------------------


def booking_membership(member: Member) -> Membership:
    """Return the membership a member books under, or raise NotEligibleError saying why.

    Active memberships can book, and past-due ones until their grace period ends (the
    same rule that keeps the door key working).
    """
    membership = (
        Membership.objects.filter(member=member, state__in=Membership.CURRENT_STATES)
        .select_related("plan")
        .first()
    )
    if membership is None:
        raise NotEligibleError(
            _("You have no current membership, so you cannot book meeting rooms.")
        )
    today = members_services.local_today()
    if membership.state == State.ACTIVE:
        return membership
    if membership.state == State.PAST_DUE:
        if membership.grace_until is None or today <= membership.grace_until:
            return membership
        raise NotEligibleError(
            _(
                "Your payment is overdue and the grace period ended on %(date)s, so you cannot "
                "book meeting rooms. Pay the open invoice in the portal to book again."
            )
            % {"date": formats.date_format(membership.grace_until, "DATE_FORMAT")}
        )
    if membership.state == State.SUSPENDED:
        raise NotEligibleError(_suspension_message(membership))
    raise NotEligibleError(
        _(
            "Your membership starts once the first payment is received; you can book meeting "
            "rooms from then on."
        )
    )


def _suspension_message(membership: Membership) -> str:
    """Return why a suspended member cannot book, naming overdue payment only when recorded.

    Staff can suspend for any reason, and the reason they record is internal, so only a
    suspension by the billing job for a payment overdue past its grace period gets the
    payment advice.
    """
    cause = (
        MembershipEvent.objects.filter(membership=membership, to_state=State.SUSPENDED)
        .order_by("-created_at", "-pk")
        .values_list("cause", flat=True)
        .first()
    )
    if cause == billing_services.OVERDUE_SUSPENSION_CAUSE:
        return _(
            "Your membership is suspended because a payment is overdue, so you cannot book "
            "meeting rooms. Pay the open invoice in the portal to reinstate it."
        )
    return _(
        "Your membership is suspended, so you cannot book meeting rooms. Ask the staff at the "
        "front desk what is needed to reinstate it."
    )


# --- Times --------------------------------------------------------------------------------


def check_times(
    *, room: Room, start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> int:
    """Check the requested times against the room's rules; return the length in minutes."""
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise BookingError(_("Give the booking's start and end with a time zone."))
    start, end = availability.to_utc(start), availability.to_utc(end)
    if not room.is_active:
        raise BookingError(
            _("%(room)s is not open for bookings at the moment.") % {"room": room.name}
        )
    if end <= start:
        raise BookingError(_("The booking must end after it starts."))
    if start <= now:
        raise BookingError(
            _("%(span)s has already started; choose a later time.")
            % {"span": describe_span(start, end)}
        )
    day = availability.local_day(start)
    last_day = availability.last_bookable_day()
    if day > last_day:
        raise BookingError(
            _("Rooms can be booked up to %(days)s days ahead, until %(date)s.")
            % {
                "days": settings.CPR_BOOKING_HORIZON_DAYS,
                "date": formats.date_format(last_day, "DATE_FORMAT"),
            }
        )

    hours = {entry.weekday: entry for entry in room.hours.all()}
    window = availability.day_window(hours, day)
    if window is None:
        raise BookingError(
            _("%(room)s cannot be booked on %(weekday)s.")
            % {"room": room.name, "weekday": formats.date_format(day, "l")}
        )
    if start < window.opens or end > window.closes:
        raise BookingError(
            _(
                "%(span)s is outside the bookable hours of %(room)s, which are %(opens)s to "
                "%(closes)s on that day."
            )
            % {
                "span": describe_span(start, end),
                "room": room.name,
                "opens": formats.time_format(timezone.localtime(window.opens), "TIME_FORMAT"),
                "closes": formats.time_format(timezone.localtime(window.closes), "TIME_FORMAT"),
            }
        )
    # Exact timedeltas, so a start a few seconds or microseconds off the grid is rejected
    # instead of being rounded down to its whole minute.
    slot = datetime.timedelta(minutes=room.slot_minutes)
    if (start - window.opens) % slot or (end - start) % slot:
        raise BookingError(
            _(
                "%(room)s is booked in %(slot)s-minute slots from %(opens)s, so start and end "
                "the booking on a slot, in whole minutes without seconds."
            )
            % {
                "room": room.name,
                "slot": room.slot_minutes,
                "opens": formats.time_format(timezone.localtime(window.opens), "TIME_FORMAT"),
            }
        )
    minutes = (end - start) // datetime.timedelta(minutes=1)
    if minutes < room.min_minutes:
        raise BookingError(
            _("%(room)s is booked for at least %(min)s minutes; %(minutes)s minutes is too short.")
            % {"room": room.name, "min": room.min_minutes, "minutes": minutes}
        )
    if minutes > room.max_minutes:
        raise BookingError(
            _("%(room)s is booked for at most %(max)s minutes; %(minutes)s minutes is too long.")
            % {"room": room.name, "max": room.max_minutes, "minutes": minutes}
        )
    return minutes


# --- Price --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """The price of a booking and how it would be paid, as the preview shows it."""

    room: Room
    start: datetime.datetime
    end: datetime.datetime
    minutes: int
    price: Decimal
    credit_balance: Decimal
    credit_used: Decimal
    overage: Decimal
    overage_allowed: bool

    @property
    def rejected(self) -> bool:
        return self.overage > 0 and not self.overage_allowed

    @property
    def credit_left(self) -> Decimal:
        return self.credit_balance - self.credit_used


def _quote(
    *, member: Member, membership: Membership, room: Room, start, end, minutes: int
) -> Quote:
    price = availability.price_for(room.hourly_rate, minutes)
    balance = billing_selectors.credit_balance(member)
    credit_used = min(balance, price)
    return Quote(
        room=room,
        start=start,
        end=end,
        minutes=minutes,
        price=price,
        credit_balance=balance,
        credit_used=credit_used,
        overage=price - credit_used,
        overage_allowed=membership.plan.allows_overage,
    )


def _overage_rejection(quote: Quote) -> OverageNotAllowedError:
    return OverageNotAllowedError(
        _(
            "This booking costs %(price)s and your credit is %(balance)s, so %(missing)s is "
            "missing. Your plan does not charge bookings beyond the credit: choose a shorter "
            "booking, or ask staff to add credit."
        )
        % {
            "price": format_usd(quote.price),
            "balance": format_usd(quote.credit_balance),
            "missing": format_usd(quote.overage),
        },
        missing=quote.overage,
    )


def quote_booking(
    *, member: Member, room: Room, start: datetime.datetime, end: datetime.datetime
) -> Quote:
    """Return the price, the credit it would use and the overage, without booking.

    Raises the same errors as `book_room` for the member and the times, but not for a
    taken slot or a rejected overage: the quote shows those.
    """
    membership = booking_membership(member)
    minutes = check_times(room=room, start=start, end=end, now=timezone.now())
    return _quote(
        member=member, membership=membership, room=room, start=start, end=end, minutes=minutes
    )


def is_room_free(*, room: Room, start: datetime.datetime, end: datetime.datetime) -> bool:
    return not Booking.objects.filter(
        room=room, status=Booking.Status.CONFIRMED, start__lt=end, end__gt=start
    ).exists()


# --- Booking ------------------------------------------------------------------------------


def _violates_no_overlap(error: IntegrityError) -> bool:
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None) == NO_OVERLAP_CONSTRAINT


def book_room(
    *,
    member: Member,
    room: Room,
    start: datetime.datetime,
    end: datetime.datetime,
    actor: AbstractBaseUser | None = None,
) -> Booking:
    """Book `room` for `member` from `start` to `end` and pay for it.

    Credit pays first, starting with the lot that expires first. The rest is charged on the
    next invoice, unless the plan allows no overage: then the booking is rejected with the
    missing amount.
    The member gets a confirmation email. Raises NotEligibleError, BookingConflictError,
    OverageNotAllowedError or BookingError, and then nothing is booked or paid.
    """
    membership = booking_membership(member)
    minutes = check_times(room=room, start=start, end=end, now=timezone.now())

    try:
        with transaction.atomic():
            room = Room.objects.select_for_update().get(pk=room.pk)
            if not is_room_free(room=room, start=start, end=end):
                raise _conflict(room, start, end)
            # The member's row stays locked until commit, so the balance read here is what
            # the spend below draws from.
            member = Member.objects.select_for_update().get(pk=member.pk)
            quote = _quote(
                member=member,
                membership=membership,
                room=room,
                start=start,
                end=end,
                minutes=minutes,
            )
            if quote.rejected:
                raise _overage_rejection(quote)
            booking = _insert_booking(
                member=member, membership=membership, room=room, quote=quote, actor=actor
            )
            _pay(booking=booking, actor=actor)
            emails.queue_booking_confirmed(booking)
    except billing_services.BillingError as error:
        logger.warning("Booking of room %s for member %s not paid: %s", room.pk, member.pk, error)
        raise BookingError(str(error)) from error

    logger.info(
        "Booking %s: room %s for member %s from %s to %s, price %s (credit %s, overage %s), by "
        "user %s",
        booking.pk,
        room.pk,
        member.pk,
        start.isoformat(),
        end.isoformat(),
        booking.price,
        booking.credit_used,
        booking.overage,
        getattr(actor, "pk", None),
    )
    return booking


def _insert_booking(
    *, member: Member, membership: Membership, room: Room, quote: Quote, actor
) -> Booking:
    try:
        with transaction.atomic():
            return Booking.objects.create(
                member=member,
                membership=membership,
                room=room,
                start=quote.start,
                end=quote.end,
                price=quote.price,
                credit_used=quote.credit_used,
                overage=quote.overage,
                booked_by=actor,
            )
    except IntegrityError as error:
        if not _violates_no_overlap(error):
            raise
        logger.warning(
            "Room %s: the no-overlap constraint rejected a booking from %s to %s for member %s",
            room.pk,
            quote.start.isoformat(),
            quote.end.isoformat(),
            member.pk,
        )
        raise _conflict(room, quote.start, quote.end) from error


def _pay(*, booking: Booking, actor) -> None:
    reference = booking.ledger_reference
    if booking.credit_used > 0:
        billing_services.spend_credit(
            member=booking.member, amount=booking.credit_used, reference=reference, actor=actor
        )
    if booking.overage > 0:
        billing_services.add_invoice_item(
            membership=booking.membership,
            amount=booking.overage,
            description=_("Meeting room %(room)s, %(span)s, beyond credit")
            % {"room": booking.room.name, "span": describe_span(booking.start, booking.end)},
            reference=reference,
            actor=actor,
        )


# --- Cancelling ---------------------------------------------------------------------------


def cancel_cutoff(booking: Booking) -> datetime.datetime:
    """Return the last moment a cancellation gives the credit and the overage back."""
    return booking.start - datetime.timedelta(hours=settings.CPR_BOOKING_CANCEL_CUTOFF_HOURS)


def cancels_in_time(booking: Booking, *, now: datetime.datetime | None = None) -> bool:
    return (now or timezone.now()) <= cancel_cutoff(booking)


def cancel_booking(
    *,
    booking: Booking,
    actor: AbstractBaseUser | None,
    reason: str = "",
    refund: bool | None = None,
) -> Booking:
    """Cancel a confirmed booking that has not started, and free its slot.

    Up to the cut-off (CPR_BOOKING_CANCEL_CUTOFF_HOURS before the start) the credit goes
    back to the lots it came from (where a lot has expired meanwhile, it expires again at
    once) and the overage charge is withdrawn. After the cut-off both are kept. Staff pass
    `refund` to decide themselves. The member gets an email.
    """
    reason = reason.strip()
    now = timezone.now()
    with transaction.atomic():
        booking = (
            Booking.objects.select_for_update(of=("self",))
            .select_related("member", "room", "membership")
            .get(pk=booking.pk)
        )
        if not booking.is_confirmed:
            raise BookingError(
                _(
                    "Booking %(id)s was already cancelled on %(date)s, so there is nothing to "
                    "cancel."
                )
                % {
                    "id": booking.pk,
                    "date": formats.date_format(
                        timezone.localtime(booking.cancelled_at), "DATETIME_FORMAT"
                    ),
                }
            )
        if booking.start <= now:
            raise BookingError(
                _("Booking %(id)s has already started, so it can no longer be cancelled.")
                % {"id": booking.pk}
            )
        give_back = cancels_in_time(booking, now=now) if refund is None else refund
        if give_back:
            billing_services.refund_credit(
                member=booking.member, reference=booking.ledger_reference, actor=actor
            )
            billing_services.withdraw_invoice_item(reference=booking.ledger_reference, actor=actor)
        booking.status = Booking.Status.CANCELLED
        booking.cancelled_at = now
        booking.cancelled_by = actor
        booking.cancel_reason = reason
        booking.charge_kept = not give_back and booking.price > ZERO
        booking.save(
            update_fields=[
                "status",
                "cancelled_at",
                "cancelled_by",
                "cancel_reason",
                "charge_kept",
                "updated_at",
            ]
        )
        emails.queue_booking_cancelled(booking)

    logger.info(
        "Booking %s cancelled by user %s (%s); %s",
        booking.pk,
        getattr(actor, "pk", None),
        reason or "no reason given",
        "charge kept" if booking.charge_kept else "credit and overage returned",
    )
    return booking


# --- Calendar feed ------------------------------------------------------------------------


def calendar_feed(member: Member) -> CalendarFeed:
    """Return the member's calendar feed, creating it with a new token the first time."""
    feed, created = CalendarFeed.objects.get_or_create(member=member)
    if created:
        logger.info("Calendar feed created for member %s", member.pk)
    return feed


def rotate_calendar_token(*, member: Member) -> CalendarFeed:
    """Give the member's calendar feed a new token; the old address stops working."""
    from .models import new_feed_token

    with transaction.atomic():
        feed, _created = CalendarFeed.objects.select_for_update().get_or_create(member=member)
        feed.token = new_feed_token()
        feed.rotated_at = timezone.now()
        feed.save(update_fields=["token", "rotated_at"])
    logger.info("Calendar feed token of member %s rotated", member.pk)
    return feed
