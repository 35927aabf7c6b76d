"""Forms of the member portal."""

from django import forms
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from .forms import phone_validator, reject_invisible_characters
from .models import Member

BIO_MAX_LENGTH = 2000
MAX_LENGTH_MESSAGE = _("Use at most %(limit_value)d characters (you entered %(show_value)d).")


class ProfileForm(forms.Form):
    """The profile fields a member edits: phone, company, bio, directory listing, language.

    A plain Form with exactly these fields, so that any other field posted with it
    (member, user, email, staff notes) is ignored. `members.services.update_member_profile`
    saves the cleaned data.
    """

    phone = forms.CharField(
        label=_("Phone"),
        required=False,
        max_length=Member._meta.get_field("phone").max_length,
        validators=[phone_validator, reject_invisible_characters],
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
        error_messages={"max_length": MAX_LENGTH_MESSAGE},
    )
    company = forms.CharField(
        label=_("Company or project"),
        required=False,
        max_length=Member._meta.get_field("company").max_length,
        validators=[reject_invisible_characters],
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
        error_messages={"max_length": MAX_LENGTH_MESSAGE},
    )
    bio = forms.CharField(
        label=_("Bio"),
        required=False,
        max_length=BIO_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("A few lines about you and your work."),
        error_messages={"max_length": MAX_LENGTH_MESSAGE},
    )
    directory_opt_in = forms.BooleanField(
        label=_("List me in the member directory"),
        required=False,
        help_text=_("Other members can then see your name, company and bio."),
    )

    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        # Left out of a post, the stored language stays as it is.
        required=False,
        help_text=_("The language of the portal and of the emails we send you."),
    )

    @classmethod
    def initial_for(cls, member: Member) -> dict:
        """Return the form's initial values from `member`.

        A member without a stored language sees the language of the page selected.
        """
        initial = {name: getattr(member, name) for name in cls.base_fields}
        initial["language"] = member.language or translation.get_language()
        return initial
