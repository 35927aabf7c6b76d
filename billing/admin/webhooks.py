"""Gateway events as stored, read-only, with an action that processes them again."""

import json
import logging

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import services
from billing.models import WebhookEvent
from members.services import MembersError

from .base import ReadOnlyAdminMixin

logger = logging.getLogger(__name__)

BOTH_LOCATIONS = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Gateway events as received, read-only, with an action that processes them again."""

    list_display = (
        "event_id",
        "event_type",
        "gateway",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "short_error",
    )
    list_filter = ("status", "gateway", "event_type")
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    search_fields = ("event_id",)
    date_hierarchy = "received_at"
    fields = (
        "gateway",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "received_at",
        "processed_at",
        "error",
        "pretty_payload",
    )
    readonly_fields = ("pretty_payload",)
    actions = ("process_again_selected",)

    # Characters of the last error shown in the list; the event's page shows all of it.
    ERROR_PREVIEW_LENGTH = 80

    @admin.display(description=gettext_lazy("last error"))
    def short_error(self, event):
        if len(event.error) <= self.ERROR_PREVIEW_LENGTH:
            return event.error
        return event.error[: self.ERROR_PREVIEW_LENGTH - 1] + "…"

    @admin.display(description=gettext_lazy("payload"))
    def pretty_payload(self, event):
        text = json.dumps(event.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="webhook-payload">{}</pre>', text)

    @admin.action(
        description=gettext_lazy("Process again"),
        description_plural=gettext_lazy("Process selected events again"),
        permissions=["change"],
        location=BOTH_LOCATIONS,
    )
    def process_again_selected(self, request, queryset):
        for event in queryset.order_by("received_at", "id"):
            label = _("Event %(id)s (%(type)s)") % {"id": event.event_id, "type": event.event_type}
            try:
                result = services.process_webhook_event(webhook_event=event)
            except (services.BillingError, MembersError) as error:
                logger.warning("Processing webhook event %s again failed: %s", event.pk, error)
                self.message_user(request, format_html("{}: {}", label, str(error)), messages.ERROR)
                continue
            level, outcome = self.describe_outcome(result, attempts_before=event.attempts)
            self.message_user(request, format_html("{}: {}", label, outcome), level)

    @staticmethod
    def describe_outcome(event: WebhookEvent, *, attempts_before: int) -> tuple[int, str]:
        Status = WebhookEvent.Status
        if event.attempts == attempts_before and event.status in (Status.PROCESSED, Status.IGNORED):
            # The service returns an event that is already final without applying it again.
            return messages.INFO, _("already %(status)s, so nothing changed.") % {
                "status": event.get_status_display().lower()
            }
        if event.status == Status.PROCESSED:
            return messages.SUCCESS, _("processed.")
        if event.status == Status.IGNORED:
            return messages.INFO, _("ignored, because the portal does not act on this type.")
        if event.status == Status.FAILED:
            return messages.ERROR, _("failed: %(error)s") % {"error": event.error}
        return messages.WARNING, _("still %(status)s after %(attempts)s attempts.") % {
            "status": event.get_status_display(),
            "attempts": event.attempts,
        }
