"""The language a person reads: the stored choice of a member or login, or a default.

Pages follow the browser's preference (LocaleMiddleware) until a signed-in person has a
stored choice, which then wins (see `members.middleware.StoredLanguageMiddleware`).
Emails go out in the recipient's stored language, or in LANGUAGE_CODE when there is none.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation

from .models import LanguagePreference, Member


def supported_language(language: str | None) -> str | None:
    """Return the code of settings.LANGUAGES that `language` maps to, or None."""
    if not language:
        return None
    try:
        return translation.get_supported_language_variant(language)
    except LookupError:
        return None


def member_language(member: Member) -> str:
    """Return the language of the emails to `member`."""
    return supported_language(member.language) or settings.LANGUAGE_CODE


def stored_language(user) -> str | None:
    """Return the language stored for a login (its member's, else its own), or None."""
    if user is None or not user.is_authenticated:
        return None
    member = Member.objects.filter(user=user).only("language").first()
    if member is not None:
        return supported_language(member.language)
    preference = LanguagePreference.objects.filter(user=user).first()
    return supported_language(preference.language) if preference else None


def stored_address_language(email: str) -> str | None:
    """Return the stored language of the member, else the login, of `email`, or None."""
    member = Member.objects.filter(email__iexact=email).only("language").first()
    if member is not None and supported_language(member.language):
        return supported_language(member.language)
    user = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
    return stored_language(user)


def address_language(email: str) -> str:
    """Return the language of emails to `email`: the stored one, else LANGUAGE_CODE.

    Used where only an address is known, such as the staff notification addresses.
    """
    return stored_address_language(email) or settings.LANGUAGE_CODE
