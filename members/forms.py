import datetime

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import MembershipApplication, Plan

MAX_START_DAYS_AHEAD = 365

phone_validator = RegexValidator(
    regex=r"^\+?[0-9 ()./-]{7,40}$",
    message=_(
        "Enter a phone number using digits, spaces, “+”, “-” or brackets, for example 787-555-0123."
    ),
)


class ApplicationForm(forms.ModelForm):
    """The public membership application, with a honeypot field for bots."""

    # Honeypot: CSS hides it from people and aria-hidden from assistive technology, but
    # bots that fill every input fill this one too.
    website = forms.CharField(
        label=_("Leave this field empty"),
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    class Meta:
        model = MembershipApplication
        fields = [
            "first_name",
            "last_name",
            "email",
            "phone",
            "company",
            "plan",
            "desired_start_date",
            "referral_source",
            "message",
        ]
        labels = {
            "referral_source": _("How did you hear about us?"),
            "message": _("Anything you would like us to know?"),
            "company": _("Company or project"),
        }
        help_texts = {
            "desired_start_date": _(
                "Leave empty to start as soon as your application is approved. "
                "It can be at most one year from today."
            ),
        }
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "given-name"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "family-name"}),
            "email": forms.EmailInput(attrs={"autocomplete": "email"}),
            "phone": forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
            "company": forms.TextInput(attrs={"autocomplete": "organization"}),
            "desired_start_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "message": forms.Textarea(attrs={"rows": 5}),
        }
        error_messages = {
            "first_name": {"required": _("Enter your first name.")},
            "last_name": {"required": _("Enter your last name.")},
            "email": {
                "required": _("Enter your email address."),
                "invalid": _("Enter a valid email address, for example ana@example.com."),
            },
            "plan": {
                "required": _("Choose a plan."),
                "invalid_choice": _(
                    "That plan is not open for applications. Choose one of the plans listed."
                ),
            },
            "desired_start_date": {
                "invalid": _("Enter a valid date, for example 2027-01-15."),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = Plan.objects.filter(is_public=True, is_active=True)
        self.fields["plan"].empty_label = _("Choose a plan")
        self.fields["phone"].validators.append(phone_validator)
        today = timezone.localdate()
        date_attrs = self.fields["desired_start_date"].widget.attrs
        date_attrs["min"] = today.isoformat()
        date_attrs["max"] = (today + datetime.timedelta(days=MAX_START_DAYS_AHEAD)).isoformat()
        for name in ("first_name", "last_name", "email", "phone", "company", "message"):
            field = self.fields[name]
            max_length = getattr(field, "max_length", None)
            if max_length:
                field.error_messages["max_length"] = _(
                    "Use at most %(limit_value)d characters (you entered %(show_value)d)."
                )

    def clean_desired_start_date(self):
        start = self.cleaned_data.get("desired_start_date")
        if start is None:
            return start
        today = timezone.localdate()
        if start < today:
            raise forms.ValidationError(
                _("The start date %(date)s has passed. Choose today or a later date."),
                code="past",
                params={"date": start.isoformat()},
            )
        latest = today + datetime.timedelta(days=MAX_START_DAYS_AHEAD)
        if start > latest:
            raise forms.ValidationError(
                _(
                    "The start date %(date)s is more than a year away. "
                    "Choose a date on or before %(latest)s."
                ),
                code="too_far",
                params={"date": start.isoformat(), "latest": latest.isoformat()},
            )
        return start

    def is_bot(self) -> bool:
        """Return True when the honeypot field was filled in."""
        return bool(self.cleaned_data.get("website"))
