"""Emails of meeting-room bookings, queued in the outbox within the caller's transaction."""

from django.conf import settings
from django.urls import reverse

from members.languages import member_language
from outbox.services import queue_email

from .models import Booking


def _context(booking: Booking) -> dict:
    return {
        "booking_id": booking.pk,
        "first_name": booking.member.first_name,
        "room_name": booking.room.name,
        "start": booking.start,
        "end": booking.end,
        "price": booking.price,
        "credit_used": booking.credit_used,
        "overage": booking.overage,
        "bookings_url": settings.CPR_SITE_URL + reverse("bookings:my_bookings"),
    }


def queue_booking_confirmed(booking: Booking) -> None:
    """Send the member the booking's room, time, price and how it was paid."""
    queue_email(
        recipient=booking.member.email,
        template="booking_confirmed",
        context=_context(booking),
        dedupe_key=f"booking_confirmed:booking:{booking.pk}",
        language=member_language(booking.member),
    )


def queue_booking_cancelled(booking: Booking) -> None:
    """Tell the member the booking is cancelled, and whether the credit came back."""
    queue_email(
        recipient=booking.member.email,
        template="booking_cancelled",
        context={**_context(booking), "charge_kept": booking.charge_kept},
        dedupe_key=f"booking_cancelled:booking:{booking.pk}",
        language=member_language(booking.member),
    )
