"""The outbox in the back office: every email, read-only, and "send again" for failed ones."""

import json
import logging

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from members.admin.base import ActionsOnlyAdminMixin

from . import services
from .errors import OutboxError
from .models import OutboxEmail

logger = logging.getLogger(__name__)

# Characters of the last error shown in the list; the email's page shows all of it.
ERROR_PREVIEW_LENGTH = 80


@admin.register(OutboxEmail)
class OutboxEmailAdmin(ActionsOnlyAdminMixin, admin.ModelAdmin):
    """Emails as queued and sent. Rows change only through the sender and "send again"."""

    list_display = (
        "id",
        "recipient",
        "template",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "short_error",
    )
    list_filter = ("status", "template", "language")
    search_fields = ("recipient",)
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("recipient", "template", "language", "status")}),
        (
            gettext_lazy("Delivery"),
            {
                "fields": (
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "claimed_until",
                    "sent_at",
                    "message_id",
                )
            },
        ),
        (gettext_lazy("Content"), {"fields": ("pretty_context", "preview")}),
        (gettext_lazy("Record"), {"fields": ("dedupe_key", "created_at", "updated_at")}),
    )
    readonly_fields = ("pretty_context", "preview", "created_at", "updated_at")
    actions = ("send_again",)

    @admin.display(description=gettext_lazy("last error"))
    def short_error(self, email):
        if len(email.last_error) <= ERROR_PREVIEW_LENGTH:
            return email.last_error
        return email.last_error[: ERROR_PREVIEW_LENGTH - 1] + "…"

    @admin.display(description=gettext_lazy("context"))
    def pretty_context(self, email):
        text = json.dumps(email.context, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="outbox-context">{}</pre>', text)

    @admin.display(description=gettext_lazy("message as sent"))
    def preview(self, email):
        """Render the subject and the plain-text body, in the email's language."""
        try:
            message = services.build_message(email)
        except Exception as error:
            logger.warning("Previewing email %s failed: %s", email.pk, error)
            return _("The email cannot be rendered: %(error)s") % {"error": error}
        return format_html(
            '<p><strong>{}</strong></p><pre class="outbox-preview">{}</pre>',
            message.subject,
            message.body,
        )

    @admin.action(
        description=gettext_lazy("Send again"),
        description_plural=gettext_lazy("Send the selected failed emails again"),
        permissions=["change"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def send_again(self, request, queryset):
        for email in queryset.order_by("pk"):
            label = _("Email %(id)s to %(recipient)s") % {
                "id": email.pk,
                "recipient": email.recipient,
            }
            try:
                services.resend_email(email=email, actor=request.user)
            except OutboxError as error:
                self.message_user(request, format_html("{}: {}", label, str(error)), messages.ERROR)
                continue
            self.message_user(
                request,
                format_html("{}: {}", label, _("queued to be sent again.")),
                messages.SUCCESS,
            )
