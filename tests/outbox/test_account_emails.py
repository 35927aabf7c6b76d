"""allauth's emails (sign-in codes, confirmations) through the outbox: expiry and scrubbing."""

import datetime

import pytest
from allauth.account import app_settings as account_settings
from django.urls import reverse
from django.utils import timezone

from members.accounts import account_email_lifetime
from outbox import services
from outbox.catalog import ACCOUNT_TEMPLATE
from outbox.errors import OutboxError
from outbox.models import OutboxEmail
from tests.accounts.helpers import LOGIN_CODE_PATTERN, signed_in_user_id
from tests.factories import MemberWithUserFactory

from .conftest import SENDER_ADDRESS
from .test_delivery import WAIT_SECONDS, wait_for_row

Status = OutboxEmail.Status
CODE_TEXT = "Your sign-in code is:\n\nKPJQ-PHCK\n"
SWEEP_GRACE_AND_A_SECOND = services.SWEEP_GRACE + datetime.timedelta(seconds=1)


def queue_code_email(*, expires_at=None, recipient="ana@example.com") -> OutboxEmail:
    return services.queue_account_email(
        recipient=recipient,
        subject="[Code Puerto Rico] Sign-In Code",
        text=CODE_TEXT,
        html="<p>KPJQ-PHCK</p>",
        source="account/email/login_code",
        expires_at=expires_at or timezone.now() + datetime.timedelta(minutes=3),
    )


def request_code(client, email: str):
    return client.post(reverse("account_request_login_code"), {"email": email})


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_code_sent_by_worker_then_scrubbed(client, smtp_worker, smtp_server):
    member = MemberWithUserFactory(email="ana@example.com")
    requested_at = timezone.now()

    response = request_code(client, "ana@example.com")

    assert response.status_code == 302
    [received] = smtp_server.wait_for_messages(1, WAIT_SECONDS)
    row = wait_for_row(lambda row: row.status == Status.SENT, template=ACCOUNT_TEMPLATE)
    assert row.status == Status.SENT
    assert received.mail_from == SENDER_ADDRESS
    assert received.rcpt_tos == ("ana@example.com",)
    assert received.message["Message-ID"] == row.message_id
    assert received.message["Subject"] == "[Code Puerto Rico] Sign-In Code"
    assert row.context == {"source": "account/email/login_code"}
    assert row.body_text == ""
    assert row.body_html == ""
    lifetime = (row.expires_at - requested_at).total_seconds()
    assert lifetime > account_settings.LOGIN_BY_CODE_TIMEOUT - 5
    assert lifetime <= account_settings.LOGIN_BY_CODE_TIMEOUT + 5
    text = "\n".join(received.message.get_body(("plain",)).get_content().splitlines())
    code = LOGIN_CODE_PATTERN.search(text)[1]
    client.post(reverse("account_confirm_login_code"), {"code": code})
    assert signed_in_user_id(client) == member.user_id


@pytest.mark.django_db(transaction=True)
def test_code_request_with_relay_down(client, smtp_server):
    MemberWithUserFactory(email="ana@example.com")
    smtp_server.stop()

    response = request_code(client, "ana@example.com")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_confirm_login_code")
    row = OutboxEmail.objects.get(template=ACCOUNT_TEMPLATE)
    assert row.status == Status.QUEUED
    assert row.attempts == 1
    assert "ConnectionRefusedError" in row.last_error


@pytest.mark.django_db(transaction=True)
def test_expired_email_not_sent(smtp_server):
    smtp_server.stop()
    email = queue_code_email()
    assert OutboxEmail.objects.get(pk=email.pk).status == Status.QUEUED
    smtp_server.start()
    OutboxEmail.objects.filter(pk=email.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1),
        next_attempt_at=timezone.now(),
    )

    delivery = services.deliver_email(email_id=email.pk)

    assert delivery.status == Status.EXPIRED
    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.EXPIRED
    assert row.attempts == 1
    assert row.last_error.startswith("Expired before it could be sent")
    assert row.body_text == ""
    assert row.body_html == ""
    assert smtp_server.received() == []


