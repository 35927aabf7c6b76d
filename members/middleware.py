import logging

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from .languages import supported_language

logger = logging.getLogger(__name__)


class StaffMFARequiredMiddleware:
    """Send staff without a TOTP authenticator to set one up before the back office.

    allauth requests the second factor at every sign-in once it is set up (password,
    emailed code or Google), so this covers the remaining gap: a staff login that has
    not enrolled yet.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and (user.is_staff or user.is_superuser)
            and request.path.startswith(reverse("admin:index"))
            and not is_mfa_enabled(user, ["totp"])
        ):
            logger.info("Staff user %s sent to set up MFA before the back office", user.pk)
            messages.warning(
                request,
                _("Staff accounts need two-factor authentication. Set it up to continue."),
            )
            setup_url = reverse("mfa_activate_totp")
            return redirect(f"{setup_url}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


class StoredLanguageMiddleware:
    """Activate a signed-in person's stored language, which wins over the browser's.

    Sits after LocaleMiddleware. The language is copied into the session at sign-in
    (`members.signals`) and whenever the person switches language, so that no page pays
    a query for it. The response also sets Django's language cookie, so the choice stays
    after signing out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = None
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            language = supported_language(request.session.get(settings.CPR_LANGUAGE_SESSION_KEY))
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if language and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != language:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN,
                secure=settings.LANGUAGE_COOKIE_SECURE,
                httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response
