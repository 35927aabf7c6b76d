"""Plans, members, applications and memberships.

State changes happen only in `members.services`; these models hold data, the database
constraints behind every rule that must never break, and small derived properties.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower, Upper
from django.utils.translation import gettext_lazy as _

from cpr_portal.localized_text import in_active_language

ZERO = Decimal("0.00")


def odoo_imported_field() -> models.JSONField:
    """Return the field in which the Odoo import records the values it wrote to a row."""
    return models.JSONField(
        _("values from Odoo"),
        default=dict,
        blank=True,
        editable=False,
        help_text=_(
            "What the Odoo import last wrote to each field. A later import changes a field "
            "only while it still holds that value, so changes made in the portal stay."
        ),
    )


class Plan(models.Model):
    """A membership offer with its monthly price, contract length and included credit."""

    class BillingInterval(models.TextChoices):
        MONTH = "month", _("Monthly")

    class RenewalPolicy(models.TextChoices):
        RENEW_TERM = "renew_term", _("Renews for another term")
        MONTH_TO_MONTH = "month_to_month", _("Continues month to month")
        END = "end", _("Ends at the end of the term")

    class CancellationPolicy(models.TextChoices):
        AT_COMMITMENT_END = "at_commitment_end", _("Takes effect at the commitment end")
        IMMEDIATE = "immediate", _("Takes effect immediately")

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    summary = models.CharField(_("summary"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    summary_es = models.CharField(
        _("summary in Spanish"),
        max_length=200,
        blank=True,
        help_text=_(
            "Shown on Spanish pages and emails in place of the English summary. Leave it "
            "empty to show the English one."
        ),
    )
    description_es = models.TextField(
        _("description in Spanish"),
        blank=True,
        help_text=_(
            "Shown on Spanish pages and emails in place of the English description. Leave "
            "it empty to show the English one."
        ),
    )
    monthly_price = models.DecimalField(_("monthly price (USD)"), max_digits=10, decimal_places=2)
    billing_interval = models.CharField(
        _("billing interval"),
        max_length=20,
        choices=BillingInterval.choices,
        default=BillingInterval.MONTH,
    )
    contract_months = models.PositiveSmallIntegerField(
        _("contract length (months)"),
        default=12,
        help_text=_("How many monthly periods a member commits to when signing up."),
    )
    included_credit = models.DecimalField(
        _("meeting-room credit per period (USD)"),
        max_digits=10,
        decimal_places=2,
        default=ZERO,
    )
    credit_rolls_over = models.BooleanField(
        _("credit rolls over"),
        default=False,
        help_text=_("When off, unused meeting-room credit expires at the end of its period."),
    )
    allows_overage = models.BooleanField(
        _("meeting-room overage allowed"),
        default=True,
        help_text=_(
            "When on, a room booking that costs more than the member's credit is booked and "
            "the rest is charged on the next invoice. When off, such a booking is rejected."
        ),
    )
    renewal_policy = models.CharField(
        _("renewal policy"),
        max_length=20,
        choices=RenewalPolicy.choices,
        default=RenewalPolicy.RENEW_TERM,
    )
    cancellation_policy = models.CharField(
        _("cancellation policy"),
        max_length=20,
        choices=CancellationPolicy.choices,
        default=CancellationPolicy.AT_COMMITMENT_END,
        help_text=_("When a cancellation requested before the commitment end takes effect."),
    )
    is_public = models.BooleanField(
        _("public"),
        default=True,
        help_text=_("Shown on the public site and open for applications."),
    )
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Inactive plans take no new members.")
    )
    stripe_price_id = models.CharField(_("Stripe price id"), max_length=100, blank=True)
    odoo_product_id = models.PositiveIntegerField(
        _("Odoo product id"),
        null=True,
        blank=True,
        unique=True,
        help_text=_(
            "The membership product (product.product) of Odoo that the import maps to this "
            "plan, so that renaming the plan or the product keeps them together."
        ),
    )
    sort_order = models.PositiveSmallIntegerField(_("sort order"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ["sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_price__gte=0),
                name="plan_monthly_price_not_negative",
                violation_error_message=_("The monthly price cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(included_credit__gte=0),
                name="plan_included_credit_not_negative",
                violation_error_message=_("The meeting-room credit cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(contract_months__gte=1),
                name="plan_contract_months_at_least_one",
                violation_error_message=_("The contract must last at least one month."),
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_open_for_applications(self) -> bool:
        return self.is_public and self.is_active

    @property
    def localized_summary(self) -> str:
        """The summary in the active language: summary_es for Spanish when filled in."""
        return in_active_language(self.summary, self.summary_es)

    @property
    def localized_description(self) -> str:
        """The description in the active language: description_es for Spanish when filled in."""
        return in_active_language(self.description, self.description_es)


class Member(models.Model):
    """A person with (or once with) a membership, linked to a login once one exists."""

    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    email = models.EmailField(_("email"), max_length=254)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    bio = models.TextField(_("bio"), blank=True)
    directory_opt_in = models.BooleanField(_("listed in the member directory"), default=False)
    staff_notes = models.TextField(_("staff notes"), blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("login"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="member",
    )
    member_since = models.DateField(_("member since"), null=True, blank=True)
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_(
            "The language of the portal and of the emails for this member. Empty: the "
            "browser's language on the portal and English in emails."
        ),
    )
    odoo_partner_id = models.PositiveIntegerField(
        _("Odoo contact id"),
        null=True,
        blank=True,
        unique=True,
        help_text=_("The res.partner record this member was imported from, if any."),
    )
    odoo_imported = odoo_imported_field()
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="member_email_unique_ignoring_case",
                violation_error_message=_("A member with this email address already exists."),
            ),
        ]
        indexes = [
            # Django's `email__iexact` compares UPPER(email) on PostgreSQL, which the
            # LOWER(email) unique index cannot serve; the Odoo import and sign-in use it.
            models.Index(Upper("email"), name="member_email_upper"),
        ]

    def __str__(self):
        return self.full_name or self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class LanguagePreference(models.Model):
    """The stored language of a login that has no member, such as a staff login.

    A member's language lives on `Member.language`, which also decides the language of
    the member's emails before the member has a login.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("login"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="language_preference",
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("language preference")
        verbose_name_plural = _("language preferences")

    def __str__(self):
        return f"{self.user} → {self.get_language_display()}"


