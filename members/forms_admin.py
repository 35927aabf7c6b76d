"""Forms of the staff back office: the reasons behind decisions, and the application edit."""

from django import forms
from django.utils.translation import gettext_lazy as _

from members.forms import ApplicationForm
from members.models import MembershipApplication

# Matches the maximum length of the application message, which is long enough for a note.
REASON_MAX_LENGTH = 2000


def _reason_field(*, label, help_text, required_message) -> forms.CharField:
    # CharField strips surrounding whitespace, so a reason of only spaces is missing.
    return forms.CharField(
        label=label,
        max_length=REASON_MAX_LENGTH,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        error_messages={"required": required_message},
    )


class RejectApplicationForm(forms.Form):
    reason = _reason_field(
        label=_("Reason for rejecting"),
        help_text=_("Kept on the application as the reason for the decision."),
        required_message=_("Give a reason for rejecting. It is kept on the application."),
    )


class CancelImmediatelyForm(forms.Form):
    reason = _reason_field(
        label=_("Reason for cancelling now"),
        help_text=_(
            "Cancelling now overrides the plan's cancellation policy, which may defer the "
            "cancellation to the commitment end. The reason is kept in the membership history."
        ),
        required_message=_(
            "Give a reason for cancelling before the commitment end. "
            "It is kept in the membership history."
        ),
    )


class ApplicationAdminForm(forms.ModelForm):
    """The staff edit form of an application under review.

    The database allows one open application per email (ignoring case). Django skips
    that constraint here because its condition reads `status`, a read-only field in the
    admin, so the form checks it itself.
    """

    class Meta:
        model = MembershipApplication
        fields = ApplicationForm.Meta.fields

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        others = MembershipApplication.objects.filter(
            email__iexact=email, status=MembershipApplication.Status.SUBMITTED
        ).exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(
                _(
                    "Application %(id)s from %(email)s is already waiting for review. "
                    "Decide that one first, or use another email address."
                ),
                params={"id": others.first().pk, "email": email},
                code="duplicate",
            )
        return email
