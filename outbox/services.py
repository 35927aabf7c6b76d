"""Queue, send and re-send the emails of the outbox.

`queue_email` writes the row in the caller's transaction and queues the send task once
that transaction commits. When the transaction rolls back, no row and no task remain.
`queue_account_email` does the same for the emails django-allauth renders (sign-in
codes, address confirmations), which expire and lose their bodies once done.
The task calls `deliver_email`, which claims the row with a conditional UPDATE, so one
worker at a time sends it, and a row that is sent is never claimed again. A claim is a
lease: if the worker dies during the send, `sweep_outbox` puts the row back in the queue
once the lease expires. The sweep also queues rows whose task was lost (the broker
restarted) and retries whose wait was too long for a broker countdown.

Each row is sent until the relay accepts it once, with one exception. When the relay
accepts the message but the worker never learns it (the reply is lost or comes after
EMAIL_TIMEOUT, or the worker dies before it records the row as sent), the row is sent
again. Every attempt carries the row's Message-ID, so mail clients that drop duplicates
by Message-ID show one copy.
"""

import datetime
import json
import logging
import math
import smtplib
import uuid
from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .catalog import ACCOUNT_TEMPLATE, TEMPLATES, RenderedEmail, render_email
from .errors import OutboxError
from .models import OutboxEmail

logger = logging.getLogger(__name__)

Status = OutboxEmail.Status

