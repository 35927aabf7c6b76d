"""Forms of room booking: the member's booking form and the staff's booking and cancel forms."""

import datetime

from django import forms
from django.conf import settings
from django.utils import formats
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from members.forms_admin import REASON_MAX_LENGTH
from members.models import Member

from . import availability
from .models import Room


def length_label(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not rest:
        return ngettext("%(count)s hour", "%(count)s hours", hours) % {"count": hours}
    if not hours:
        return ngettext("%(count)s minute", "%(count)s minutes", rest) % {"count": rest}
    return _("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": rest}


class BookingTimesForm(forms.Form):
    """A day, a start time and a length in the room's slots; `clean` adds start and end."""

    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    # Only hours and minutes: slots never start on a second, and the time input's step
    # keeps browsers from offering seconds.
    start_time = forms.TimeField(
        label=_("Start time"),
        input_formats=["%H:%M"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        error_messages={
            "invalid": _("Enter the start time as hours and minutes, such as 10:30."),
        },
    )
    minutes = forms.TypedChoiceField(label=_("Length"), coerce=int)

    def __init__(self, *args, room: Room, **kwargs):
        super().__init__(*args, **kwargs)
        self.room = room
        lengths = range(room.min_minutes, room.max_minutes + 1, room.slot_minutes)
        self.fields["minutes"].choices = [(value, length_label(value)) for value in lengths]
        self.fields["start_time"].widget.attrs["step"] = room.slot_minutes * 60

    def clean_date(self):
        # Checked before `clean` adds the length, so a date near datetime's limits gives
        # this message instead of an OverflowError.
        day = self.cleaned_data["date"]
        today = availability.local_today()
        if day < today:
            raise forms.ValidationError(
                _("%(date)s has passed. Choose today or a later day."),
                code="past",
                params={"date": formats.date_format(day, "DATE_FORMAT")},
            )
        last_day = availability.last_bookable_day()
        if day > last_day:
            raise forms.ValidationError(
                _(
                    "%(date)s is too far ahead. Rooms can be booked up to %(days)s days ahead, "
                    "until %(last_day)s."
                ),
                code="beyond_horizon",
                params={
                    "date": formats.date_format(day, "DATE_FORMAT"),
                    "days": settings.CPR_BOOKING_HORIZON_DAYS,
                    "last_day": formats.date_format(last_day, "DATE_FORMAT"),
                },
            )
        return day

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        start = datetime.datetime.combine(
            data["date"], data["start_time"], tzinfo=availability.local_zone()
        ).astimezone(datetime.UTC)
        data["start"] = start
        data["end"] = start + datetime.timedelta(minutes=data["minutes"])
        return data


class StaffBookingForm(BookingTimesForm):
    """Staff book a room for a member; the service applies the member's rules and credit."""

    member = forms.ModelChoiceField(
        label=_("Member"), queryset=Member.objects.order_by("last_name", "first_name")
    )
    room_choice = forms.ModelChoiceField(
        label=_("Room"), queryset=Room.objects.filter(is_active=True)
    )
    field_order = ["member", "room_choice", "date", "start_time", "minutes"]

    def __init__(self, *args, **kwargs):
        room = self._chosen_room(args[0] if args else kwargs.get("data"))
        super().__init__(*args, room=room, **kwargs)
        # Every length in slot steps up to a day; the service checks the room's own limits.
        self.fields["minutes"].choices = [
            (value, length_label(value)) for value in range(15, 24 * 60 + 1, 15)
        ]

    @staticmethod
    def _chosen_room(data) -> Room:
        room_id = data.get("room_choice") if data else None
        room = Room.objects.filter(pk=room_id).first() if str(room_id or "").isdigit() else None
        return room or Room(slot_minutes=15, min_minutes=15, max_minutes=24 * 60)

    def clean(self):
        data = super().clean()
        if "room_choice" in data:
            self.room = data["room_choice"]
        return data


class CancelBookingForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for cancelling"),
        max_length=REASON_MAX_LENGTH,
        help_text=_("Kept on the booking. The member sees that the booking was cancelled."),
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        error_messages={"required": _("Give a reason for cancelling the booking.")},
    )
