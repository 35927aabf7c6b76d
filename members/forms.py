import datetime
import logging
import unicodedata

from allauth.socialaccount.forms import SignupForm as SocialSignupForm
from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import transaction
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from . import services
from .models import MembershipApplication, Plan
from .ratelimit import client_ip

logger = logging.getLogger(__name__)

THANKS_SESSION_KEY = "members:application"


def remember_application(request, application) -> None:
    """Keep what the thank-you page shows about the application just submitted."""
    request.session[THANKS_SESSION_KEY] = {
        "first_name": application.first_name,
        "email": application.email,
        "plan": application.plan.name,
    }


MAX_START_DAYS_AHEAD = 365

phone_validator = RegexValidator(
    regex=r"^\+?[0-9 ()./-]{7,40}$",
    message=_(
        "Enter a phone number using digits, spaces, parentheses and the characters “+”, “-”, "
        "“.” or “/”, for example 787-555-0123."
    ),
)


def validate_start_date(start: datetime.date | None) -> datetime.date | None:
    """Accept no date, or a date from today (San Juan time) to one year ahead."""
    if start is None:
        return start
    today = timezone.localdate()
    if start < today:
        raise forms.ValidationError(
            _("The start date %(date)s has passed. Choose today or a later date."),
            code="past",
            params={"date": date_format(start)},
        )
    latest = today + datetime.timedelta(days=MAX_START_DAYS_AHEAD)
    if start > latest:
        raise forms.ValidationError(
            _(
                "The start date %(date)s is more than a year away. "
                "Choose a date on or before %(latest)s."
            ),
            code="too_far",
            params={"date": date_format(start), "latest": date_format(latest)},
        )
    return start


def reject_invisible_characters(value: str) -> None:
    """Reject control and format characters, such as U+202E, that can disguise a name.

    Right-to-left overrides and zero-width characters make a name display differently
    from what is stored, in the admin and in emails.
    """
    for character in value:
        if unicodedata.category(character) in {"Cc", "Cf"} and character not in "\r\n\t":
            raise forms.ValidationError(
                _(
                    "Remove the invisible character U+%(code)04X from this field; it changes "
                    "how the text is displayed."
                ),
                code="invisible_character",
                params={"code": ord(character)},
            )


class ListedModelChoiceIterator(forms.models.ModelChoiceIterator):
    """Read a short list of choices with one plain query.

    Django's iterator uses `QuerySet.iterator()`, which on PostgreSQL opens a server-side
    cursor: DECLARE, FETCH and CLOSE, three round trips for the handful of open plans.
    """

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


# Fields that appear as one line of text in lists, messages and emails.
SINGLE_LINE_FIELDS = ("first_name", "last_name", "email", "phone", "company")


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
        # The iterator first: setting the queryset hands the widget its choices.
        self.fields["plan"].iterator = ListedModelChoiceIterator
        self.fields["plan"].queryset = Plan.objects.filter(is_public=True, is_active=True)
        self.fields["plan"].empty_label = _("Choose a plan")
        self.fields["phone"].validators.append(phone_validator)
        for name in SINGLE_LINE_FIELDS:
            self.fields[name].validators.append(reject_invisible_characters)
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
        return validate_start_date(self.cleaned_data.get("desired_start_date"))

    def is_bot(self) -> bool:
        """Return True when the honeypot field was filled in."""
        return bool(self.cleaned_data.get("website"))


def submit_application_form(data: dict, *, ip_address: str | None, user=None):
    """Submit the cleaned data of an application form, in the current language."""
    return services.submit_application(
        first_name=data["first_name"],
        last_name=data["last_name"],
        email=data["email"],
        phone=data["phone"],
        company=data["company"],
        plan=data["plan"],
        desired_start_date=data["desired_start_date"],
        referral_source=data["referral_source"],
        message=data["message"],
        language=get_language() or settings.LANGUAGE_CODE,
        ip_address=ip_address,
        user=user,
    )


class GoogleApplicationForm(SocialSignupForm):
    """The application form for a person who signed in with Google and is not a member.

    allauth shows it as its social sign-up form. The email is the one Google verified
    and cannot be changed here. Saving creates the login and the application together,
    linked to each other, in one transaction.
    """

    APPLICATION_FIELDS = [name for name in ApplicationForm.Meta.fields if name != "email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        application_fields = ApplicationForm(initial=self.initial).fields
        for name in self.APPLICATION_FIELDS:
            self.fields[name] = application_fields[name]
        self.fields["email"].disabled = True
        self.fields["email"].help_text = _("The address your Google account verified.")
        self.order_fields(["first_name", "last_name", "email", *self.APPLICATION_FIELDS])

    def clean_desired_start_date(self):
        return validate_start_date(self.cleaned_data.get("desired_start_date"))

    def clean(self):
        cleaned_data = super().clean()
        email = cleaned_data.get("email")
        if email:
            try:
                services.check_can_apply(email=email)
            except services.DuplicateApplicationError as error:
                self.add_error(None, str(error))
        return cleaned_data

    def save(self, request):
        data = self.cleaned_data
        with transaction.atomic():
            user = super().save(request)
            application = submit_application_form(
                data, ip_address=client_ip(request) or None, user=user
            )
        remember_application(request, application)
        return user

    def try_save(self, request):
        try:
            return super().try_save(request)
        except services.MembersError as error:
            # Another submission for this email won the race after clean() ran.
            logger.info("Google application for an email with an open application: %s", error)
            self.add_error(None, str(error))
            return None, render(request, "socialaccount/signup.html", {"form": self}, status=409)