# Queued rows younger than this are left to the task queued when their row committed.
SWEEP_GRACE = datetime.timedelta(minutes=2)
# Field values that delete the stored bodies of an account email once it is sent, failed
# or expired, so that no sign-in code or confirmation link stays in the database.
# Template emails have empty bodies, so the update changes nothing for them.
SCRUBBED_BODIES = {"body_text": "", "body_html": ""}


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt: the row's status after it, and when to try again.

    `retry_in` is the number of seconds until the next attempt when a broker countdown
    may wait that long, and None otherwise (the sweep then takes the row when it is due).
    """

    email_id: int
    status: str
    retry_in: int | None = None


# --- Queueing -------------------------------------------------------------------------


def queue_email(
    *,
    recipient: str,
    template: str,
    context: dict,
    dedupe_key: str,
    language: str | None = None,
) -> OutboxEmail:
    """Store an email in the caller's transaction, and send it once that commits.

    `dedupe_key` names the event that causes the email (for example
    "payment_received:payment:42"): a second call with the same key returns the stored
    row and queues nothing. `language` defaults to the active language. An invalid
    recipient address gives a row that is failed at once, with the reason. Raises
    OutboxError for an unknown template, a missing context value or a context that is
    not JSON.
    """
    spec = TEMPLATES.get(template)
    if spec is None:
        raise OutboxError(
            f"Unknown email template {template!r}; use one of {', '.join(sorted(TEMPLATES))}."
        )
    missing = [key for key in spec.required if key not in context]
    if missing:
        raise OutboxError(
            f"The {template} email needs the context value(s) {', '.join(missing)}; "
            "pass them to queue_email."
        )
    try:
        json.dumps(context, cls=DjangoJSONEncoder)
    except TypeError as error:
        raise OutboxError(
            f"The context of the {template} email is not JSON: {error}. Pass ids, text, "
            "numbers, dates or Decimals."
        ) from error
    dedupe_key = dedupe_key.strip()
    if not dedupe_key:
        raise OutboxError(f"Give the {template} email a dedupe key naming the event.")
    recipient = recipient.strip()
    # A bad address must not undo the change that caused the email (an approval, a
    # payment), so the row is stored as failed, where staff see the error.
    address_error = _address_error(recipient)

    try:
        with transaction.atomic():
            email = OutboxEmail.objects.create(
                recipient=recipient,
                template=template,
                context=context,
                language=_supported_language(language),
                dedupe_key=dedupe_key,
                message_id=new_message_id(),
                status=Status.FAILED if address_error else Status.QUEUED,
                last_error=address_error,
            )
    except IntegrityError:
        existing = OutboxEmail.objects.filter(dedupe_key=dedupe_key).first()
        if existing is None:
            raise
        logger.info(
            "Email %s (%s) already queued for dedupe key %s; nothing queued",
            existing.pk,
            existing.template,
            dedupe_key,
        )
        return existing

    if address_error:
        logger.error("Email %s (%s) not sent: %s", email.pk, template, address_error)
        return email
    logger.info("Email %s (%s) queued for %s", email.pk, template, dedupe_key)
    _send_after_commit(email.pk)
    return email


def queue_account_email(
    *,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    source: str,
    expires_at: datetime.datetime | None,
    language: str | None = None,
) -> OutboxEmail:
    """Store an email that django-allauth rendered, and send it once the caller commits.

    `source` names the allauth template (for example "account/email/login_code"); it
    is the only context stored. `expires_at` is when the code or link in the email stops
    working: a row not sent by then is marked expired instead. Every call queues a new
    email. An invalid recipient address gives a row that is failed at once, without the
    bodies. Raises OutboxError when both bodies are empty.
    """
    if not text and not html:
        raise OutboxError(f"The {source} email has neither a plain-text nor an HTML body.")
    recipient = recipient.strip()
    address_error = _address_error(recipient)
    email = OutboxEmail.objects.create(
        recipient=recipient,
        template=ACCOUNT_TEMPLATE,
        context={"source": source},
        language=_supported_language(language),
        dedupe_key=f"{source}:{uuid.uuid4().hex}",
        message_id=new_message_id(),
        subject=" ".join(subject.split()),
        body_text="" if address_error else text,
        body_html="" if address_error else html,
        expires_at=expires_at,
        status=Status.FAILED if address_error else Status.QUEUED,
        last_error=address_error,
    )
    if address_error:
        logger.warning("Email %s (%s) not sent: %s", email.pk, source, address_error)
        return email
    logger.info("Email %s (%s) queued, expiring at %s", email.pk, source, expires_at)
    _send_after_commit(email.pk)
    return email


def _address_error(recipient: str) -> str:
    """Return why `recipient` cannot receive email, or "" when it is a valid address."""
    try:
        validate_email(recipient)
    except ValidationError:
        return _(
            "“%(address)s” is not a valid email address, so this email cannot be sent. "
            "Correct the person's address in the back office."
        ) % {"address": recipient}
    return ""


def new_message_id() -> str:
    """Return a Message-ID in the domain of DEFAULT_FROM_EMAIL, unique to one row."""
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    domain = address.rpartition("@")[2] or "localhost"
    return f"<{uuid.uuid4().hex}.outbox@{domain}>"


def _supported_language(language: str | None) -> str:
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    try:
        return translation.get_supported_language_variant(language)
    except LookupError:
        return settings.LANGUAGE_CODE


def _send_after_commit(email_id: int) -> None:
    """Queue the send task when the current transaction commits (at once outside one).

    A broker that cannot take the task loses nothing: the row stays queued and the sweep
    sends it. So the error is logged, not raised into the code that queued the email.
    """

    def send():
        from .tasks import send_email

        try:
            send_email.delay(email_id)
        except Exception:
            logger.exception(
                "Queueing the send task of email %s failed; the sweep will queue it", email_id
            )

    transaction.on_commit(send)


# --- Sending --------------------------------------------------------------------------


def deliver_email(*, email_id: int) -> Delivery:
    """Claim a due email, send it through the default mailer, and record the outcome.

    Does nothing to a row that is sent, failed, expired, claimed by another worker, or not
    due yet. A row past its `expires_at` is marked expired instead of being sent.
    A connection error or a temporary SMTP reply (4xx) puts the row back in the queue
    with an exponential backoff, until CPR_OUTBOX_MAX_ATTEMPTS attempts have failed.
    A permanent reply (5xx) or a rendering error marks it failed at once.
    """
    now = timezone.now()
    token = uuid.uuid4()
    claimed = (
        OutboxEmail.objects.filter(pk=email_id)
        .filter(
            Q(status=Status.QUEUED, next_attempt_at__lte=now)
            | Q(status=Status.SENDING, claimed_until__lt=now)
        )
        .update(
            status=Status.SENDING,
            claimed_until=now + datetime.timedelta(seconds=settings.CPR_OUTBOX_LEASE_SECONDS),
            claim_token=token,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        return _not_claimed(email_id=email_id, now=now)

    email = OutboxEmail.objects.get(pk=email_id)
    if email.expires_at is not None and email.expires_at <= now:
        return _record_expired(email=email, token=token)
    logger.info("Sending email %s (%s), attempt %s", email.pk, email.template, email.attempts)
    try:
        message = build_message(email)
    except Exception as error:
        logger.exception("Rendering email %s (%s) failed", email.pk, email.template)
        return _record_failure(email=email, token=token, error=error, temporary=False)

    try:
        message.send()
    except Exception as error:
        temporary = is_temporary_error(error)
        logger.warning(
            "Sending email %s failed (attempt %s, %s): %s",
            email.pk,
            email.attempts,
            "temporary" if temporary else "permanent",
            describe_error(error),
        )
        return _record_failure(email=email, token=token, error=error, temporary=temporary)

    return _record_sent(email=email, token=token)


def _not_claimed(*, email_id: int, now: datetime.datetime) -> Delivery:
    """Return what a task that found the row sent, failed, claimed or not yet due does next.

    A retry task may run a moment before the row's next attempt is due, because the
    broker's timer and the database clock differ. A queued row that is not due yet then
    gets a new countdown for the rest of the wait instead of waiting for the sweep.
    """
    row = OutboxEmail.objects.filter(pk=email_id).values("status", "next_attempt_at").first()
    if row is None:
        logger.warning("Email %s to send no longer exists", email_id)
        return Delivery(email_id=email_id, status="missing")
    status = row["status"]
    if status == Status.QUEUED:
        wait = max(math.ceil((row["next_attempt_at"] - now).total_seconds()), 1)
        logger.info("Email %s is not due for %s seconds", email_id, wait)
        retry_in = wait if wait <= settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS else None
        return Delivery(email_id=email_id, status=status, retry_in=retry_in)
    logger.info("Email %s not sent by this task: it is %s", email_id, status)
    return Delivery(email_id=email_id, status=status)


def build_message(email: OutboxEmail) -> EmailMultiAlternatives:
    """Render `email` into a message from DEFAULT_FROM_EMAIL, with the row's Message-ID.

    Django's SMTP backend uses the From address as the envelope sender (MAIL FROM), so
    bounces return to DEFAULT_FROM_EMAIL as well.
    """
    if email.template == ACCOUNT_TEMPLATE:
        rendered = stored_content(email)
    else:
        rendered = render_email(
            template=email.template, context=email.context, language=email.language
        )
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text or rendered.html,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.recipient],
        headers={
            "Message-ID": email.message_id,
            # RFC 3834: an automatic message, so auto-responders do not reply to it.
            "Auto-Submitted": "auto-generated",
        },
    )
    if not rendered.text:
        message.content_subtype = "html"
    elif rendered.html:
        message.attach_alternative(rendered.html, "text/html")
    return message


def stored_content(email: OutboxEmail) -> RenderedEmail:
    """Return the stored subject and bodies of an account email.

    Raises OutboxError once the bodies were deleted, after the row was sent, failed or
    expired.
    """
    if not email.body_text and not email.body_html:
        raise OutboxError(
            _(
                "The content of email %(id)s was deleted after it was sent, failed or expired, "
                "because it can contain a sign-in code or link."
            )
            % {"id": email.pk}
        )
    return RenderedEmail(subject=email.subject, text=email.body_text, html=email.body_html)


def is_temporary_error(error: Exception) -> bool:
    """Return whether a send error may pass: a lost connection or a 4xx SMTP reply."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _message in error.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    # Refused or reset connections, timeouts and DNS failures.
    return isinstance(error, OSError)


