import base64
import secrets

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.utils import encrypt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEFAULT_USERNAME = "staff"


class Command(BaseCommand):
    help = (
        "Create a development staff login (superuser) and print its password. "
        "Works only with DEBUG on; an existing login keeps its password unless "
        "--reset-password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=DEFAULT_USERNAME, help="Login name to create.")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give an existing login a new random password and print it.",
        )

    def handle(self, *args, username, reset_password, **options):
        if not settings.DEBUG:
            raise CommandError(
                "create_dev_staff only runs with DJANGO_DEBUG on; in production create staff "
                "with `manage.py createsuperuser`."
            )
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is not None and not reset_password:
            self.stdout.write(
                f"Development staff login: {user.email} (exists; password unchanged). "
                "For a new password: manage.py create_dev_staff --reset-password"
            )
            return

        password = secrets.token_urlsafe(12)
        if user is None:
            user = users.objects.create_superuser(
                username=username, email=f"{username}@example.com", password=password
            )
            action = "created"
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save(update_fields=["password", "is_staff", "is_superuser", "is_active"])
            action = "password reset"
        EmailAddress.objects.update_or_create(
            user=user,
            email=user.email.lower(),
            defaults={"primary": True, "verified": True},
        )
        # Staff must use a second factor; enrol one so the login works without a phone.
        secret = base64.b32encode(secrets.token_bytes(20)).decode()
        Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).delete()
        Authenticator.objects.create(
            user=user, type=Authenticator.Type.TOTP, data={"secret": encrypt(secret)}
        )
        Authenticator.objects.filter(user=user, type=Authenticator.Type.RECOVERY_CODES).delete()
        RecoveryCodes.activate(user)
        self.stdout.write(
            self.style.SUCCESS(
                f"Development staff login {action}: email {user.email}, password {password}\n"
                f"Two-factor (TOTP) secret: {secret}. Add it to an authenticator app, or run "
                "`.venv/bin/python manage.py dev_totp_code` for the current code. Recovery "
                "codes are at /accounts/2fa/recovery-codes/ once signed in.\n"
                "Sign in at /admin/ on the development server."
            )
        )
