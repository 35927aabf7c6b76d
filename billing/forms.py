"""Back-office forms: a payment received outside the gateway, and a credit adjustment.

The forms check the input and hand it to `billing.services`, which owns the rules. The
service raises BillingError when the change is not allowed, and the admin shows that
message on the form.
"""

from decimal import Decimal

from django import forms
from django.contrib.admin.widgets import AdminDateWidget, AdminSplitDateTime
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from members.models import Member, Membership

from .models import Payment

AMOUNT_MAX_DIGITS = 10
REFERENCE_MAX_LENGTH = 255
NOTE_MAX_LENGTH = 2000

# Staff record these methods by hand. Card payments arrive from the gateway only.
MANUAL_METHODS = [
    (value, label) for value, label in Payment.Method.choices if value != Payment.Method.GATEWAY
]
# Every manual method but cash comes with a number staff can quote: a check number, an ATH
# Móvil reference or a transfer confirmation. `record_manual_payment` requires it too.
METHODS_NEEDING_REFERENCE = {value for value, _label in MANUAL_METHODS} - {Payment.Method.CASH}


class MembershipChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, membership: Membership) -> str:
        return _("%(member)s · %(plan)s · %(state)s (membership %(id)s)") % {
            "member": membership.member.full_name,
            "plan": membership.plan.name,
            "state": membership.get_state_display(),
            "id": membership.pk,
        }


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, member: Member) -> str:
        return f"{member.full_name} <{member.email}>"


def _amount_field(**kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=2,
        error_messages={
            "max_decimal_places": _("Enter the amount in dollars and cents, such as 250.00."),
        },
        **kwargs,
    )


class ManualPaymentForm(forms.Form):
    """Cash, a check, ATH Móvil or a bank transfer received by staff for a membership."""

    membership = MembershipChoiceField(
        label=_("Membership"),
        queryset=Membership.objects.select_related("member", "plan").order_by(
            "member__last_name", "member__first_name", "-start_date", "-id"
        ),
        error_messages={
            "required": _("Choose the membership the payment is for."),
            "invalid_choice": _("That membership does not exist. Choose one from the list."),
        },
    )
    amount = _amount_field(
        label=_("Amount (USD)"),
        min_value=Decimal("0.01"),
        help_text=_("The amount received, in dollars, such as 250.00."),
    )
    method = forms.ChoiceField(label=_("Method"), choices=MANUAL_METHODS)
    reference = forms.CharField(
        label=_("Reference"),
        max_length=REFERENCE_MAX_LENGTH,
        required=False,
        help_text=_(
            "The check number, ATH Móvil reference or bank transfer confirmation. Required "
            "for every method except cash."
        ),
    )
    received_at = forms.SplitDateTimeField(
        label=_("Received at"),
        widget=AdminSplitDateTime,
        initial=timezone.now,
        help_text=_("When the money was received, in Puerto Rico time."),
    )
    note = forms.CharField(
        label=_("Note"),
        max_length=NOTE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def clean_received_at(self):
        received_at = self.cleaned_data["received_at"]
        if received_at > timezone.now():
            raise forms.ValidationError(
                _("%(value)s is in the future. Enter when the money was received."),
                params={"value": date_format(timezone.localtime(received_at), "DATETIME_FORMAT")},
                code="future",
            )
        return received_at

    def clean(self):
        cleaned = super().clean()
        method = cleaned.get("method")
        if method in METHODS_NEEDING_REFERENCE and not cleaned.get("reference"):
            self.add_error(
                "reference",
                forms.ValidationError(
                    _("Enter the %(method)s reference, so the payment can be traced."),
                    params={"method": Payment.Method(method).label},
                    code="reference_required",
                ),
            )
        return cleaned


class CreditAdjustmentForm(forms.Form):
    """A manual change to a member's meeting-room credit, with the reason kept in the ledger."""

    member = MemberChoiceField(
        label=_("Member"),
        queryset=Member.objects.order_by("last_name", "first_name", "pk"),
        error_messages={
            "required": _("Choose the member whose credit changes."),
            "invalid_choice": _("That member does not exist. Choose one from the list."),
        },
    )
    amount = _amount_field(
        label=_("Amount (USD)"),
        help_text=_("Positive adds credit, negative takes it away, for example 50.00 or -25.00."),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Kept on the ledger entry. The member does not see it."),
        error_messages={
            "required": _("Give a reason for the adjustment. It is kept in the credit ledger."),
        },
    )
    expires_on = forms.DateField(
        label=_("Expires on"),
        required=False,
        widget=AdminDateWidget,
        help_text=_(
            "Only for credit added: the first day it can no longer be used. Leave empty for "
            "credit that never expires."
        ),
    )

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError(
                _("Enter an amount other than 0.00: positive adds credit, negative takes it away."),
                code="zero",
            )
        return amount

    def clean(self):
        cleaned = super().clean()
        amount = cleaned.get("amount")
        if amount is not None and amount < 0 and cleaned.get("expires_on"):
            self.add_error(
                "expires_on",
                forms.ValidationError(
                    _(
                        "Only credit that is added can expire. Clear the date, or use a positive "
                        "amount."
                    ),
                    code="expiry_on_removal",
                ),
            )
        return cleaned
