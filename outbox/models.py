"""The email outbox: one row per email, written in the transaction that caused it.

Rows change only in `outbox.services`. A row moves queued → sending (claimed by one
worker until `claimed_until`) → sent, or back to queued for a retry, or to failed. A row
with `expires_at` becomes expired instead of being sent after that time.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .catalog import TEMPLATE_CHOICES


class OutboxEmail(models.Model):
    """An email to one recipient, rendered from a template when it is sent.

    Account emails (template ACCOUNT_TEMPLATE) come rendered, in `subject`, `body_text`
    and `body_html`; the bodies are emptied once the row is sent, failed or expired.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")

    recipient = models.EmailField(_("recipient"), max_length=254)
    template = models.CharField(_("template"), max_length=60, choices=TEMPLATE_CHOICES)
    context = models.JSONField(_("context"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.QUEUED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    claimed_until = models.DateTimeField(
        _("claimed until"),
        null=True,
        blank=True,
        help_text=_("A worker that is sending the email holds it until this time."),
    )
    expires_at = models.DateTimeField(
        _("expires at"),
        null=True,
        blank=True,
        help_text=_(
            "An email still unsent at this time is not sent, because the code or link in "
            "it has expired."
        ),
    )
    subject = models.CharField(_("subject"), max_length=998, blank=True)
    body_text = models.TextField(_("plain-text body"), blank=True)
    body_html = models.TextField(_("HTML body"), blank=True)
    claim_token = models.UUIDField(_("claim token"), null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, unique=True)
    dedupe_key = models.CharField(
        _("dedupe key"),
        max_length=200,
        unique=True,
        help_text=_("Names the event that caused the email, so the same event queues it once."),
    )
    created_at = models.DateTimeField(_("queued at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="outbox_sent_has_sent_at",
                violation_error_message=_("A sent email needs the time it was sent."),
            ),
            models.CheckConstraint(
                condition=~Q(status="sending") | Q(claimed_until__isnull=False),
                name="outbox_sending_has_lease",
                violation_error_message=_("An email being sent needs a claim expiry time."),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_status_next_attempt"),
            models.Index(fields=["recipient"], name="outbox_recipient"),
        ]

    def __str__(self):
        return f"{self.get_template_display()} → {self.recipient} ({self.get_status_display()})"
