"""Forms of the staff back office that are not model forms: the reasons behind decisions."""

from django import forms
from django.utils.translation import gettext_lazy as _

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
