"""Known logins for the benchmarks, and signed-in sessions the load tool can send as cookies.

A staff session counts as signed in with two factors the way allauth.mfa records it: the
session contains Django's login keys plus allauth's list of authentication steps
(`account_authentication_methods`), a password step followed by an "mfa" step naming the
staff user's TOTP authenticator. `members.middleware.StaffMFARequiredMiddleware` lets a
staff user into the back office once a TOTP authenticator exists, and allauth asks for
the code only at sign-in, so such a session opens /admin/ without a code.
"""

import base64
import json
import random
from pathlib import Path

from allauth.account.internal.flows.login import record_authentication
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.utils import encrypt
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest

STAFF_USERNAME = "bench-staff"
STAFF_EMAIL = "bench-staff@example.com"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def totp_secret_for(seed: int) -> str:
    """Return the staff TOTP secret (base32) that a given seed always produces."""
    return base64.b32encode(random.Random(f"totp-{seed}").randbytes(20)).decode()


def ensure_staff(*, password: str, seed: int, joined=None):
    """Create (or reset) the benchmark's superuser with a password and a TOTP authenticator.

    `joined` is its date_joined (default: now); seed_scale passes a time of its anchor day.
    """
    users = get_user_model()
    user = users.objects.filter(username=STAFF_USERNAME).first()
    if user is None:
        user = users.objects.create_superuser(
            username=STAFF_USERNAME, email=STAFF_EMAIL, password=password
        )
    else:
        user.set_password(password)
    user.date_joined = joined or user.date_joined
    user.save(update_fields=["password", "date_joined"])
    EmailAddress.objects.update_or_create(
        user=user, email=STAFF_EMAIL, defaults={"primary": True, "verified": True}
    )
    Authenticator.objects.filter(user=user).delete()
    Authenticator.objects.create(
        user=user,
        type=Authenticator.Type.TOTP,
        data={"secret": encrypt(totp_secret_for(seed))},
    )
    RecoveryCodes.activate(user)
    return user


def set_member_passwords(*, user_ids: list[int], password: str) -> list:
    """Give the sample members' logins a known password (hashed once, shared)."""
    users = get_user_model()
    template = users()
    template.set_password(password)
    users.objects.filter(pk__in=user_ids).update(password=template.password)
    return list(users.objects.filter(pk__in=user_ids).order_by("pk"))


def signed_in_session(user, *, with_mfa: bool) -> str:
    """Store a session of `user` signed in as allauth would record it; return its key."""
    request = HttpRequest()
    request.session = SessionStore()
    request.META["REMOTE_ADDR"] = "127.0.0.1"
    login(request, user, backend=MODEL_BACKEND)
    record_authentication(request, user, "password", email=user.email)
    if with_mfa:
        authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
        record_authentication(request, user, "mfa", id=authenticator.pk, type="totp")
    request.session.save()
    return request.session.session_key


def write_sessions(path: Path, *, staff, members: list, password: str, seed: int) -> dict:
    """Write a JSON file with the session cookies of the staff user and the sample members."""
    data = {
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "password": password,
        "staff": {
            "user_id": staff.pk,
            "email": staff.email,
            "totp_secret": totp_secret_for(seed),
            "session_key": signed_in_session(staff, with_mfa=True),
        },
        "members": [
            {
                "user_id": user.pk,
                "member_id": user.member.pk,
                "email": user.email,
                "session_key": signed_in_session(user, with_mfa=False),
            }
            for user in members
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.chmod(0o600)
    return data
