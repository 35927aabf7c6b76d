"""Back office of meeting rooms: rooms with their hours, and bookings.

Bookings are read-only pages. Staff book for a member with "Book for a member", and
cancel with the actions, which ask for a reason; all of them call `bookings.services`.
"""

import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.admin.base import (
    MEMBER_SEARCH_FIELDS,
    ReadOnlyAdminMixin,
    ServiceFormMixin,
    has_model_permission,
    link_to_member,
)
from billing.money import format_usd
from members.admin.base import PerRowReportMixin, bound_reason_form

from . import services
from .forms import CancelBookingForm, StaffBookingForm
from .models import Booking, Room, RoomHours

logger = logging.getLogger(__name__)


class RoomHoursInline(admin.TabularInline):
    model = RoomHours
    extra = 0
    fields = ("weekday", "opens_at", "closes_at")


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "capacity",
        "hourly_rate",
        "slot_minutes",
        "min_minutes",
        "max_minutes",
        "is_active",
        "sort_order",
    )
    list_filter = ("is_active",)
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")
    inlines = (RoomHoursInline,)
    fieldsets = (
        (None, {"fields": ("name", "capacity", "description", "photo", "sort_order")}),
        (gettext_lazy("Spanish"), {"fields": ("description_es",)}),
        (
            gettext_lazy("Booking rules"),
            {
                "description": gettext_lazy(
                    "A new rate applies to bookings made from now on; existing bookings keep "
                    "their price. Bookable hours are in the space's time zone."
                ),
                "fields": ("hourly_rate", "slot_minutes", "min_minutes", "max_minutes"),
            },
        ),
        (gettext_lazy("Availability"), {"fields": ("is_active",)}),
        (gettext_lazy("Record"), {"fields": ("created_at", "updated_at")}),
    )


def _cancel_action(description):
    return admin.action(description=description, permissions=["change"])


@admin.register(Booking)
class BookingAdmin(ServiceFormMixin, PerRowReportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "room",
        "member_link",
        "start",
        "end",
        "status",
        "price_usd",
        "credit_used_usd",
        "overage_usd",
        "charge_kept",
    )
    list_display_links = ("id",)
    list_filter = ("room", "status", ("start", admin.DateFieldListFilter))
    date_hierarchy = "start"
    search_fields = tuple(f"member__{name}" for name in MEMBER_SEARCH_FIELDS)
    list_select_related = ("room", "member")
    actions = ("cancel_selected", "cancel_with_refund_selected")

    @admin.display(description=gettext_lazy("member"), ordering="member__last_name")
    def member_link(self, booking):
        return link_to_member(booking.member)

    @admin.display(description=gettext_lazy("price"), ordering="price")
    def price_usd(self, booking):
        return format_usd(booking.price)

    @admin.display(description=gettext_lazy("credit used"), ordering="credit_used")
    def credit_used_usd(self, booking):
        return format_usd(booking.credit_used)

    @admin.display(description=gettext_lazy("beyond credit"), ordering="overage")
    def overage_usd(self, booking):
        return format_usd(booking.overage)

    # Cancelling -------------------------------------------------------------------

    def _cancel_rows(self, request, queryset, *, refund, action_name, title, intro):
        form = bound_reason_form(request, CancelBookingForm)
        if not (form.is_bound and form.is_valid()):
            return self.render_reason_page(
                request,
                objects=list(queryset.select_related("room", "member").order_by("start")),
                form=form,
                title=title,
                intro=intro,
                submit_label=_("Cancel bookings"),
                action_name=action_name,
            )
        reason = form.cleaned_data["reason"]
        for booking in queryset.select_related("room", "member").order_by("start"):
            try:
                cancelled = services.cancel_booking(
                    booking=booking, actor=request.user, reason=reason, refund=refund
                )
            except services.BookingError as error:
                logger.info(
                    "Booking %s not cancelled by user %s: %s", booking.pk, request.user.pk, error
                )
                self.message_user(request, f"{booking}: {error}", messages.ERROR)
                continue
            outcome = (
                _("cancelled; the charge is kept")
                if cancelled.charge_kept
                else _("cancelled; credit and overage returned")
            )
            self.message_user(request, f"{cancelled}: {outcome}", messages.SUCCESS)
        return None

    @_cancel_action(gettext_lazy("Cancel selected bookings (cut-off rule)…"))
    def cancel_selected(self, request, queryset):
        return self._cancel_rows(
            request,
            queryset,
            refund=None,
            action_name="cancel_selected",
            title=_("Cancel bookings"),
            intro=_(
                "Bookings cancelled before the cut-off get their credit back and their "
                "overage removed; later ones keep the charge. Bookings that have started or "
                "are cancelled already stay as they are and are reported as errors."
            ),
        )

    @_cancel_action(gettext_lazy("Cancel selected bookings and refund in full…"))
    def cancel_with_refund_selected(self, request, queryset):
        return self._cancel_rows(
            request,
            queryset,
            refund=True,
            action_name="cancel_with_refund_selected",
            title=_("Cancel bookings and refund in full"),
            intro=_(
                "Every booking below is cancelled with its credit returned and its overage "
                "removed, even after the cut-off."
            ),
        )

    # Booking for a member -----------------------------------------------------------

    def get_urls(self):
        book = path(
            "book/",
            self.admin_site.admin_view(self.book_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_book",
        )
        return [book, *super().get_urls()]

    def has_book_permission(self, request) -> bool:
        return has_model_permission(request, Booking, "add")

    def changelist_view(self, request, extra_context=None):
        extra_context = {"can_book": self.has_book_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def book_view(self, request):
        """Show the staff booking form, and book through the service when it is posted."""
        if not self.has_book_permission(request):
            raise PermissionDenied
        form = StaffBookingForm(request.POST) if request.method == "POST" else StaffBookingForm()
        if request.method == "POST" and form.is_valid():
            response = self._book(request, form)
            if response is not None:
                return response
        return self.render_service_form(
            request,
            form=form,
            title=_("Book a room for a member"),
            intro=_(
                "The booking follows the member's rules: an active membership (or one past "
                "due within its grace period), the room's hours and lengths, credit first and "
                "the rest on the next invoice when the plan allows it."
            ),
            submit_label=_("Book"),
        )

    def _book(self, request, form):
        data = form.cleaned_data
        try:
            booking = services.book_room(
                member=data["member"],
                room=data["room_choice"],
                start=data["start"],
                end=data["end"],
                actor=request.user,
            )
        except services.BookingError as error:
            logger.info("Staff booking by user %s rejected: %s", request.user.pk, error)
            form.add_error(None, str(error))
            return None
        self.message_user(
            request,
            _(
                "Booked %(booking)s for %(member)s: %(price)s, %(credit)s from credit, %(overage)s "
                "on the next invoice."
            )
            % {
                "booking": booking,
                "member": booking.member.full_name,
                "price": format_usd(booking.price),
                "credit": format_usd(booking.credit_used),
                "overage": format_usd(booking.overage),
            },
            messages.SUCCESS,
        )
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return HttpResponseRedirect(changelist)
