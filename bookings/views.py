"""Member portal pages of meeting rooms, and the private calendar feed.

Every state change goes through `bookings.services`. Booking takes two steps: the form
posts to a preview of the price, the credit it uses and any overage, and only the
preview's "Confirm" books. The feed is the one page without sign-in: its address
contains the member's secret token.
"""

import datetime
import logging

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from billing.money import format_usd
from members.portal import member_required

from . import availability, calendar, selectors, services
from .forms import BookingTimesForm, length_label
from .models import Booking, CalendarFeed

logger = logging.getLogger(__name__)

WEEK = 7
ONE_DAY = datetime.timedelta(days=1)
ONE_WEEK = datetime.timedelta(days=WEEK)


def _room_or_404(pk: int):
    room = selectors.active_room(pk)
    if room is None:
        raise Http404("No room open for bookings has this id.")
    return room


def _requested_day(request, name: str) -> datetime.date:
    """Return the date in the query string's `name`, moved into the bookable days.

    A missing or invalid date gives today. A date before today gives today and one after
    the booking horizon gives the horizon's last day, so the views show only days that
    can be booked and never step past datetime's limits.
    """
    today = availability.local_today()
    try:
        day = datetime.date.fromisoformat(request.GET.get(name, ""))
    except ValueError:
        return today
    return min(max(day, today), availability.last_bookable_day())


def _eligibility(member) -> str:
    """Return why the member cannot book now, or "" when they can."""
    try:
        services.booking_membership(member)
    except services.NotEligibleError as error:
        return str(error)
    return ""


@require_safe
@member_required()
def rooms(request, member):
    context = {
        "member": member,
        "rooms": list(selectors.active_rooms()),
        "not_eligible": _eligibility(member),
        "today": availability.local_today(),
    }
    return render(request, "bookings/rooms.html", context)


@require_safe
@member_required()
def room_day(request, member, pk):
    room = _room_or_404(pk)
    day = _requested_day(request, "date")
    [grid] = selectors.room_days(room, [day], member=member)
    context = {
        "member": member,
        "room": room,
        "grid": grid,
        "previous": day - ONE_DAY if day > availability.local_today() else None,
        "next": day + ONE_DAY if day < availability.last_bookable_day() else None,
        "not_eligible": _eligibility(member),
    }
    return render(request, "bookings/room_day.html", context)


@require_safe
@member_required()
def room_week(request, member, pk):
    room = _room_or_404(pk)
    monday = selectors.week_start(_requested_day(request, "week"))
    this_monday = selectors.week_start(availability.local_today())
    days = [monday + datetime.timedelta(days=offset) for offset in range(WEEK)]
    grid = selectors.room_days(room, days, member=member)
    context = {
        "member": member,
        "room": room,
        "days": grid,
        "rows": _week_rows(grid),
        "previous": monday - ONE_WEEK if monday > this_monday else None,
        "next": monday + ONE_WEEK
        if monday + ONE_WEEK <= availability.last_bookable_day()
        else None,
        "not_eligible": _eligibility(member),
    }
    return render(request, "bookings/room_week.html", context)


def _week_rows(days: list[selectors.Day]) -> list[tuple[datetime.time, list]]:
    """Return one row per local slot time of the week, with each day's slot or None."""
    zone = timezone.get_default_timezone()
    by_day = [{slot.start.astimezone(zone).time(): slot for slot in day.slots} for day in days]
    times = sorted({time for slots in by_day for time in slots})
    return [(time, [slots.get(time) for slots in by_day]) for time in times]


def _form_initial(request, room) -> dict:
    initial = {"minutes": max(room.min_minutes, 60 if room.max_minutes >= 60 else 0)}
    if request.GET.get("date"):
        initial["date"] = request.GET["date"]
    if request.GET.get("time"):
        initial["start_time"] = request.GET["time"]
    return initial