def describe_error(error: Exception) -> str:
    """Return the error's type and message, with SMTP reply bytes decoded.

    A refusal of recipients lists each address with its reply code and text.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = "; ".join(
            f"{address}: {code} {_reply_text(reply)}"
            for address, (code, reply) in error.recipients.items()
        )
        return f"{type(error).__name__}: {refusals}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__}: {error.smtp_code} {_reply_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"


def _reply_text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def retry_delay(attempts: int) -> int:
    """Return the seconds to wait after `attempts` failed attempts, doubling each time."""
    base = settings.CPR_OUTBOX_RETRY_BASE_SECONDS
    return min(base * 2 ** max(attempts - 1, 0), settings.CPR_OUTBOX_RETRY_MAX_SECONDS)


def _record_sent(*, email: OutboxEmail, token: uuid.UUID) -> Delivery:
    now = timezone.now()
    done = {
        "status": Status.SENT,
        "sent_at": now,
        "claimed_until": None,
        "claim_token": None,
        "last_error": "",
        "updated_at": now,
        **SCRUBBED_BODIES,
    }
    if not OutboxEmail.objects.filter(pk=email.pk, claim_token=token).update(**done):
        # The lease expired while the message was being sent, and the sweep or another
        # worker took the row. The message did go out, so the row is marked sent anyway.
        OutboxEmail.objects.filter(pk=email.pk).exclude(status=Status.SENT).update(**done)
        logger.warning(
            "Email %s was sent after its claim expired; another attempt may have sent it too",
            email.pk,
        )
    logger.info("Email %s (%s) sent as %s", email.pk, email.template, email.message_id)
    return Delivery(email_id=email.pk, status=Status.SENT)


def _record_failure(
    *, email: OutboxEmail, token: uuid.UUID, error: Exception, temporary: bool
) -> Delivery:
    now = timezone.now()
    message = describe_error(error)
    gives_up = not temporary or email.attempts >= settings.CPR_OUTBOX_MAX_ATTEMPTS
    if gives_up:
        if temporary:
            message = _("Gave up after %(attempts)s attempts. Last error: %(error)s") % {
                "attempts": email.attempts,
                "error": message,
            }
        changes = {"status": Status.FAILED, **SCRUBBED_BODIES}
        delay = None
    else:
        delay = retry_delay(email.attempts)
        changes = {
            "status": Status.QUEUED,
            "next_attempt_at": now + datetime.timedelta(seconds=delay),
        }
    changes.update(
        {"claimed_until": None, "claim_token": None, "last_error": message, "updated_at": now}
    )
    if not OutboxEmail.objects.filter(pk=email.pk, claim_token=token).update(**changes):
        logger.warning(
            "Email %s: the failed attempt was not recorded, because its claim expired", email.pk
        )
        status = OutboxEmail.objects.filter(pk=email.pk).values_list("status", flat=True).first()
        return Delivery(email_id=email.pk, status=status or "missing")

    if gives_up:
        logger.error(
            "Email %s (%s) failed after %s attempts: %s",
            email.pk,
            email.template,
            email.attempts,
            message,
        )
        return Delivery(email_id=email.pk, status=Status.FAILED)
    logger.info("Email %s will be retried in %s seconds", email.pk, delay)
    retry_in = delay if delay <= settings.CPR_OUTBOX_MAX_COUNTDOWN_SECONDS else None
    return Delivery(email_id=email.pk, status=Status.QUEUED, retry_in=retry_in)


def _expired_error() -> str:
    return _("Expired before it could be sent: the code or link in it no longer works.")


def _record_expired(*, email: OutboxEmail, token: uuid.UUID) -> Delivery:
    """Mark a claimed row expired, without sending it, and delete its bodies."""
    now = timezone.now()
    expired = OutboxEmail.objects.filter(pk=email.pk, claim_token=token).update(
        status=Status.EXPIRED,
        # The claim counted an attempt, but nothing was sent.
        attempts=F("attempts") - 1,
        claimed_until=None,
        claim_token=None,
        last_error=_expired_error(),
        updated_at=now,
        **SCRUBBED_BODIES,
    )
    if not expired:
        logger.warning("Email %s: the expiry was not recorded, because its claim expired", email.pk)
        status = OutboxEmail.objects.filter(pk=email.pk).values_list("status", flat=True).first()
        return Delivery(email_id=email.pk, status=status or "missing")
    logger.info("Email %s (%s) expired at %s; not sent", email.pk, email.template, email.expires_at)
    return Delivery(email_id=email.pk, status=Status.EXPIRED)


# --- Sweep and staff actions ---------------------------------------------------------


def sweep_outbox(*, now: datetime.datetime | None = None, limit: int = 500) -> list[int]:
    """Queue the send task again for rows that no task is going to send; return their ids.

    Queued rows past their `expires_at` are marked expired first, and their bodies
    deleted. The sweep then takes two kinds of row, oldest first and at most `limit` of
    each. The first
    are rows whose claim expired because the worker died or was killed: they go back to
    the queue, or fail when they have used up their attempts. The second are queued rows
    due for more than SWEEP_GRACE, whose task was lost or whose retry wait was longer
    than a broker countdown may be.
    """
    now = now or timezone.now()
    expired_count = OutboxEmail.objects.filter(status=Status.QUEUED, expires_at__lte=now).update(
        status=Status.EXPIRED, last_error=_expired_error(), updated_at=now, **SCRUBBED_BODIES
    )
    if expired_count:
        logger.info("Outbox sweep marked %s queued email(s) expired", expired_count)

    requeued = []
    expired = (
        OutboxEmail.objects.filter(status=Status.SENDING, claimed_until__lt=now)
        .order_by("claimed_until", "pk")
        .values_list("pk", "attempts")[:limit]
    )
    for email_id, attempts in expired:
        error = _(
            "The worker stopped before it recorded attempt %(attempts)s, for example because "
            "it was killed or lost its database connection."
        ) % {"attempts": attempts}
        gives_up = attempts >= settings.CPR_OUTBOX_MAX_ATTEMPTS
        changed = OutboxEmail.objects.filter(
            pk=email_id, status=Status.SENDING, claimed_until__lt=now
        ).update(
            status=Status.FAILED if gives_up else Status.QUEUED,
            next_attempt_at=now,
            claimed_until=None,
            claim_token=None,
            last_error=error,
            updated_at=now,
            **(SCRUBBED_BODIES if gives_up else {}),
        )
        if not changed:
            continue
        if gives_up:
            logger.error("Email %s failed: its claim expired after %s attempts", email_id, attempts)
            continue
        logger.warning("Email %s claim expired after attempt %s; queued again", email_id, attempts)
        requeued.append(email_id)

    due = (
        OutboxEmail.objects.filter(status=Status.QUEUED, next_attempt_at__lte=now - SWEEP_GRACE)
        .exclude(pk__in=requeued)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    requeued.extend(due)
    if requeued:
        logger.info("Outbox sweep queued %s email(s): %s", len(requeued), requeued)
    for email_id in requeued:
        _send_after_commit(email_id)
    return requeued


def resend_email(
    *, email: OutboxEmail, actor: AbstractBaseUser | None, recipient: str | None = None
) -> OutboxEmail:
    """Queue a failed email again, with a fresh count of attempts, and send it after commit.

    `recipient`, when given, replaces the row's address, for example after staff corrected
    a member's address that the relay refused. The row keeps its Message-ID. Only failed
    emails can be sent again: a sent one stays as it was sent, and a queued one is on its
    way. Raises OutboxError naming the row's status, or the address when it is invalid.
    """
    new_recipient = None
    if recipient is not None:
        new_recipient = recipient.strip()
        if _address_error(new_recipient):
            raise OutboxError(
                _("“%(address)s” is not a valid email address. Enter the address to send to.")
                % {"address": new_recipient}
            )
    now = timezone.now()
    with transaction.atomic():
        locked = OutboxEmail.objects.select_for_update().get(pk=email.pk)
        if locked.status != Status.FAILED:
            raise OutboxError(
                _("Email %(id)s is %(status)s; only failed emails can be sent again.")
                % {"id": locked.pk, "status": locked.get_status_display().lower()}
            )
        if locked.template == ACCOUNT_TEMPLATE:
            raise OutboxError(
                _(
                    "Email %(id)s is a sign-in or account email. Its content was deleted and "
                    "its code or link may have expired, so it cannot be sent again. Ask the "
                    "person to request a new one."
                )
                % {"id": locked.pk}
            )
        changed_recipient = new_recipient is not None and new_recipient != locked.recipient
        if changed_recipient:
            locked.recipient = new_recipient
        locked.status = Status.QUEUED
        locked.attempts = 0
        locked.next_attempt_at = now
        locked.save(
            update_fields=["recipient", "status", "attempts", "next_attempt_at", "updated_at"]
        )
        _send_after_commit(locked.pk)
    logger.info(
        "Email %s (%s) queued again by user %s%s; last error was: %s",
        locked.pk,
        locked.template,
        getattr(actor, "pk", None),
        " to a new recipient" if changed_recipient else "",
        locked.last_error,
    )
    return locked
