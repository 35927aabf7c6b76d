"""The language switch: Django's set_language, plus the stored choice of a signed-in person."""

import logging

from django.conf import settings
from django.contrib import messages
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from . import services
from .languages import supported_language

logger = logging.getLogger(__name__)


@require_POST
def set_language(request):
    """Switch the language and return to the `next` page, as Django's set_language does.

    A signed-in person's choice is also stored (on the member, or for staff on their
    login) and put in the session, so it wins over the browser on later visits and
    decides the language of their emails.
    """
    response = django_set_language(request)
    posted = request.POST.get("language", "")
    language = supported_language(posted)
    if language is None:
        # Django's set_language ignores the code silently, so a message explains the rejection.
        logger.info("Language switch with unsupported code %r ignored", posted[:20])
        names = ", ".join(str(name) for _code, name in settings.LANGUAGES)
        messages.error(
            request,
            _(
                "“%(code)s” is not a language of this portal, so the language did not change. "
                "Choose one of: %(languages)s."
            )
            % {"code": posted[:20], "languages": names},
        )
        return response
    # Django ignores a code that is not in LANGUAGES; so does the stored choice.
    if language != request.POST.get("language") or not request.user.is_authenticated:
        return response
    try:
        services.set_preferred_language(user=request.user, language=language)
    except services.MembersError as error:
        logger.warning("Language of user %s not stored: %s", request.user.pk, error)
        return response
    request.session[settings.CPR_LANGUAGE_SESSION_KEY] = language
    return response
