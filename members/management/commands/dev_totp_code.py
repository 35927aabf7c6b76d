import time

from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from .create_dev_staff import DEFAULT_USERNAME


class Command(BaseCommand):
    help = (
        "Print the current two-factor (TOTP) code of the development staff login, for "
        "developers without an authenticator app. Works only with DEBUG on."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=DEFAULT_USERNAME, help="Login name to read.")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("dev_totp_code only runs with DJANGO_DEBUG on.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No login named {username!r}. Create it with `manage.py create_dev_staff`."
            )
        authenticator = Authenticator.objects.filter(
            user=user, type=Authenticator.Type.TOTP
        ).first()
        if authenticator is None:
            raise CommandError(
                f"{username!r} has no TOTP authenticator. Run "
                "`manage.py create_dev_staff --reset-password` to enrol one."
            )
        secret = decrypt(authenticator.data["secret"])
        period = mfa_settings.TOTP_PERIOD
        now = time.time()
        code = format_hotp_value(hotp_value(secret, int(now) // period))
        remaining = period - int(now) % period
        self.stdout.write(f"{code} (valid for {remaining} more seconds)")