@pytest.mark.django_db(transaction=True)
def test_sweep_expires_queued_emails(smtp_server):
    smtp_server.stop()
    expired = queue_code_email()
    current = queue_code_email(recipient="luis@example.com")
    # Both rows are due for longer than the sweep's grace; one has expired meanwhile.
    OutboxEmail.objects.update(next_attempt_at=timezone.now() - SWEEP_GRACE_AND_A_SECOND)
    OutboxEmail.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    smtp_server.start()

    swept = services.sweep_outbox()

    assert swept == [current.pk]
    row = OutboxEmail.objects.get(pk=expired.pk)
    assert row.status == Status.EXPIRED
    assert row.body_text == ""
    assert [item.rcpt_tos for item in smtp_server.received()] == [("luis@example.com",)]


@pytest.mark.django_db(transaction=True)
def test_failed_email_scrubbed_not_resent(smtp_server):
    smtp_server.rejected_recipients = {"gone@example.com": "550 5.1.1 No such user"}

    email = queue_code_email(recipient="gone@example.com")

    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.FAILED
    assert row.body_text == ""
    assert row.body_html == ""
    with pytest.raises(OutboxError, match="Ask the person to request a new one"):
        services.resend_email(email=row, actor=None, recipient="ana@example.com")
    assert OutboxEmail.objects.get(pk=email.pk).status == Status.FAILED


def test_admin_hides_code(staff_client):
    email = queue_code_email()  # not sent: the transaction never commits
    failed = queue_code_email(recipient="not an address")

    page = staff_client.get(reverse("admin:outbox_outboxemail_change", args=[email.pk]))
    failed_page = staff_client.get(reverse("admin:outbox_outboxemail_change", args=[failed.pk]))

    content = page.content.decode()
    assert "[Code Puerto Rico] Sign-In Code" in content
    assert "KPJQ-PHCK" not in content
    assert "send-again" not in failed_page.content.decode()


def test_html_only_email_sent_as_html(db):
    email = services.queue_account_email(
        recipient="ana@example.com",
        subject="Notice",
        text="",
        html="<p>Hello</p>",
        source="account/email/custom",
        expires_at=None,
    )

    message = services.build_message(email)

    assert message.content_subtype == "html"
    assert message.body == "<p>Hello</p>"
    assert message.alternatives == []


def test_email_without_body_rejected(db):
    with pytest.raises(OutboxError, match="neither a plain-text nor an HTML body"):
        services.queue_account_email(
            recipient="ana@example.com",
            subject="Empty",
            text="",
            html="",
            source="account/email/custom",
            expires_at=None,
        )


@pytest.mark.parametrize(
    ("template_prefix", "seconds"),
    [
        ("account/email/login_code", account_settings.LOGIN_BY_CODE_TIMEOUT),
        (
            "account/email/email_confirmation",
            account_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS * 24 * 60 * 60,
        ),
        (
            "account/email/email_confirmation_signup",
            account_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS * 24 * 60 * 60,
        ),
        ("account/email/password_reset_code", account_settings.PASSWORD_RESET_BY_CODE_TIMEOUT),
        ("account/email/unknown_account", None),
    ],
)
def test_lifetime_follows_allauth_settings(template_prefix, seconds):
    lifetime = account_email_lifetime(template_prefix)

    assert (lifetime.total_seconds() if lifetime else None) == seconds


def test_reset_link_lifetime_is_token_timeout(settings):
    settings.PASSWORD_RESET_TIMEOUT = 3600

    assert account_email_lifetime("account/email/password_reset_key").total_seconds() == 3600


def test_confirmation_code_lifetime(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
    settings.ACCOUNT_EMAIL_VERIFICATION_BY_CODE_TIMEOUT = 600

    assert account_email_lifetime("account/email/email_confirmation").total_seconds() == 600
