"""Back-office forms for door access keys: issuing a key, and the reasons behind changes.

The forms check the input and hand it to `access.services`, which owns the rules (a
current membership, a number not in use). The admin shows the service's AccessError on
the form.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from members.forms_admin import REASON_MAX_LENGTH
from members.models import Member

from .models import AccessKey

NUMBER_MAX_LENGTH = AccessKey._meta.get_field("number").max_length


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, member: Member) -> str:
        return f"{member.full_name} <{member.email}>"


class IssueKeyForm(forms.Form):
    """A key fob, card or mobile key handed to a member."""

    member = MemberChoiceField(
        label=_("Member"),
        queryset=Member.objects.order_by("last_name", "first_name", "pk"),
        error_messages={
            "required": _("Choose the member who receives the key."),
            "invalid_choice": _("That member does not exist. Choose one from the list."),
        },
    )
    number = forms.CharField(
        label=_("Credential number"),
        max_length=NUMBER_MAX_LENGTH,
        help_text=_("The number printed on the fob or card, or the mobile key's id in Salto."),
        error_messages={"required": _("Enter the number printed on the key.")},
    )
    kind = forms.ChoiceField(
        label=_("Kind"), choices=AccessKey.Kind.choices, initial=AccessKey.Kind.FOB
    )


def _reason_field(*, label, help_text, required_message=None) -> forms.CharField:
    # CharField strips surrounding whitespace, so a reason of only spaces is missing.
    return forms.CharField(
        label=label,
        max_length=REASON_MAX_LENGTH,
        help_text=help_text,
        required=required_message is not None,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        error_messages={"required": required_message} if required_message else {},
    )


class SuspendKeyForm(forms.Form):
    reason = _reason_field(
        label=_("Reason for suspending"),
        help_text=_(
            "Kept in the key's history. The key stays suspended, whatever the member pays, "
            "until staff restore it."
        ),
        required_message=_("Give a reason for suspending. It is kept in the key's history."),
    )


class LostKeyForm(forms.Form):
    reason = _reason_field(
        label=_("Note on the loss (optional)"),
        help_text=_("Kept in the key's history, such as where or when the key was lost."),
    )
