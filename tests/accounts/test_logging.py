"""Sign-ins, failures, links and MFA changes are logged with the user id and no secret."""

import logging

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.urls import reverse

from tests.accounts.helpers import (
    ACCESS_TOKEN,
    AUTHORIZATION_CODE,
    GOOGLE_CLIENT_SECRET,
    GoogleIdentity,
    last_login_code,
    request_login_code,
)
from tests.factories import (
    TEST_TOTP_SECRET,
    MemberFactory,
    MemberWithUserFactory,
    StaffUserFactory,
    current_totp_code,
    enable_totp,
)

pytestmark = pytest.mark.django_db

AUTH_LOGGER = "members.auth"
PASSWORD = "correct horse battery staple"  # set by UserFactory
WRONG_PASSWORD = "wrong-password-Tr0ub4dor&3"


@pytest.fixture
def log(caplog):
    """caplog at DEBUG for every logger, so the secret checks see every record."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def rosa(db):
    return StaffUserFactory(email="rosa@example.com")


def auth_messages(caplog, level: int = logging.DEBUG) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == AUTH_LOGGER and record.levelno >= level
    ]


def assert_no_secret(caplog, *secrets: str) -> None:
    assert caplog.records, "nothing was logged, so the check would prove nothing"
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            assert secret not in text, f"{record.name} logged a secret: {text!r}"


# --- Password and second factor ---------------------------------------------------------------


def test_password_sign_in_logged(client, rosa, log):
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})

    assert f"User {rosa.pk} signed in (password)" in auth_messages(log)
    assert_no_secret(log, PASSWORD)


def test_failed_password_logged_with_user(client, rosa, log):
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": WRONG_PASSWORD})

    warnings = auth_messages(log, logging.WARNING)
    assert any(f"Failed sign-in for user {rosa.pk} " in message for message in warnings)
    assert_no_secret(log, WRONG_PASSWORD)


def test_failed_unknown_email_logged(client, db, log):
    client.post(
        reverse("account_login"), {"login": "nobody@example.com", "password": WRONG_PASSWORD}
    )

    warnings = auth_messages(log, logging.WARNING)
    assert any("Failed sign-in for an unknown account" in message for message in warnings)
    assert_no_secret(log, WRONG_PASSWORD, "nobody@example.com")


def test_mfa_sign_in_logged(client, rosa, log):
    enable_totp(rosa)
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})
    assert auth_messages(log) == []

    code = current_totp_code()
    client.post(reverse("mfa_authenticate"), {"code": code})

    assert f"User {rosa.pk} signed in (password, mfa)" in auth_messages(log)
    assert_no_secret(log, PASSWORD, code, TEST_TOTP_SECRET)


def test_wrong_totp_logged_with_user(client, rosa, log):
    enable_totp(rosa)
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})

    client.post(reverse("mfa_authenticate"), {"code": "314159"})

    assert f"User {rosa.pk} entered a wrong totp code" in auth_messages(log, logging.WARNING)
    assert_no_secret(log, "314159", TEST_TOTP_SECRET)


def test_sign_out_logged(client, rosa, log):
    client.force_login(rosa)

    client.post(reverse("account_logout"))

    assert f"User {rosa.pk} signed out" in auth_messages(log)


# --- Emailed code ----------------------------------------------------------------------------


def test_code_sign_in_logged(client, log):
    member = MemberWithUserFactory(email="ana@example.com")
    request_login_code(client, "ana@example.com")
    code = last_login_code("ana@example.com")

    client.post(reverse("account_confirm_login_code"), {"code": code})

    assert f"User {member.user_id} signed in (code)" in auth_messages(log)
    assert_no_secret(log, code, code.replace("-", ""))


def test_wrong_code_logged_with_user(client, log):
    member = MemberWithUserFactory(email="ana@example.com")
    request_login_code(client, "ana@example.com")
    code = last_login_code("ana@example.com")

    client.post(reverse("account_confirm_login_code"), {"code": "AAAA-BBBB"})

    warnings = auth_messages(log, logging.WARNING)
    assert f"User {member.user_id} entered a wrong sign-in code" in warnings
    assert_no_secret(log, code, "AAAA-BBBB")


# --- Google ------------------------------------------------------------------------------------


def test_google_link_and_sign_in_logged(google, client, log):
    member = MemberFactory(email="Ana.Rivera@Example.com")

    google.sign_in(GoogleIdentity(sub="123", email="ana.rivera@example.com"))

    member.refresh_from_db()
    messages = auth_messages(log)
    assert f"User {member.user_id} linked a google account" in messages
    assert f"User {member.user_id} signed in (google)" in messages
    assert_no_secret(
        log,
        ACCESS_TOKEN,
        AUTHORIZATION_CODE,
        GOOGLE_CLIENT_SECRET,
        *google.id_tokens,
        *(token.split(".")[1] for token in google.id_tokens),
    )


def test_google_email_authentication_logged(google, client, log):
    member = MemberWithUserFactory(email="ana.rivera@example.com")

    google.sign_in(GoogleIdentity(sub="123", email="ana.rivera@example.com"))

    messages = auth_messages(log)
    assert f"User {member.user_id} linked a google account" in messages
    assert f"User {member.user_id} signed in (google)" in messages


def test_google_application_logged(google, client, plan, log):
    google.sign_in(GoogleIdentity(sub="123", email="nuria@example.com"))
    client.post(
        reverse("socialaccount_signup"),
        {"first_name": "Nuria", "last_name": "Vega", "plan": plan.pk},
    )

    user_id = client.session["_auth_user_id"]
    messages = auth_messages(log)
    assert f"User {user_id} created by a google sign-up" in messages
    assert f"User {user_id} signed in (google)" in messages
    assert_no_secret(log, ACCESS_TOKEN, AUTHORIZATION_CODE, *google.id_tokens)


def test_google_unverified_refusal_logged(google, client, log):
    MemberWithUserFactory(email="ana.rivera@example.com")

    google.sign_in(GoogleIdentity(sub="123", email="ana.rivera@example.com", email_verified=False))

    rejections = [
        record
        for record in log.records
        if record.name == "members.accounts" and record.levelno == logging.WARNING
    ]
    assert len(rejections) == 1
    assert not any("signed in" in message for message in auth_messages(log))
    assert_no_secret(log, ACCESS_TOKEN, AUTHORIZATION_CODE, *google.id_tokens)


# --- MFA changes --------------------------------------------------------------------------------


def test_totp_enrolment_logged(client, rosa, log, django_capture_on_commit_callbacks):
    client.force_login(rosa)
    reauthenticate_url = client.get(reverse("mfa_activate_totp"))["Location"]
    client.post(reauthenticate_url, {"password": PASSWORD})
    client.get(reverse("mfa_activate_totp"))
    secret = client.session[SECRET_SESSION_KEY]
    code = current_totp_code(secret)

    # allauth sends authenticator_added once the transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("mfa_activate_totp"), {"code": code})

    messages = auth_messages(log)
    assert f"User {rosa.pk} added MFA authenticator totp" in messages
    assert f"User {rosa.pk} added MFA authenticator recovery_codes" in messages
    recovery_codes = RecoveryCodes(
        Authenticator.objects.get(user=rosa, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert_no_secret(log, PASSWORD, secret, code, *recovery_codes)


def test_totp_removal_logged(client, rosa, log):
    enable_totp(rosa)
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})

    response = client.post(reverse("mfa_deactivate_totp"))

    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=rosa).exists()
    assert f"User {rosa.pk} removed MFA authenticator totp" in auth_messages(log, logging.WARNING)


def test_recovery_codes_regeneration_logged(client, rosa, log, django_capture_on_commit_callbacks):
    enable_totp(rosa)
    RecoveryCodes.activate(rosa)
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_generate_recovery_codes"))

    assert response.status_code == 302
    assert f"User {rosa.pk} regenerated MFA authenticator recovery_codes" in auth_messages(log)
    new_codes = RecoveryCodes(
        Authenticator.objects.get(user=rosa, type=Authenticator.Type.RECOVERY_CODES)
    ).get_unused_codes()
    assert_no_secret(log, *new_codes)
