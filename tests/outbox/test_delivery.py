"""Sending the outbox through a real SMTP server, eagerly and by a real worker on Redis."""

import datetime
import logging
import smtplib
import time

import pytest
from django.db import transaction
from django.utils import timezone

from members.services import approve_application
from outbox import services
from outbox.errors import OutboxError
from outbox.models import OutboxEmail
from tests.factories import ApplicationFactory

from .conftest import SENDER, SENDER_ADDRESS

Status = OutboxEmail.Status
# Generous, because other test processes may load the machine; waits end as soon as they can.
WAIT_SECONDS = 60


def wait_for_row(predicate, timeout=WAIT_SECONDS, **filters) -> OutboxEmail | None:
    """Poll the outbox row matching `filters` until `predicate(row)` holds; return the row."""
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = OutboxEmail.objects.filter(**filters).first()
        if row is not None and predicate(row):
            return row
        time.sleep(0.05)
    return row


def queue_test_email(recipient="person@example.com", key="test:1") -> OutboxEmail:
    return services.queue_email(
        recipient=recipient,
        template="application_rejected",
        context={"first_name": "Ana", "plan_name": "Hot Desk"},
        dedupe_key=key,
    )


# --- A real worker on Redis ----------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_approval_sends_one_email(smtp_worker, smtp_server):
    application = ApplicationFactory(email="ana@example.com", first_name="Ana")

    membership = approve_application(application=application, actor=None)

    received = smtp_server.wait_for_messages(1, WAIT_SECONDS)
    row = wait_for_row(lambda row: row.status == Status.SENT, template="application_approved")
    time.sleep(0.5)  # a second copy would arrive within this time
    assert len(smtp_server.received()) == 1
    envelope = received[0]
    assert envelope.mail_from == SENDER_ADDRESS
    assert envelope.rcpt_tos == ("ana@example.com",)
    assert envelope.message["From"] == SENDER
    assert envelope.message["To"] == "ana@example.com"
    assert envelope.message["Message-ID"] == row.message_id
    assert row.message_id.endswith("@code-pr.example>")
    assert membership.plan.name in envelope.message["Subject"]
    assert envelope.message.get_body(("plain",)) is not None
    assert envelope.message.get_body(("html",)) is not None
    assert row.attempts == 1
    assert row.sent_at is not None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_relay_down_then_up_delivers_once(smtp_worker, smtp_server, fast_retries):
    smtp_server.stop()

    email = queue_test_email()

    retried = wait_for_row(lambda row: row.attempts >= 2, pk=email.pk)
    assert retried.status in (Status.QUEUED, Status.SENDING)
    assert "ConnectionRefusedError" in retried.last_error
    smtp_server.start()
    sent = wait_for_row(lambda row: row.status == Status.SENT, pk=email.pk)
    assert sent.status == Status.SENT
    time.sleep(1.5)  # longer than the next retry wait, so a stray retry would show
    received = smtp_server.received()
    assert len(received) == 1
    assert received[0].message["Message-ID"] == sent.message_id
    assert OutboxEmail.objects.get(pk=email.pk).last_error == ""


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_temporary_replies_retried(smtp_worker, smtp_server, fast_retries):
    smtp_server.replies = ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]

    email = queue_test_email()

    sent = wait_for_row(lambda row: row.status == Status.SENT, pk=email.pk)
    assert sent.attempts == 3
    assert len(smtp_server.received()) == 1


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_permanent_reply_fails(smtp_worker, smtp_server, fast_retries):
    smtp_server.replies = ["550 5.1.1 Mailbox does not exist"]

    email = queue_test_email()

    failed = wait_for_row(lambda row: row.status == Status.FAILED, pk=email.pk)
    assert failed.status == Status.FAILED
    assert failed.attempts == 1
    assert "550" in failed.last_error
    assert "Mailbox does not exist" in failed.last_error
    assert smtp_server.received() == []


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_rolled_back_change_sends_nothing(smtp_worker, smtp_server):
    application = ApplicationFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        approve_application(application=application, actor=None)
        raise RuntimeError("the request failed after the approval")

    assert not OutboxEmail.objects.exists()
    # An email queued afterwards arrives, so the worker has had its chance to send any other.
    marker = queue_test_email(recipient="marker@example.com", key="test:marker")
    received = smtp_server.wait_for_messages(1, WAIT_SECONDS)
    time.sleep(0.5)
    assert [item.rcpt_tos for item in smtp_server.received()] == [("marker@example.com",)]
    assert received[0].message["Message-ID"] == marker.message_id
    assert list(OutboxEmail.objects.values_list("pk", flat=True)) == [marker.pk]


