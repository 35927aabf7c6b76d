"""Text that staff write in English and, optionally, in Spanish, such as a plan's description."""

from django.conf import settings
from django.utils import translation


def in_active_language(english: str, spanish: str) -> str:
    """Return `spanish` when the active language is Spanish and it is filled in, else `english`.

    Pages and emails call this while the reader's language is active, so an applicant who
    reads Spanish sees the Spanish text, and the English one where staff left it empty.
    """
    language = translation.get_language() or settings.LANGUAGE_CODE
    if language.split("-")[0] == "es" and spanish.strip():
        return spanish
    return english
