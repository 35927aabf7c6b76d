"""Door access keys, their history, and their sync state with the lock system.

State changes happen only in `access.services`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower, Upper
from django.utils.translation import gettext_lazy as _

from members.models import Member


class AccessKey(models.Model):
    """A credential (fob, card or phone) handed to a member."""

    class Kind(models.TextChoices):
        FOB = "fob", _("Key fob")
        CARD = "card", _("Card")
        MOBILE = "mobile", _("Mobile key")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        REVOKED = "revoked", _("Revoked")
        LOST = "lost", _("Lost")
        RETURNED = "returned", _("Returned")

    class Wanted(models.TextChoices):
        ACTIVE = "active", _("Opens doors")
        SUSPENDED = "suspended", _("Suspended")
        REVOKED = "revoked", _("Revoked")

    class Sync(models.TextChoices):
        IN_SYNC = "in_sync", _("In sync")
        PENDING = "pending", _("Pending")
        FAILED = "failed", _("Failed")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="access_keys"
    )
    number = models.CharField(_("credential number"), max_length=64)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.FOB)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    staff_hold = models.BooleanField(
        _("suspended by staff"),
        default=False,
        help_text=_("Holds the key suspended until staff restore it, whatever the payments."),
    )
    staff_hold_reason = models.TextField(_("reason for the staff suspension"), blank=True)
    issued_at = models.DateTimeField(_("issued at"))
    returned_at = models.DateTimeField(_("returned at"), null=True, blank=True)
    wanted_state = models.CharField(
        _("wanted state at the door"),
        max_length=10,
        choices=Wanted.choices,
        default=Wanted.ACTIVE,
    )
    backend_state = models.CharField(
        _("last known state at the door"), max_length=10, choices=Wanted.choices, blank=True
    )
    sync_status = models.CharField(
        _("sync"), max_length=10, choices=Sync.choices, default=Sync.PENDING
    )
    sync_attempts = models.PositiveIntegerField(_("sync attempts"), default=0)
    last_error = models.TextField(_("last sync error"), blank=True)
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("access key")
        verbose_name_plural = _("access keys")
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("number"),
                condition=~Q(status="returned"),
                name="access_key_number_unique_unless_returned",
                violation_error_message=_("Another key that was not returned has this number."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "revoked", "lost", "returned"]),
                name="access_key_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(returned_at__isnull=True) | Q(returned_at__gte=models.F("issued_at")),
                name="access_key_returned_after_issued",
            ),
        ]
        indexes = [
            models.Index(fields=["sync_status", "status"], name="access_key_sync_status"),
            # `number__iexact` (issuing a key, the Odoo import) compares UPPER(number) on
            # PostgreSQL, which the LOWER(number) unique index cannot serve.
            models.Index(Upper("number"), name="access_key_number_upper"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.number}"

    @property
    def last_digits(self) -> str:
        return self.number[-4:]


class AccessEvent(models.Model):
    """One row per change of a key: who or what acted, old and new state, and why."""

    class Cause(models.TextChoices):
        STAFF = "staff", _("Staff")
        PAYMENT = "payment", _("Payment")
        SCHEDULE = "schedule", _("Schedule")
        SYNC = "sync", _("Sync with the door system")

    key = models.ForeignKey(
        AccessKey, verbose_name=_("key"), on_delete=models.CASCADE, related_name="events"
    )
    cause = models.CharField(_("cause"), max_length=10, choices=Cause.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("acted by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    from_status = models.CharField(_("from status"), max_length=10, blank=True)
    to_status = models.CharField(_("to status"), max_length=10, blank=True)
    from_wanted = models.CharField(_("from wanted state"), max_length=10, blank=True)
    to_wanted = models.CharField(_("to wanted state"), max_length=10, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("access event")
        verbose_name_plural = _("access events")
        ordering = ["created_at", "id"]

    def __str__(self):
        labels = dict(AccessKey.Status.choices)
        from_status = labels.get(self.from_status, self.from_status) or "-"
        to_status = labels.get(self.to_status, self.to_status)
        return f"{self.key_id}: {from_status} → {to_status} ({self.get_cause_display()})"
