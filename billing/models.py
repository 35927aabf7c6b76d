"""Invoices, payments, stored gateway events and the meeting-room credit ledger.

State changes happen only in `billing.services`. Money is `Decimal` US dollars with two
places.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.formats import date_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.models import Member, Membership

from .money import format_usd

ZERO = Decimal("0.00")

# The payment gateways, by the name each stores on its rows. Stripe is a product name; the
# fake gateway is the test stand-in of embedded mode.
GATEWAY_CHOICES = [("stripe", "Stripe"), ("fake", _("Test gateway (fake)"))]


class GatewayCustomer(models.Model):
    """The gateway's customer record for a member."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="gateway_customers"
    )
    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES)
    reference = models.CharField(_("gateway reference"), max_length=255)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("gateway customer")
        verbose_name_plural = _("gateway customers")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "gateway"], name="gateway_customer_one_per_member"
            ),
            models.UniqueConstraint(
                fields=["gateway", "reference"], name="gateway_customer_reference_unique"
            ),
        ]

    def __str__(self):
        return f"{self.gateway}:{self.reference}"


class GatewaySubscription(models.Model):
    """The gateway's recurring billing of a membership."""

    membership = models.OneToOneField(
        Membership,
        verbose_name=_("membership"),
        on_delete=models.CASCADE,
        related_name="gateway_subscription",
    )
    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES)
    reference = models.CharField(_("gateway reference"), max_length=255)
    cancel_at = models.DateField(_("cancellation scheduled for"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("gateway subscription")
        verbose_name_plural = _("gateway subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "reference"], name="gateway_subscription_reference_unique"
            ),
        ]

    def __str__(self):
        return f"{self.gateway}:{self.reference}"


class Invoice(models.Model):
    """The bill for one billing period of a membership, or for ending it early.

    An early-termination invoice has no period number; its period runs from the day the
    membership was cancelled to the commitment end that the charge compensates.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PAID = "paid", _("Paid")
        VOID = "void", _("Void")
        UNCOLLECTIBLE = "uncollectible", _("Uncollectible")

    class Kind(models.TextChoices):
        PERIOD = "period", _("Billing period")
        EARLY_TERMINATION = "early_termination", _("Early termination")

    membership = models.ForeignKey(
        Membership, verbose_name=_("membership"), on_delete=models.PROTECT, related_name="invoices"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.PERIOD)
    period_number = models.PositiveIntegerField(
        _("period number"),
        null=True,
        blank=True,
        help_text=_(
            "1 for the first billing period of the membership; empty on an "
            "early-termination invoice."
        ),
    )
    period_start = models.DateField(_("period start"))
    period_end = models.DateField(
        _("period end"), help_text=_("The first day of the next period (not included).")
    )
    amount = models.DecimalField(_("amount (USD)"), max_digits=10, decimal_places=2)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.OPEN
    )
    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES, blank=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=255, blank=True)
    hosted_url = models.URLField(_("invoice page"), max_length=1000, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["membership", "period_number"],
                name="invoice_one_per_membership_period",
                violation_error_message=_(
                    "This membership already has an invoice for that period."
                ),
            ),
            models.UniqueConstraint(
                fields=["gateway", "gateway_reference"],
                condition=~Q(gateway_reference=""),
                name="invoice_gateway_reference_unique",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0),
                name="invoice_amount_not_negative",
                violation_error_message=_("An invoice amount cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=models.F("period_start")),
                name="invoice_period_end_after_start",
                violation_error_message=_("An invoice period must end after it starts."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "paid", "void", "uncollectible"]),
                name="invoice_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(kind="period", period_number__isnull=False)
                | Q(kind="early_termination", period_number__isnull=True),
                name="invoice_period_number_matches_kind",
                violation_error_message=_(
                    "A billing-period invoice needs a period number, and an early-termination "
                    "invoice has none."
                ),
            ),
        ]
        indexes = [models.Index(fields=["status", "period_start"], name="invoice_status_period")]

    def __str__(self):
        return gettext("Invoice %(number)s · membership %(membership)s · %(period_start)s") % {
            "number": self.pk,
            "membership": self.membership_id,
            "period_start": date_format(self.period_start),
        }

    @property
    def period_last_day(self) -> datetime.date:
        """The last day the invoice covers: `period_end` is the next period's first day."""
        return self.period_end - datetime.timedelta(days=1)


class InvoiceItem(models.Model):
    """A one-off charge (or credit, when negative) added to a membership's next invoice.

    A pending item waits for the next billing-period invoice. The gateway learns of it
    after commit (`billing.services.sync_invoice_item`), so its own next invoice carries
    it: Stripe as an invoice item on the subscription. When that invoice arrives, or
    when staff record a manual payment that opens the next invoice, the item is attached
    to the invoice and becomes invoiced. A void item was withdrawn before it was billed.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the next invoice")
        INVOICED = "invoiced", _("Invoiced")
        VOID = "void", _("Withdrawn")

    membership = models.ForeignKey(
        Membership,
        verbose_name=_("membership"),
        on_delete=models.PROTECT,
        related_name="invoice_items",
    )
    amount = models.DecimalField(
        _("amount (USD)"),
        max_digits=10,
        decimal_places=2,
        help_text=_("Positive is a charge, negative a credit on the invoice."),
    )
    description = models.CharField(_("description"), max_length=250)
    reference = models.CharField(
        _("reference"),
        max_length=255,
        help_text=_("What the item is for, for example booking:42; one item per reference."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="items",
    )
    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES, blank=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=255, blank=True)
    gateway_removed_at = models.DateTimeField(_("removed at the gateway"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    voided_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("invoice item")
        verbose_name_plural = _("invoice items")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="invoice_item_reference_unique"),
            models.UniqueConstraint(
                fields=["gateway", "gateway_reference"],
                condition=~Q(gateway_reference=""),
                name="invoice_item_gateway_reference_unique",
            ),
            models.CheckConstraint(
                condition=~Q(amount=0),
                name="invoice_item_amount_not_zero",
                violation_error_message=_("An invoice item cannot be $0.00."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "invoiced", "void"]),
                name="invoice_item_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="invoiced", invoice__isnull=False)
                | (~Q(status="invoiced") & Q(invoice__isnull=True)),
                name="invoice_item_invoice_matches_status",
                violation_error_message=_("Only an invoiced item names its invoice."),
            ),
        ]
        indexes = [
            models.Index(fields=["membership", "status"], name="invoice_item_membership_status")
        ]

    def __str__(self):
        return f"{self.description} ({self.amount})"


class Payment(models.Model):
    """Money received for a membership, through the gateway or recorded by staff."""

    class Method(models.TextChoices):
        GATEWAY = "gateway", _("Card (online)")
        CASH = "cash", _("Cash")
        CHECK = "check", _("Check")
        ATH_MOVIL = "ath_movil", _("ATH Móvil")
        BANK_TRANSFER = "bank_transfer", _("Bank transfer")

    membership = models.ForeignKey(
        Membership, verbose_name=_("membership"), on_delete=models.PROTECT, related_name="payments"
    )
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        related_name="payments",
        null=True,
        blank=True,
    )
    amount = models.DecimalField(_("amount (USD)"), max_digits=10, decimal_places=2)
    method = models.CharField(_("method"), max_length=20, choices=Method.choices)
    reference = models.CharField(
        _("reference"),
        max_length=255,
        blank=True,
        help_text=_("Check number, ATH Móvil reference or the gateway's payment id."),
    )
    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES, blank=True)
    received_at = models.DateTimeField(_("received at"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0),
                name="payment_amount_positive",
                violation_error_message=_("A payment amount must be more than zero."),
            ),
            models.UniqueConstraint(
                fields=["gateway", "reference"],
                condition=Q(method="gateway"),
                name="payment_gateway_reference_unique",
            ),
        ]

    def __str__(self):
        return gettext("Payment %(number)s · %(amount)s · %(method)s") % {
            "number": self.pk,
            "amount": format_usd(self.amount),
            "method": self.get_method_display(),
        }


class WebhookEvent(models.Model):
    """A gateway event, stored by its id before it is processed, so it is handled once."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored")
        FAILED = "failed", _("Failed")

    gateway = models.CharField(_("gateway"), max_length=30, choices=GATEWAY_CHOICES)
    event_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(_("type"), max_length=100)
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.RECEIVED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    error = models.TextField(_("last error"), blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="webhook_event_unique"),
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_status_received")]

    def __str__(self):
        return f"{self.gateway}:{self.event_id} ({self.event_type})"


