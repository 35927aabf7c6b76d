"""The outbox in the back office: list, filters, search, details and "send again"."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import ERROR, SUCCESS, WARNING, get_messages
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from outbox import services
from outbox.errors import OutboxError
from outbox.models import OutboxEmail
from tests.factories import UserFactory, enable_totp

pytestmark = pytest.mark.django_db

Status = OutboxEmail.Status
CHANGELIST = reverse("admin:outbox_outboxemail_changelist")


def make_email(*, status=Status.QUEUED, recipient="person@example.com", **fields) -> OutboxEmail:
    number = OutboxEmail.objects.count() + 1
    values = {
        "recipient": recipient,
        "template": "application_rejected",
        "context": {"first_name": "Ana", "plan_name": "Hot Desk"},
        "language": "en",
        "status": status,
        "message_id": services.new_message_id(),
        "dedupe_key": f"test:{number}",
    }
    if status == Status.SENT:
        values["sent_at"] = timezone.now()
    values.update(fields)
    return OutboxEmail.objects.create(**values)


def messages_of(response) -> list[tuple[int, str]]:
    return [
        (message.level, str(message.message)) for message in get_messages(response.wsgi_request)
    ]


def listed_ids(response) -> list[int]:
    return sorted(row.pk for row in response.context["cl"].result_list)


def test_changelist_filters_by_status(staff_client):
    failed = make_email(status=Status.FAILED, last_error="SMTPDataError: 554 Rejected")
    make_email(status=Status.SENT)

    response = staff_client.get(CHANGELIST, {"status__exact": "failed"})

    assert response.status_code == 200
    assert listed_ids(response) == [failed.pk]
    assert "554 Rejected" in response.content.decode()


def test_changelist_filters_by_template(staff_client):
    receipt = make_email(template="payment_received")
    make_email()

    response = staff_client.get(CHANGELIST, {"template__exact": "payment_received"})

    assert listed_ids(response) == [receipt.pk]


def test_changelist_searches_recipient(staff_client):
    ana = make_email(recipient="ana@example.com")
    make_email(recipient="bob@example.com")

    response = staff_client.get(CHANGELIST, {"q": "ana@"})

    assert listed_ids(response) == [ana.pk]


def test_changelist_queries_constant(staff_client):
    make_email()
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(CHANGELIST).status_code == 200
    for index in range(30):
        make_email(
            status=[Status.QUEUED, Status.SENT, Status.FAILED][index % 3],
            recipient=f"person{index}@example.com",
        )

    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(CHANGELIST).status_code == 200

    assert len(many) == len(few)


def test_detail_read_only_with_preview(staff_client):
    email = make_email()

    response = staff_client.get(reverse("admin:outbox_outboxemail_change", args=[email.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "About your application to Code Puerto Rico" in content
    assert "Hi Ana," in content
    assert 'name="recipient"' not in content  # no editable field
    assert 'name="_save"' not in content


def test_no_add_or_delete(staff_client):
    email = make_email()

    assert staff_client.get(reverse("admin:outbox_outboxemail_add")).status_code == 403
    delete_url = reverse("admin:outbox_outboxemail_delete", args=[email.pk])
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert OutboxEmail.objects.filter(pk=email.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_send_again_failed_rows(staff_client):
    failed = make_email(status=Status.FAILED, last_error="SMTPDataError: 554 Rejected")
    sent = make_email(status=Status.SENT)
    mail.outbox.clear()

    response = staff_client.post(
        CHANGELIST,
        {"action": "send_again", ACTION_CHECKBOX_NAME: [failed.pk, sent.pk]},
        follow=True,
    )

    assert response.status_code == 200
    refused = f"Email {sent.pk} is sent; only failed emails can be sent again."
    assert messages_of(response) == [
        (SUCCESS, f"Email {failed.pk} to person@example.com: queued to be sent again."),
        (ERROR, f"Email {sent.pk} to person@example.com: {refused}"),
    ]
    row = OutboxEmail.objects.get(pk=failed.pk)
    assert row.status == Status.SENT  # tasks run inline in the tests
    assert row.attempts == 1
    assert [message.to for message in mail.outbox] == [["person@example.com"]]
    assert mail.outbox[0].extra_headers["Message-ID"] == failed.message_id


def test_send_again_needs_change_permission(client):
    viewer = UserFactory(is_staff=True)
    enable_totp(viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxemail"))
    client.force_login(viewer)
    failed = make_email(status=Status.FAILED)

    client.post(CHANGELIST, {"action": "send_again", ACTION_CHECKBOX_NAME: [failed.pk]})

    assert OutboxEmail.objects.get(pk=failed.pk).status == Status.FAILED


def send_again_url(email: OutboxEmail) -> str:
    return reverse("admin:outbox_outboxemail_send_again", args=[email.pk])


@pytest.mark.django_db(transaction=True)
def test_send_again_to_corrected_address(staff_client, staff_user, smtp_server):
    smtp_server.rejected_recipients = {"old@example.com": "550 5.1.1 No such user"}
    rejected = services.queue_email(
        recipient="old@example.com",
        template="application_rejected",
        context={"first_name": "Ana", "plan_name": "Hot Desk"},
        dedupe_key="test:corrected",
    )
    assert OutboxEmail.objects.get(pk=rejected.pk).status == Status.FAILED

    page = staff_client.get(reverse("admin:outbox_outboxemail_change", args=[rejected.pk]))
    assert send_again_url(rejected) in page.content.decode()
    form_page = staff_client.get(send_again_url(rejected))
    assert form_page.status_code == 200
    assert form_page.context["form"]["recipient"].value() == "old@example.com"
    response = staff_client.post(send_again_url(rejected), {"recipient": " new@example.com "})

    assert response.status_code == 302
    row = OutboxEmail.objects.get(pk=rejected.pk)
    assert row.status == Status.SENT
    assert row.recipient == "new@example.com"
    [received] = smtp_server.received()
    assert received.rcpt_tos == ("new@example.com",)
    assert received.message["Message-ID"] == rejected.message_id
    [entry] = LogEntry.objects.filter(object_id=str(rejected.pk))
    assert entry.user_id == staff_user.pk
    assert entry.change_message == "Sent again to new@example.com instead of old@example.com."


def test_send_again_invalid_address_kept(staff_client):
    failed = make_email(status=Status.FAILED, recipient="old@example.com")

    response = staff_client.post(send_again_url(failed), {"recipient": "new@example"})

    assert response.status_code == 200
    assert "recipient" in response.context["form"].errors
    row = OutboxEmail.objects.get(pk=failed.pk)
    assert row.status == Status.FAILED
    assert row.recipient == "old@example.com"
    assert not LogEntry.objects.exists()


def test_send_again_page_refuses_sent_row(staff_client):
    sent = make_email(status=Status.SENT, recipient="old@example.com")

    response = staff_client.post(send_again_url(sent), {"recipient": "new@example.com"})

    assert response.status_code == 302
    assert messages_of(response) == [
        (WARNING, f"Email {sent.pk} is sent; only failed emails can be sent again.")
    ]
    row = OutboxEmail.objects.get(pk=sent.pk)
    assert row.recipient == "old@example.com"
    assert row.status == Status.SENT
    page = staff_client.get(reverse("admin:outbox_outboxemail_change", args=[sent.pk]))
    assert send_again_url(sent) not in page.content.decode()


def test_send_again_page_needs_change_permission(client):
    viewer = UserFactory(is_staff=True)
    enable_totp(viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="view_outboxemail"))
    client.force_login(viewer)
    failed = make_email(status=Status.FAILED, recipient="old@example.com")

    response = client.post(send_again_url(failed), {"recipient": "new@example.com"})

    assert response.status_code == 403
    assert OutboxEmail.objects.get(pk=failed.pk).recipient == "old@example.com"


def test_resend_rejects_invalid_address():
    failed = make_email(status=Status.FAILED, recipient="old@example.com")

    with pytest.raises(OutboxError, match="“not-an-address” is not a valid email address"):
        services.resend_email(email=failed, actor=None, recipient="not-an-address")

    assert OutboxEmail.objects.get(pk=failed.pk).status == Status.FAILED
