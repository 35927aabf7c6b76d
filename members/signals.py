"""Log every sign-in, failed sign-in, account link and MFA change with the user id."""

import logging

from allauth.account.authentication import get_authentication_records
from allauth.account.models import EmailAddress
from allauth.account.signals import (
    email_changed,
    login_code_rejected,
    user_logged_in,
    user_signed_up,
)
from allauth.account.utils import filter_users_by_email
from allauth.mfa.signals import (
    authentication_failed,
    authenticator_added,
    authenticator_removed,
    authenticator_reset,
)
from allauth.socialaccount.signals import social_account_added, social_account_removed
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in as django_user_logged_in
from django.contrib.auth.signals import user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import services
from .languages import stored_language
from .models import Member

logger = logging.getLogger("members.auth")


def _sign_in_methods(request, user) -> str:
    """Return the methods this session used to sign in, such as "password, mfa" or "google"."""
    methods = []
    for record in get_authentication_records(request, user):
        method = record.get("method")
        if method == "socialaccount":
            method = record.get("provider")
        if method and method not in methods:
            methods.append(method)
    return ", ".join(methods) or "unknown method"


def _user_ids_for_credentials(credentials: dict) -> list:
    """Return the ids of the logins that the email or username in `credentials` names."""
    email = credentials.get("email")
    if email:
        return sorted(user.pk for user in filter_users_by_email(email))
    username = credentials.get("username")
    if username:
        users = get_user_model().objects.filter(username=username)
        return list(users.values_list("pk", flat=True))
    return []


@receiver(user_logged_in)
def log_sign_in(sender, request, user, **kwargs):
    logger.info("User %s signed in (%s)", user.pk, _sign_in_methods(request, user))


@receiver(django_user_logged_in)
def restore_stored_language(sender, request, user, **kwargs):
    """Put the person's stored language in the new session, where it wins over the browser.

    Django's signal, not allauth's, so every sign-in (allauth, the admin, the test
    client) restores it. A person without a stored language keeps the browser's. The
    next request activates it (StoredLanguageMiddleware); sign-in ends with a redirect.
    """
    if request is None or not hasattr(request, "session"):
        return
    language = stored_language(user)
    if language:
        request.session[settings.CPR_LANGUAGE_SESSION_KEY] = language


@receiver(user_login_failed)
def log_failed_sign_in(sender, credentials, request=None, **kwargs):
    # Django has already replaced the password in `credentials` with stars. The email or
    # username is used only to find the login's id; it is not logged.
    address = request.META.get("REMOTE_ADDR") if request else "?"
    user_ids = _user_ids_for_credentials(credentials)
    if user_ids:
        logger.warning("Failed sign-in for user %s from %s", ", ".join(map(str, user_ids)), address)
    else:
        logger.warning("Failed sign-in for an unknown account from %s", address)


@receiver(login_code_rejected)
def log_rejected_login_code(sender, request, user, last_attempt=False, **kwargs):
    logger.warning(
        "User %s entered a wrong sign-in code%s",
        user.pk,
        " (no attempts left)" if last_attempt else "",
    )


@receiver(authentication_failed)
def log_failed_mfa(sender, request, user, authenticator, **kwargs):
    logger.warning("User %s entered a wrong %s code", user.pk, authenticator.type)


@receiver(user_signed_up)
def log_sign_up(sender, request, user, **kwargs):
    sociallogin = kwargs.get("sociallogin")
    method = f"a {sociallogin.account.provider}" if sociallogin else "an account"
    logger.info("User %s created by %s sign-up", user.pk, method)


@receiver(user_logged_out)
def log_sign_out(sender, request, user, **kwargs):
    if user is not None:
        logger.info("User %s signed out", user.pk)


@receiver(social_account_added)
def log_link(sender, request, sociallogin, **kwargs):
    logger.info("User %s linked a %s account", sociallogin.user.pk, sociallogin.account.provider)


@receiver(social_account_removed)
def log_unlink(sender, request, socialaccount, **kwargs):
    logger.info("User %s removed a %s account", socialaccount.user_id, socialaccount.provider)


@receiver(authenticator_added)
def log_mfa_added(sender, request, user, authenticator, **kwargs):
    logger.info("User %s added MFA authenticator %s", user.pk, authenticator.type)


@receiver(authenticator_removed)
def log_mfa_removed(sender, request, user, authenticator, **kwargs):
    logger.warning("User %s removed MFA authenticator %s", user.pk, authenticator.type)


@receiver(authenticator_reset)
def log_mfa_reset(sender, request, user, authenticator, **kwargs):
    logger.info("User %s regenerated MFA authenticator %s", user.pk, authenticator.type)


@receiver(email_changed)
def sync_member_email(sender, request, user, from_email_address, to_email_address, **kwargs):
    """Keep the member's email equal to the login's once allauth has verified the change."""
    member = Member.objects.filter(user=user).first()
    if member is None:
        return
    try:
        services.change_member_email(member=member, email=to_email_address.email, actor=user)
    except services.MembersError:
        # AccountAdapter.clean_email rejects such an address when it is added, so this
        # happens only when a member with that address was created between adding and
        # confirming it. allauth has already moved the login to the new address.
        logger.warning(
            "User %s confirmed email address %s, which another member uses, so the email "
            "of member %s is unchanged; staff must resolve the conflict",
            user.pk,
            to_email_address.pk,
            member.pk,
        )


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def record_staff_address(sender, instance, created, **kwargs):
    """Give a staff login made outside allauth, such as by createsuperuser, its address row.

    allauth finds logins by their address rows, stored lowercase, so without one a staff
    email with capitals cannot sign in, and TOTP enrolment needs a verified address. The
    operator who created the login typed the address, so it counts as verified. Member and
    applicant logins get their rows from allauth and members.services instead.
    """
    if not created or not instance.email:
        return
    if not (instance.is_staff or instance.is_superuser):
        return
    if EmailAddress.objects.filter(user=instance).exists():
        return
    EmailAddress.objects.create(
        user=instance, email=instance.email.strip().lower(), primary=True, verified=True
    )