LOT_KINDS = ("grant", "adjust")
MONEY = models.DecimalField(max_digits=12, decimal_places=2)


class CreditEntryQuerySet(models.QuerySet):
    """Ledger queries that each cost one query, whatever the length of the history."""

    def lots(self):
        """Keep the lots: grants and positive adjustments, which later entries draw from."""
        return self.filter(kind__in=LOT_KINDS, lot__isnull=True, amount__gt=0)

    def with_remaining(self):
        """Annotate each lot with `remaining`: its amount plus every entry drawn from it."""
        return self.annotate(
            remaining=models.ExpressionWrapper(
                F("amount") + Coalesce(Sum("draws__amount"), Value(ZERO), output_field=MONEY),
                output_field=MONEY,
            )
        )

    def live(self, today):
        """Keep the lots that can be spent on `today`: started, unexpired, with credit left.

        Applies to a queryset of lots. The result is ordered oldest-expiring first, with
        credit that never expires last, in the order a spend draws from it.
        """
        started = Q(period_start__isnull=True) | Q(period_start__lte=today)
        return (
            self.with_remaining()
            .filter(
                started,
                Q(expires_on__isnull=True) | Q(expires_on__gt=today),
                remaining__gt=0,
            )
            .order_by(F("expires_on").asc(nulls_last=True), "id")
        )

    def balance(self, *, member, today) -> Decimal:
        """Return the credit `member` can spend on `today`, in one query.

        Counts every entry of a lot that has not expired by `today`, so a lot past its date
        stops counting before the expiry task writes its expire entry.
        """
        # A lot counts from its period's start (credit paid in advance waits for its month)
        # until its expiry date.
        unexpired = (
            Q(lot__isnull=True)
            & (Q(expires_on__isnull=True) | Q(expires_on__gt=today))
            & (Q(period_start__isnull=True) | Q(period_start__lte=today))
        )
        unexpired |= (
            Q(lot__isnull=False)
            & (Q(lot__expires_on__isnull=True) | Q(lot__expires_on__gt=today))
            & (Q(lot__period_start__isnull=True) | Q(lot__period_start__lte=today))
        )
        total = self.filter(unexpired, member=member).aggregate(
            total=Coalesce(Sum("amount"), Value(ZERO), output_field=MONEY)
        )["total"]
        return total.quantize(ZERO)