class MembershipApplication(models.Model):
    """An application from the public form, with the staff decision on it."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", _("Submitted")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class ReferralSource(models.TextChoices):
        SEARCH = "search", _("Web search")
        SOCIAL = "social", _("Social media")
        FRIEND = "friend", _("A friend or colleague")
        MEMBER = "member", _("A current member")
        EVENT = "event", _("An event at Code Puerto Rico")
        WALK_IN = "walk_in", _("Walked by the space")
        OTHER = "other", _("Other")

    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    email = models.EmailField(_("email"), max_length=254)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    plan = models.ForeignKey(
        Plan, verbose_name=_("plan"), on_delete=models.PROTECT, related_name="applications"
    )
    desired_start_date = models.DateField(_("desired start date"), null=True, blank=True)
    referral_source = models.CharField(
        _("how they heard of us"), max_length=20, choices=ReferralSource.choices, blank=True
    )
    message = models.TextField(_("message"), max_length=2000, blank=True)
    language = models.CharField(_("language"), max_length=10, default="en")
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.SUBMITTED
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.TextField(_("reason"), blank=True)
    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="applications",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("login"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="membership_applications",
        help_text=_("The login the applicant signed in with, when they applied through Google."),
    )
    created_at = models.DateTimeField(_("submitted at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("membership application")
        verbose_name_plural = _("membership applications")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["submitted", "approved", "rejected", "withdrawn"]),
                name="application_status_valid",
                violation_error_message=_("That status is not one an application can have."),
            ),
            models.UniqueConstraint(
                Lower("email"),
                condition=Q(status="submitted"),
                name="application_one_open_per_email",
                violation_error_message=_(
                    "An application from this email address is already waiting for review."
                ),
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="application_status_created")
        ]

    def __str__(self):
        return f"{self.first_name} {self.last_name} <{self.email}>"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Membership(models.Model):
    """A member's contract on a plan, with the price and credit snapshot it was signed at."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending first payment")
        ACTIVE = "active", _("Active")
        PAST_DUE = "past_due", _("Payment overdue")
        SUSPENDED = "suspended", _("Suspended")
        CANCELLED = "cancelled", _("Cancelled")
        ENDED = "ended", _("Ended")

    CURRENT_STATES = (State.PENDING, State.ACTIVE, State.PAST_DUE, State.SUSPENDED)

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="memberships"
    )
    plan = models.ForeignKey(
        Plan, verbose_name=_("plan"), on_delete=models.PROTECT, related_name="memberships"
    )
    application = models.OneToOneField(
        MembershipApplication,
        verbose_name=_("application"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="membership",
    )
    monthly_price = models.DecimalField(_("monthly price (USD)"), max_digits=10, decimal_places=2)
    included_credit = models.DecimalField(
        _("meeting-room credit per period (USD)"), max_digits=10, decimal_places=2
    )
    contract_months = models.PositiveSmallIntegerField(_("contract length (months)"))
    start_date = models.DateField(_("start date"))
    commitment_end = models.DateField(_("commitment end"))
    end_date = models.DateField(_("end date"), null=True, blank=True)
    cancel_at = models.DateField(
        _("cancellation scheduled for"),
        null=True,
        blank=True,
        help_text=_("The date a requested cancellation takes effect."),
    )
    state = models.CharField(
        _("state"), max_length=20, choices=State.choices, default=State.PENDING
    )
    state_changed_at = models.DateTimeField(_("state changed at"))
    grace_until = models.DateField(
        _("access continues until"),
        null=True,
        blank=True,
        help_text=_("The last day of the grace period of a past-due membership."),
    )
    odoo_ref = models.CharField(
        _("Odoo record"),
        max_length=100,
        blank=True,
        help_text=_(
            "The Odoo record this membership was imported from, as model,id: a membership "
            "line, or the contact for a free membership."
        ),
    )
    odoo_imported = odoo_imported_field()
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["-start_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["member"],
                condition=Q(state__in=["pending", "active", "past_due", "suspended"]),
                name="membership_one_current_per_member",
                violation_error_message=_("This member already has a current membership."),
            ),
            models.CheckConstraint(
                condition=Q(
                    state__in=["pending", "active", "past_due", "suspended", "cancelled", "ended"]
                ),
                name="membership_state_valid",
                violation_error_message=_("That state is not one a membership can have."),
            ),
            models.CheckConstraint(
                condition=Q(monthly_price__gte=0),
                name="membership_monthly_price_not_negative",
                violation_error_message=_("The monthly price cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(included_credit__gte=0),
                name="membership_included_credit_not_negative",
                violation_error_message=_("The meeting-room credit cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(commitment_end__gte=models.F("start_date")),
                name="membership_commitment_end_not_before_start",
                violation_error_message=_("The commitment end cannot be before the start date."),
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="membership_end_date_not_before_start",
                violation_error_message=_("The end date cannot be before the start date."),
            ),
            models.UniqueConstraint(
                fields=["odoo_ref"],
                condition=~Q(odoo_ref=""),
                name="membership_odoo_ref_unique_when_set",
                violation_error_message=_("Another membership was imported from this Odoo record."),
            ),
        ]
        indexes = [models.Index(fields=["state", "plan"], name="membership_state_plan")]

    def __str__(self):
        return f"{self.member} · {self.plan} ({self.get_state_display()})"

    @property
    def is_current(self) -> bool:
        return self.state in self.CURRENT_STATES


# The causes that the services store on MembershipEvent.cause, as codes in English, and
# their labels for the back office and the portal. Staff typing a cause is not possible,
# so a cause missing here is a new code: add it with its label.
MEMBERSHIP_EVENT_CAUSES = {
    "application approved": _("application approved"),
    "first payment": _("first payment"),
    "payment recorded": _("payment recorded"),
    "payment failed": _("payment failed"),
    "paid and start date reached": _("paid and start date reached"),
    "grace period over": _("grace period over"),
    "cancellation scheduled": _("cancellation scheduled"),
    "cancellation withdrawn": _("scheduled cancellation withdrawn"),
    "scheduled cancellation": _("scheduled cancellation took effect"),
    "subscription ended at the gateway": _("subscription ended at the payment gateway"),
    "early termination": _("early termination"),
    "term ended": _("term ended"),
    "term renewed": _("term renewed"),
    "imported from Odoo": _("imported from Odoo"),
    "updated from Odoo": _("updated from Odoo"),
}

# Reasons that the portal itself writes (not typed by staff and not sent by a real
# gateway), stored in English and shown in the reader's language.
FAKE_GATEWAY_DECLINE = "Simulated card decline (fake gateway)."
MEMBERSHIP_EVENT_REASONS = {
    FAKE_GATEWAY_DECLINE: _("Simulated card decline (fake gateway)."),
}


class MembershipEvent(models.Model):
    """One row per state change of a membership: who or what acted, when, and why."""

    membership = models.ForeignKey(
        Membership, verbose_name=_("membership"), on_delete=models.CASCADE, related_name="events"
    )
    from_state = models.CharField(
        _("from state"), max_length=20, choices=Membership.State.choices, blank=True
    )
    to_state = models.CharField(_("to state"), max_length=20, choices=Membership.State.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("acted by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    cause = models.CharField(
        _("cause"),
        max_length=100,
        help_text=_("What triggered the change when no person did, for example a payment."),
        blank=True,
    )
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership event")
        verbose_name_plural = _("membership events")
        ordering = ["created_at", "id"]

    def __str__(self):
        from_state = self.get_from_state_display() if self.from_state else "-"
        return f"{self.membership_id}: {from_state} → {self.get_to_state_display()}"

    def get_cause_display(self) -> str:
        """Return the cause in the active language; a cause with no label shows as stored."""
        label = MEMBERSHIP_EVENT_CAUSES.get(self.cause)
        return str(label) if label is not None else self.cause

    def get_reason_display(self) -> str:
        """Return the reason, translated when it is a fixed text of the portal's own."""
        label = MEMBERSHIP_EVENT_REASONS.get(self.reason)
        return str(label) if label is not None else self.reason
