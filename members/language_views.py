"""The language switch: Django's set_language, plus the stored choice of a signed-in person."""

import logging

from django.conf import settings
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
    language = supported_language(request.POST.get("language"))
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
