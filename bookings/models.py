"""Meeting rooms, their bookable hours, bookings and the members' calendar feeds.

State changes happen only in `bookings.services`. Times are stored in UTC; bookable
hours are wall-clock times in the space's time zone (settings.TIME_ZONE).
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import RangeBoundary, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from cpr_portal.localized_text import in_active_language
from members.models import Member, Membership

from .constraints import Int8Range, PostgresOnlyExclusionConstraint, TsTzRange

ZERO = Decimal("0.00")

# Slot sizes a room can have, in minutes. Slots step from the opening time of each day.
SLOT_MINUTES_CHOICES = [(15, _("15 minutes")), (30, _("30 minutes")), (60, _("1 hour"))]

NO_OVERLAP_CONSTRAINT = "booking_no_overlap"


class Room(models.Model):
    """A meeting room members can book, at an hourly rate, in slots of a fixed size."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    capacity = models.PositiveSmallIntegerField(
        _("capacity"), validators=[MinValueValidator(1)], help_text=_("Number of seats.")
    )
    hourly_rate = models.DecimalField(
        _("hourly rate (USD)"),
        max_digits=8,
        decimal_places=2,
        validators=[MinValueValidator(ZERO)],
        help_text=_("Bookings are priced at this rate times their length."),
    )
    slot_minutes = models.PositiveSmallIntegerField(
        _("slot size"),
        choices=SLOT_MINUTES_CHOICES,
        default=30,
        help_text=_("Bookings start and end on these steps from the opening time."),
    )
    min_minutes = models.PositiveSmallIntegerField(
        _("minimum booking (minutes)"), default=30, validators=[MinValueValidator(1)]
    )
    max_minutes = models.PositiveSmallIntegerField(
        _("maximum booking (minutes)"), default=240, validators=[MinValueValidator(1)]
    )
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Inactive rooms are hidden and take no bookings.")
    )
    photo = models.ImageField(_("photo"), upload_to="rooms/", blank=True)
    description = models.TextField(_("description"), blank=True)
    description_es = models.TextField(
        _("description in Spanish"),
        blank=True,
        help_text=_(
            "Shown on Spanish pages and emails in place of the English description. Leave "
            "it empty to show the English one."
        ),
    )
    sort_order = models.PositiveSmallIntegerField(_("sort order"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("room")
        verbose_name_plural = _("rooms")
        ordering = ["sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(hourly_rate__gte=0),
                name="room_hourly_rate_not_negative",
                violation_error_message=_("The hourly rate cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(slot_minutes__in=[15, 30, 60]),
                name="room_slot_minutes_valid",
                violation_error_message=_("The slot size must be 15, 30 or 60 minutes."),
            ),
            models.CheckConstraint(
                condition=Q(min_minutes__gte=F("slot_minutes"))
                & Q(max_minutes__gte=F("min_minutes")),
                name="room_booking_lengths_ordered",
                violation_error_message=_(
                    "The minimum booking must be at least one slot, and the maximum at least "
                    "the minimum."
                ),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def localized_description(self) -> str:
        """The description in the active language: description_es for Spanish when filled in."""
        return in_active_language(self.description, self.description_es)

    def clean(self):
        super().clean()
        errors = {}
        for field in ("min_minutes", "max_minutes"):
            value = getattr(self, field)
            if value and self.slot_minutes and value % self.slot_minutes:
                errors[field] = _(
                    "%(value)s minutes is not a whole number of %(slot)s-minute slots; use a "
                    "multiple of %(slot)s."
                ) % {"value": value, "slot": self.slot_minutes}
        if errors:
            raise ValidationError(errors)


class RoomHours(models.Model):
    """The hours a room can be booked on one day of the week, in the space's time zone."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    room = models.ForeignKey(
        Room, verbose_name=_("room"), on_delete=models.CASCADE, related_name="hours"
    )
    weekday = models.PositiveSmallIntegerField(_("day of the week"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(
        _("closes at"), help_text=_("The last booking ends by this time, on the same day.")
    )

    class Meta:
        verbose_name = _("bookable hours")
        verbose_name_plural = _("bookable hours")
        ordering = ["room", "weekday"]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "weekday"],
                name="room_hours_one_per_weekday",
                violation_error_message=_("This room already has hours for that day."),
            ),
            models.CheckConstraint(
                condition=Q(weekday__gte=0, weekday__lte=6), name="room_hours_weekday_valid"
            ),
            models.CheckConstraint(
                condition=Q(closes_at__gt=F("opens_at")),
                name="room_hours_close_after_open",
                violation_error_message=_("The closing time must be after the opening time."),
            ),
        ]

    def __str__(self):
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"


class Booking(models.Model):
    """A member's booking of a room, with the price fixed when it was made.

    `price` is what the booking cost at the room's rate then. `credit_used` came out of
    the member's credit and `overage` went on the member's next invoice; together they
    make the price. Both ledger steps use the reference `booking:<id>`.
    """

    class Status(models.TextChoices):
        CONFIRMED = "confirmed", _("Confirmed")
        CANCELLED = "cancelled", _("Cancelled")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="bookings"
    )
    membership = models.ForeignKey(
        Membership,
        verbose_name=_("membership"),
        on_delete=models.PROTECT,
        related_name="bookings",
        help_text=_("The membership the booking was made under; overage goes on its invoice."),
    )
    room = models.ForeignKey(
        Room, verbose_name=_("room"), on_delete=models.PROTECT, related_name="bookings"
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.CONFIRMED
    )
    price = models.DecimalField(_("price (USD)"), max_digits=10, decimal_places=2)
    credit_used = models.DecimalField(
        _("credit used (USD)"), max_digits=10, decimal_places=2, default=ZERO
    )
    overage = models.DecimalField(
        _("charged beyond credit (USD)"), max_digits=10, decimal_places=2, default=ZERO
    )
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("booked by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("booked at"), auto_now_add=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("cancelled by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cancel_reason = models.TextField(_("cancellation reason"), blank=True)
    charge_kept = models.BooleanField(
        _("charge kept"),
        default=False,
        help_text=_(
            "Set when a cancellation came after the cut-off, so the credit and overage "
            "were not returned."
        ),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        ordering = ["-start", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="booking_end_after_start",
                violation_error_message=_("A booking must end after it starts."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["confirmed", "cancelled"]), name="booking_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(price__gte=0, credit_used__gte=0, overage__gte=0)
                & Q(price=F("credit_used") + F("overage")),
                name="booking_price_is_credit_plus_overage",
                violation_error_message=_(
                    "The credit used and the overage must add up to the price."
                ),
            ),
            models.CheckConstraint(
                condition=Q(status="confirmed", cancelled_at__isnull=True)
                | Q(status="cancelled", cancelled_at__isnull=False),
                name="booking_cancelled_at_matches_status",
            ),
            # Two confirmed bookings of a room never overlap. "[)" ranges make a booking
            # that ends at 11:00 and one that starts at 11:00 adjacent, not overlapping.
            # The room is compared as the range [room, room], because GiST compares ranges
            # without an extension, while "room_id WITH =" needs btree_gist, which a
            # database owner without CREATE on the database (a restore role) cannot add.
            PostgresOnlyExclusionConstraint(
                name=NO_OVERLAP_CONSTRAINT,
                expressions=[
                    (
                        Int8Range("room", "room", RangeBoundary(inclusive_upper=True)),
                        RangeOperators.OVERLAPS,
                    ),
                    (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=Q(status="confirmed"),
                violation_error_message=_("The room is already booked at that time."),
            ),
        ]
        indexes = [
            models.Index(fields=["room", "start"], name="booking_room_start"),
            models.Index(fields=["member", "start"], name="booking_member_start"),
        ]

    def __str__(self):
        # Stored in UTC, shown on the space's clock (settings.TIME_ZONE).
        start = date_format(timezone.localtime(self.start), "DATETIME_FORMAT")
        return f"{self.room} · {start} ({self.get_status_display()})"

    @property
    def ledger_reference(self) -> str:
        """The reference of this booking's credit spends and overage charge."""
        return f"booking:{self.pk}"

    @property
    def is_confirmed(self) -> bool:
        return self.status == self.Status.CONFIRMED


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """A member's private iCalendar address; rotating the token revokes the old address."""

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="calendar_feed"
    )
    token = models.CharField(_("token"), max_length=64, unique=True, default=new_feed_token)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    rotated_at = models.DateTimeField(_("last rotated"), null=True, blank=True)

    class Meta:
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")

    def __str__(self):
        return f"Calendar feed of member {self.member_id}"