# --- Eager sending (the test settings' default) --------------------------------------------


def claimed_row(*, claimed_until, recipient="stuck@example.com") -> OutboxEmail:
    """A row as a worker leaves it while it sends: claimed, with one attempt counted."""
    return OutboxEmail.objects.create(
        recipient=recipient,
        template="application_rejected",
        context={"first_name": "Ana", "plan_name": "Hot Desk"},
        language="en",
        status=Status.SENDING,
        claimed_until=claimed_until,
        attempts=1,
        message_id=services.new_message_id(),
        dedupe_key=f"test:claimed:{recipient}",
    )


@pytest.mark.django_db(transaction=True)
def test_expired_lease_swept_once(smtp_server):
    stuck = claimed_row(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    working = claimed_row(
        claimed_until=timezone.now() + datetime.timedelta(minutes=5),
        recipient="working@example.com",
    )

    swept = services.sweep_outbox()

    assert swept == [stuck.pk]
    received = smtp_server.received()
    assert [item.rcpt_tos for item in received] == [("stuck@example.com",)]
    assert received[0].message["Message-ID"] == stuck.message_id
    row = OutboxEmail.objects.get(pk=stuck.pk)
    assert row.status == Status.SENT
    assert row.attempts == 2
    assert OutboxEmail.objects.get(pk=working.pk).status == Status.SENDING
    assert services.sweep_outbox() == []
    assert len(smtp_server.received()) == 1


@pytest.mark.django_db(transaction=True)
def test_expired_lease_fails_after_max_attempts(smtp_server, settings):
    settings.CPR_OUTBOX_MAX_ATTEMPTS = 1
    stuck = claimed_row(claimed_until=timezone.now() - datetime.timedelta(seconds=1))

    assert services.sweep_outbox() == []

    row = OutboxEmail.objects.get(pk=stuck.pk)
    assert row.status == Status.FAILED
    assert "worker stopped" in row.last_error
    assert smtp_server.received() == []


@pytest.mark.django_db(transaction=True)
def test_sent_row_never_sent_again(smtp_server):
    email = queue_test_email()
    assert len(smtp_server.wait_for_messages(1, WAIT_SECONDS)) == 1
    assert OutboxEmail.objects.get(pk=email.pk).status == Status.SENT

    delivery = services.deliver_email(email_id=email.pk)
    swept = services.sweep_outbox(now=timezone.now() + datetime.timedelta(days=1))

    assert delivery.status == Status.SENT
    assert swept == []
    with pytest.raises(OutboxError, match="only failed emails"):
        services.resend_email(email=email, actor=None)
    assert len(smtp_server.received()) == 1


@pytest.mark.django_db(transaction=True)
def test_claimed_row_not_sent_by_second_task(smtp_server):
    working = claimed_row(claimed_until=timezone.now() + datetime.timedelta(minutes=5))

    delivery = services.deliver_email(email_id=working.pk)

    assert delivery.status == Status.SENDING
    assert smtp_server.received() == []
    assert OutboxEmail.objects.get(pk=working.pk).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_early_task_waits_again(smtp_server):
    email = queue_test_email()
    smtp_server.messages.clear()
    due = timezone.now() + datetime.timedelta(seconds=30)
    OutboxEmail.objects.filter(pk=email.pk).update(
        status=Status.QUEUED, sent_at=None, next_attempt_at=due
    )

    delivery = services.deliver_email(email_id=email.pk)

    assert delivery.status == Status.QUEUED
    assert 29 <= delivery.retry_in <= 30
    assert smtp_server.received() == []
    assert OutboxEmail.objects.get(pk=email.pk).attempts == 1


@pytest.mark.django_db
def test_missing_row_ignored():
    assert services.deliver_email(email_id=999_999).status == "missing"


@pytest.mark.django_db(transaction=True)
def test_long_wait_left_to_sweep(smtp_server, settings):
    settings.CPR_OUTBOX_RETRY_BASE_SECONDS = settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS * 2
    smtp_server.replies = ["451 4.3.0 Try again later"]

    email = queue_test_email()

    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.QUEUED
    wait = row.next_attempt_at - timezone.now()
    assert wait > datetime.timedelta(seconds=settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS)
    assert services.sweep_outbox() == []
    assert smtp_server.received() == []
    # The wait is over, and the sweep's grace for the retry task too.
    overdue = timezone.now() - services.SWEEP_GRACE - datetime.timedelta(seconds=1)
    OutboxEmail.objects.filter(pk=email.pk).update(next_attempt_at=overdue)
    assert services.sweep_outbox() == [email.pk]
    assert len(smtp_server.received()) == 1
    assert OutboxEmail.objects.get(pk=email.pk).status == Status.SENT


@pytest.mark.django_db(transaction=True)
def test_gives_up_after_max_attempts(smtp_server, settings):
    settings.CPR_OUTBOX_MAX_ATTEMPTS = 2
    smtp_server.replies = ["451 4.3.0 Try again later"] * 2

    email = queue_test_email()
    OutboxEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    services.deliver_email(email_id=email.pk)

    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.FAILED
    assert row.attempts == 2
    assert "Gave up after 2 attempts" in row.last_error
    assert "451" in row.last_error


@pytest.mark.django_db(transaction=True)
def test_resend_failed_row(smtp_server):
    smtp_server.replies = ["554 5.7.1 Rejected"]
    email = queue_test_email()
    assert OutboxEmail.objects.get(pk=email.pk).status == Status.FAILED

    services.resend_email(email=email, actor=None)

    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.SENT
    assert row.attempts == 1
    assert len(smtp_server.received()) == 1


def test_retry_waits_double_up_to_cap(settings):
    settings.CPR_OUTBOX_RETRY_BASE_SECONDS = 60
    settings.CPR_OUTBOX_RETRY_MAX_SECONDS = 3600

    waits = [services.retry_delay(attempts) for attempts in range(1, 10)]

    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_countdown_below_visibility_timeout(settings):
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    assert visibility >= settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS * 2
    assert visibility > settings.CPR_OUTBOX_LEASE_SECONDS


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError("timed out"), True),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (smtplib.SMTPDataError(451, b"Try later"), True),
        (smtplib.SMTPSenderRefused(421, b"Busy", "a@b.c"), True),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"Mailbox busy")}), True),
        (smtplib.SMTPDataError(554, b"Rejected"), False),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"No such user")}), False),
        (smtplib.SMTPAuthenticationError(535, b"Bad credentials"), False),
        (smtplib.SMTPNotSupportedError("no SMTPUTF8"), False),
        (ValueError("Invalid address"), False),
    ],
)
def test_error_classification(error, temporary):
    assert services.is_temporary_error(error) is temporary


