"""django-allauth adapters: who may sign in, and how a Google login finds its member.

A Google login whose email Google reports as verified and that matches a member's email
(ignoring case) signs into that member's login, creating it when the member has none.
A verified email that matches no member leads to the application form, where submitting
creates the login. An unverified email is turned away before anything is stored.
"""

import datetime
import logging

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.utils import filter_users_by_email
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sites.shortcuts import get_current_site
from django.db.models import Q
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from outbox.services import queue_account_email

from . import services
from .languages import stored_address_language
from .models import Member, MembershipApplication

logger = logging.getLogger(__name__)


def account_email_lifetime(template_prefix: str) -> datetime.timedelta | None:
    """Return how long the code or link in an allauth email works, or None if it has none.

    The durations are the allauth (and Django) settings that make the code or link stop
    working, so an email that could not be sent in time is not sent at all.
    """
    name = template_prefix.rpartition("/")[2]
    if name == "login_code":
        seconds = account_settings.LOGIN_BY_CODE_TIMEOUT
    elif name in ("email_confirmation", "email_confirmation_signup"):
        if account_settings.EMAIL_VERIFICATION_BY_CODE_ENABLED:
            seconds = account_settings.EMAIL_VERIFICATION_BY_CODE_TIMEOUT
        else:
            seconds = account_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS * 24 * 60 * 60
    elif name == "password_reset_code":
        seconds = account_settings.PASSWORD_RESET_BY_CODE_TIMEOUT
    elif name == "password_reset_key":
        # allauth's reset links are Django password reset tokens.
        seconds = settings.PASSWORD_RESET_TIMEOUT
    else:
        return None
    return datetime.timedelta(seconds=seconds)


# The name allauth's emails greet with ("Hello from Code Puerto Rico!").
SITE_NAME = "Code Puerto Rico"


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        """Queue allauth's email in the outbox instead of sending it during the request.

        The message is rendered here, as allauth renders it, and a Celery worker sends it
        once the request's transaction commits, so a slow or unreachable relay never holds
        up or breaks the request. The outbox marks the email expired, unsent, once its
        code or link has stopped working.
        """
        request = allauth_context.request
        # Without django.contrib.sites the site is a RequestSite named after the host;
        # allauth's emails greet and sign with its name.
        site = get_current_site(request)
        site.name = SITE_NAME
        values = {"request": request, "email": email, "current_site": site, **context}
        # In the recipient's stored language, not the language of the page that asked
        # for the email (a staff member may reset a member's password in English).
        language = (
            stored_address_language(email) or translation.get_language() or settings.LANGUAGE_CODE
        )
        with translation.override(language):
            message = self.render_mail(template_prefix, email, values)
        if message.content_subtype == "html":
            text, html = "", message.body
        else:
            text = message.body
            alternatives = getattr(message, "alternatives", [])
            html = next((content for content, kind in alternatives if kind == "text/html"), "")
        lifetime = account_email_lifetime(template_prefix)
        queue_account_email(
            recipient=email,
            subject=message.subject,
            text=text,
            html=html,
            source=template_prefix,
            expires_at=timezone.now() + lifetime if lifetime is not None else None,
            language=language,
        )

    def is_open_for_signup(self, request):
        # Accounts are made for members (on approval) and for applicants who come
        # through Google; there is no open sign-up with a password.
        return False

    def get_signup_redirect_url(self, request):
        return reverse("members:apply_thanks")

    def get_login_redirect_url(self, request):
        user = request.user
        if user.is_staff:
            return reverse("admin:index")
        if Member.objects.filter(user=user).exists():
            return reverse("members:portal_dashboard")
        if user.membership_applications.filter(
            status=MembershipApplication.Status.SUBMITTED
        ).exists():
            # The portal shows an applicant the application under review.
            return reverse("members:portal_dashboard")
        return reverse("members:apply")

    def clean_email(self, email):
        email = super().clean_email(email)
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            return email

        # For a signed-in user this runs when they add an address to their login
        # (allauth's AddEmailForm). With enumeration prevention on, allauth 65 accepts an
        # address that another login has unverified, and mails a confirmation link to
        # it. Once that is confirmed, two logins share the address, sign-ins by it reach
        # the wrong one, and the member's email no longer matches. So the address must
        # belong to no other member and no other login, and an open application reserves
        # its address for the applicant's future login.
        other_members = Member.objects.filter(email__iexact=email).exclude(user=user)
        other_logins = [other for other in filter_users_by_email(email) if other.pk != user.pk]
        other_addresses = EmailAddress.objects.filter(email__iexact=email).exclude(user=user)
        other_users = get_user_model().objects.filter(email__iexact=email).exclude(pk=user.pk)
        open_applications = MembershipApplication.objects.filter(
            email__iexact=email, status=MembershipApplication.Status.SUBMITTED
        ).exclude(user=user)

        if (
            other_members.exists()
            or other_logins
            or other_addresses.exists()
            or other_users.exists()
            or open_applications.exists()
        ):
            raise forms.ValidationError(
                _("%(email)s already belongs to another account. Choose a different address.")
                % {"email": email},
                code="email_taken",
            )
        return email