class CreditEntry(models.Model):
    """One append-only line of a member's meeting-room credit ledger.

    Grants and positive adjustments are lots that expire on `expires_on`. Spends,
    refunds, expiries and negative adjustments name the lot they draw from (`lot`),
    so each lot's remaining amount is its own amount plus the entries that point at it.
    Once the expiry task has run, the balance is the sum of every entry's amount, and
    `CreditEntryQuerySet.balance` also leaves out lots past their date before it runs.
    """

    class Kind(models.TextChoices):
        GRANT = "grant", _("Grant")
        SPEND = "spend", _("Spend")
        REFUND = "refund", _("Refund")
        EXPIRE = "expire", _("Expiry")
        ADJUST = "adjust", _("Adjustment")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="credit_entries"
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    amount = models.DecimalField(
        _("amount (USD)"),
        max_digits=10,
        decimal_places=2,
        help_text=_("Positive adds credit, negative takes it away."),
    )
    lot = models.ForeignKey(
        "self",
        verbose_name=_("credit lot"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="draws",
    )
    period_start = models.DateField(_("period start"), null=True, blank=True)
    expires_on = models.DateField(
        _("expires on"),
        null=True,
        blank=True,
        help_text=_("A lot can be used before this date; empty for credit that never expires."),
    )
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_entries",
    )
    reference = models.CharField(
        _("reference"), max_length=255, blank=True, help_text=_("For example a booking id.")
    )
    reason = models.TextField(_("reason"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = CreditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("credit entry")
        verbose_name_plural = _("credit entries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(kind="grant"),
                name="credit_one_grant_per_invoice",
            ),
            # The expiry task writes reference "", so it expires a lot once. A refund into a
            # lot that has already expired is expired at once under the refund's reference.
            models.UniqueConstraint(
                fields=["lot", "reference"],
                condition=Q(kind="expire"),
                name="credit_one_expiry_per_lot",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["grant", "spend", "refund", "expire", "adjust"]),
                name="credit_kind_valid",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="grant", amount__gt=0)
                    | Q(kind="refund", amount__gt=0)
                    | Q(kind="spend", amount__lt=0)
                    | Q(kind="expire", amount__lt=0)
                    | (Q(kind="adjust") & ~Q(amount=0))
                ),
                name="credit_amount_sign_matches_kind",
                violation_error_message=_(
                    "Grants and refunds add credit, spends and expiries take it away, and an "
                    "adjustment cannot be zero."
                ),
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["grant", "adjust"]) | Q(lot__isnull=False),
                name="credit_draw_names_lot",
            ),
        ]
        indexes = [models.Index(fields=["member", "expires_on"], name="credit_member_expiry")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} · member {self.member_id}"