@require_http_methods(["GET", "POST"])
@member_required()
def book(request, member, pk):
    """Show the booking form; a post shows the preview, and a confirmed post books."""
    room = _room_or_404(pk)
    if request.method == "GET":
        form = BookingTimesForm(room=room, initial=_form_initial(request, room))
        return _render_form(request, member, room, form)

    form = BookingTimesForm(request.POST, room=room)
    if not form.is_valid():
        return _render_form(request, member, room, form)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]

    if "confirm" not in request.POST:
        try:
            quote = services.quote_booking(member=member, room=room, start=start, end=end)
        except services.BookingError as error:
            form.add_error(None, str(error))
            return _render_form(request, member, room, form)
        free = services.is_room_free(room=room, start=start, end=end)
        context = {
            "member": member,
            "room": room,
            "form": form,
            "quote": quote,
            "free": free,
            "span": services.describe_span(start, end),
            "length": length_label(quote.minutes),
        }
        return render(request, "bookings/confirm.html", context)

    try:
        booking = services.book_room(
            member=member, room=room, start=start, end=end, actor=request.user
        )
    except services.BookingError as error:
        logger.info("Member %s: booking of room %s rejected: %s", member.pk, room.pk, error)
        form.add_error(None, str(error))
        return _render_form(request, member, room, form)
    messages.success(request, _booked_message(booking))
    return redirect("bookings:my_bookings")


def _render_form(request, member, room, form):
    context = {
        "member": member,
        "room": room,
        "form": form,
        "day": availability.local_today(),
        "not_eligible": _eligibility(member),
    }
    return render(request, "bookings/book.html", context)


def _booked_message(booking: Booking) -> str:
    message = _("Your booking of %(room)s for %(span)s is confirmed.") % {
        "room": booking.room.name,
        "span": services.describe_span(booking.start, booking.end),
    }
    if booking.credit_used:
        message += " " + _("%(amount)s was taken from your credit.") % {
            "amount": format_usd(booking.credit_used)
        }
    if booking.overage:
        message += " " + _("%(amount)s will be charged on your next invoice.") % {
            "amount": format_usd(booking.overage)
        }
    return message


@require_safe
@member_required()
def my_bookings(request, member):
    now = timezone.now()
    bookings = selectors.member_bookings(member, now=now)
    feed = services.calendar_feed(member)
    upcoming = [
        (booking, services.cancels_in_time(booking, now=now)) for booking in bookings.upcoming
    ]
    context = {
        "member": member,
        "now": now,
        "upcoming": upcoming,
        "recent": bookings.recent,
        "more_recent": bookings.more_recent,
        "feed_url": request.build_absolute_uri(
            reverse("bookings:calendar_feed", kwargs={"token": feed.token})
        ),
    }
    return render(request, "bookings/my_bookings.html", context)


def _own_booking_or_404(member, pk) -> Booking:
    booking = Booking.objects.select_related("room").filter(pk=pk, member=member).first()
    if booking is None:
        # Another member's booking looks the same as a missing one.
        raise Http404("No booking with this id belongs to the signed-in member.")
    return booking


@require_http_methods(["GET", "POST"])
@member_required()
def cancel(request, member, pk):
    """Show what cancelling gives back, and cancel on the confirming post."""
    booking = _own_booking_or_404(member, pk)
    if request.method == "GET":
        context = {
            "member": member,
            "booking": booking,
            "in_time": services.cancels_in_time(booking),
            "cutoff": services.cancel_cutoff(booking),
            "span": services.describe_span(booking.start, booking.end),
        }
        return render(request, "bookings/cancel.html", context)
    try:
        cancelled = services.cancel_booking(
            booking=booking, actor=request.user, reason=_("Cancelled by the member")
        )
    except services.BookingError as error:
        logger.info("Member %s: cancelling booking %s rejected: %s", member.pk, booking.pk, error)
        messages.error(request, str(error))
        return redirect("bookings:my_bookings")
    if cancelled.charge_kept:
        messages.warning(
            request,
            _("Booking cancelled. It was past the cancellation deadline, so it is still charged."),
        )
    else:
        messages.success(request, _("Booking cancelled. Its credit and charges are returned."))
    return redirect("bookings:my_bookings")


@require_POST
@member_required()
def rotate_feed(request, member):
    services.rotate_calendar_token(member=member)
    messages.success(
        request,
        _(
            "Your calendar address has changed. Add the new one to your calendar app; the old one "
            "no longer works."
        ),
    )
    return redirect(reverse("bookings:my_bookings") + "#calendar")


@require_safe
def calendar_feed(request, token):
    """Return the member's bookings as text/calendar; an unknown token gets 404."""
    feed = CalendarFeed.objects.select_related("member").filter(token=token).first()
    if feed is None:
        raise Http404("No calendar feed has this address.")
    body = calendar.render_feed(selectors.feed_bookings(feed.member))
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="room-bookings.ics"'
    response["Cache-Control"] = "private, max-age=300"
    # The token in the address is the password, so no page may pass it on in a Referer.
    response["Referrer-Policy"] = "no-referrer"
    return response