def _is_staff_email(email: str) -> bool:
    """Tell whether any address row, login email or member email maps `email` to staff."""
    staff = Q(is_staff=True) | Q(is_superuser=True)
    users = get_user_model().objects.filter(email__iexact=email)
    if users.filter(staff).exists():
        return True
    if (
        EmailAddress.objects.filter(email__iexact=email)
        .filter(Q(user__is_staff=True) | Q(user__is_superuser=True))
        .exists()
    ):
        return True
    return (
        Member.objects.filter(email__iexact=email)
        .filter(Q(user__is_staff=True) | Q(user__is_superuser=True))
        .exists()
    )


def _verified_email(sociallogin) -> str | None:
    for address in sociallogin.email_addresses:
        if address.verified and address.email:
            return address.email.strip()
    return None


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request, sociallogin):
        provider = sociallogin.account.provider
        if sociallogin.is_existing:
            return
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            # A signed-in person connecting Google to their own login, staff included.
            return

        email = _verified_email(sociallogin)
        if email is None:
            logger.warning(
                "Sign-in with %s rejected: the provider did not report a verified email",
                provider,
            )
            raise ImmediateHttpResponse(
                render(
                    request,
                    "account/unverified_email.html",
                    {"provider": sociallogin.provider.name},
                    status=403,
                )
            )

        if _is_staff_email(email):
            # Staff logins are linked to Google only by the staff member, signed in, from
            # their account page. Linking by email would also make allauth wipe a staff
            # password whose address row is unverified, as createsuperuser leaves it.
            logger.warning("Sign-in with %s rejected: the email belongs to a staff login", provider)
            raise ImmediateHttpResponse(
                render(
                    request,
                    "account/staff_social_login.html",
                    {"provider": sociallogin.provider.name},
                    status=403,
                )
            )

        member = Member.objects.filter(email__iexact=email).select_related("user").first()
        if member is None:
            # Unknown person: allauth stores the login and shows our application form.
            return
        user = services.ensure_member_user(member=member)
        sociallogin.connect(request, user)
        # Google has just proven the address, as a sign-in code would.
        EmailAddress.objects.filter(user=user, email__iexact=email).update(verified=True)
        logger.info(
            "%s account linked to user %s of member %s by verified email",
            provider,
            user.pk,
            member.pk,
        )

    def authenticate_by_email(self, sociallogin):
        """Match a Google login to an existing login only through a verified address.

        allauth would also match a login's unverified address rows and its plain email
        field, so an address someone merely typed could open that login. Here only a
        confirmed address of exactly one non-staff login counts.
        """
        for email in [a.email for a in sociallogin.email_addresses if a.verified]:
            if not self.can_authenticate_by_email(sociallogin, email):
                continue
            rows = EmailAddress.objects.filter(email__iexact=email, verified=True)
            owners = {row.user_id for row in rows}
            if len(owners) == 1:
                return rows[0].user, email
        return None

    def can_authenticate_by_email(self, login, email):
        # Keeps allauth from signing into a staff login by email, see pre_social_login.
        if _is_staff_email(email):
            return False
        return super().can_authenticate_by_email(login, email)

    def is_open_for_signup(self, request, sociallogin):
        # Only a verified email reaches this point, see pre_social_login.
        return True

    def is_auto_signup_allowed(self, request, sociallogin):
        # A person who is not a member applies first: the signup form is the application.
        return False