@pytest.mark.django_db(transaction=True)
def test_late_reply_sends_same_message_again(smtp_server, settings):
    # The one case of a second copy: the relay stored the message, but its reply came
    # after the timeout, so the worker counts the attempt as failed and retries.
    settings.MAILERS = smtp_server.mailer_settings(timeout=1)
    smtp_server.reply_delay = 2

    email = queue_test_email()

    assert OutboxEmail.objects.get(pk=email.pk).status == Status.QUEUED
    smtp_server.reply_delay = 0
    OutboxEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    assert services.deliver_email(email_id=email.pk).status == Status.SENT
    received = smtp_server.received()
    assert len(received) == 2
    assert received[0].message["Message-ID"] == email.message_id
    assert received[1].message["Message-ID"] == email.message_id


@pytest.mark.django_db(transaction=True)
def test_refused_recipient_error_readable(smtp_server):
    smtp_server.rejected_recipients = {"gone@example.com": "550 5.1.1 No such user"}

    email = queue_test_email(recipient="gone@example.com")

    row = OutboxEmail.objects.get(pk=email.pk)
    assert row.status == Status.FAILED
    assert row.last_error == "SMTPRecipientsRefused: gone@example.com: 550 5.1.1 No such user"
    assert smtp_server.received() == []


def test_error_text_decodes_replies():
    refused = smtplib.SMTPRecipientsRefused(
        {"a@example.com": (550, b"No such user"), "b@example.com": (452, "Mailbox full")}
    )

    assert services.describe_error(refused) == (
        "SMTPRecipientsRefused: a@example.com: 550 No such user; b@example.com: 452 Mailbox full"
    )
    assert services.describe_error(smtplib.SMTPDataError(554, b"Rejed\xc3\xa9")) == (
        "SMTPDataError: 554 Rejedé"
    )


@pytest.mark.django_db(transaction=True)
def test_logs_ids_not_bodies(smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="outbox")
    smtp_server.replies = ["451 4.3.0 Try again later"]

    email = services.queue_email(
        recipient="person@example.com",
        template="application_received",
        context={"first_name": "Zebulon-Unique", "plan_name": "Hot Desk"},
        dedupe_key="test:logging",
    )

    text = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith("outbox")
    )
    assert f"Email {email.pk} (application_received) queued" in text
    assert f"Sending email {email.pk} (application_received), attempt 1" in text
    assert f"Email {email.pk} will be retried in" in text
    assert "Zebulon-Unique" not in text
    assert "person@example.com" not in text
