"""The outbox in the back office: every email, read-only, and "send again" for failed ones.

"Send again" on the list resends the selected failed emails to their stored addresses.
The "Send again…" button on a failed email's page opens a form whose recipient staff
may correct first, for an address that the relay refused.
"""

import json
import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from members.admin.base import ActionsOnlyAdminMixin, admin_change_url

from . import services
from .catalog import ACCOUNT_TEMPLATE
from .errors import OutboxError
from .models import OutboxEmail

logger = logging.getLogger(__name__)

# Characters of the last error shown in the list; the email's page shows all of it.
ERROR_PREVIEW_LENGTH = 80


class SendAgainForm(forms.Form):
    recipient = forms.EmailField(
        label=gettext_lazy("Recipient"),
        max_length=254,
        help_text=gettext_lazy(
            "The address to send the email to. Correct it here when the relay refused the "
            "old one; correct the member's own record too, so that later emails reach them."
        ),
    )


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
        (None, {"fields": ("recipient", "template", "language", "status", "expires_at")}),
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
        """Render the subject and the plain-text body, in the email's language.

        Account emails show their subject only: their bodies contain sign-in codes and
        links, which staff must not be able to use.
        """
        if email.template == ACCOUNT_TEMPLATE:
            return format_html(
                "<p><strong>{}</strong></p><p>{}</p>",
                email.subject,
                _(
                    "The body is not shown, because it contains a sign-in code or link. It is "
                    "deleted once the email is sent, failed or expired."
                ),
            )
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
            self.log_change(request, email, _("Sent again to %(to)s.") % {"to": email.recipient})
            self.message_user(
                request,
                format_html("{}: {}", label, _("queued to be sent again.")),
                messages.SUCCESS,
            )

    # "Send again…" page of one email -------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/send-again/",
                self.admin_site.admin_view(self.send_again_view),
                name="{}_{}_send_again".format(*info),
            ),
            *super().get_urls(),
        ]

    def send_again_view(self, request, object_id):
        """Show the recipient of a failed email for correction, and send it again on POST."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        email = self.get_object(request, unquote(object_id))
        if email is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if email.status != OutboxEmail.Status.FAILED:
            self.message_user(
                request,
                _("Email %(id)s is %(status)s; only failed emails can be sent again.")
                % {"id": email.pk, "status": email.get_status_display().lower()},
                messages.WARNING,
            )
            return HttpResponseRedirect(admin_change_url(email))

        if request.method == "POST":
            form = SendAgainForm(request.POST)
            if form.is_valid():
                response = self._send_again(request, email, form)
                if response is not None:
                    return response
        else:
            form = SendAgainForm(initial={"recipient": email.recipient})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Send email %(id)s again") % {"id": email.pk},
            "opts": self.opts,
            "email": email,
            "form": form,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/outbox/outboxemail/send_again.html", context)

    def _send_again(self, request, email, form):
        """Call the service; return a redirect, or None after adding its error to the form."""
        old_recipient = email.recipient
        try:
            email = services.resend_email(
                email=email, actor=request.user, recipient=form.cleaned_data["recipient"]
            )
        except OutboxError as error:
            form.add_error(None, str(error))
            return None
        if email.recipient != old_recipient:
            change = _("Sent again to %(to)s instead of %(old)s.") % {
                "to": email.recipient,
                "old": old_recipient,
            }
        else:
            change = _("Sent again to %(to)s.") % {"to": email.recipient}
        self.log_change(request, email, change)
        self.message_user(
            request,
            _("Email %(id)s to %(recipient)s: queued to be sent again.")
            % {"id": email.pk, "recipient": email.recipient},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(admin_change_url(email))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if (
            obj is not None
            and obj.status == OutboxEmail.Status.FAILED
            and obj.template != ACCOUNT_TEMPLATE
            and self.has_change_permission(request)
        ):
            info = self.opts.app_label, self.opts.model_name
            context["send_again_url"] = reverse(
                "admin:{}_{}_send_again".format(*info), args=[obj.pk]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
