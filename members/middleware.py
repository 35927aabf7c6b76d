import logging

from allauth.mfa.utils import is_mfa_enabled
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

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
