"""Every email in Spanish, and each one sent in its recipient's language."""

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from access import services as access_services
from access.models import AccessKey
from bookings import services as bookings_services
from members import emails as member_emails
from members import services as member_services
from members.models import LanguagePreference
from outbox.catalog import TEMPLATES, render_email
from outbox.models import OutboxEmail
from tests.accounts.helpers import request_login_code
from tests.bookings.conftest import at, paid_member
from tests.factories import ApplicationFactory, MemberWithUserFactory

from .conftest import TUESDAY
from .english import english_left, visible_text

pytestmark = pytest.mark.django_db

DAY = "2026-12-04"
SPANISH_DAY = "4 de diciembre de 2026"
AMOUNT = "1250.00"
SPANISH_AMOUNT = "$1,250.00"
START = "2026-12-04T14:00:00-04:00"
END = "2026-12-04T15:30:00-04:00"

# Context values of every template, with the branches each one can take.
BASE = {
    "application_id": 7,
    "membership_id": 8,
    "invoice_id": 9,
    "payment_id": 10,
    "booking_id": 11,
    "key_id": 12,
    "first_name": "Ana",
    "full_name": "Ana Rivera",
    "email": "ana@example.com",
    "phone": "787-555-0123",
    "company": "Rivera Labs",
    "message": "Quiero un escritorio.",
    "plan_name": "Hot Desk",
    "room_name": "Sala Morro",
    "desired_start_date": DAY,
    "start_date": DAY,
    "commitment_end": DAY,
    "end_date": DAY,
    "received_on": DAY,
    "grace_until": DAY,
    "period_start": DAY,
    "period_last_day": DAY,
    "monthly_price": AMOUNT,
    "amount": AMOUNT,
    "price": AMOUNT,
    "credit_used": AMOUNT,
    "overage": AMOUNT,
    "start": START,
    "end": END,
    "method": "Efectivo",
    "key_kind": "Llavero electrónico",
    "key_last_digits": "0042",
    "contract_months": 12,
    "pay_url": "https://pay.example/invoice/9",
    "bookings_url": "https://portal.example/portal/bookings/",
}
VARIANTS = {
    "cancellation_confirmed": [{"scheduled": True}, {"scheduled": False}],
    "commitment_ending": [
        {"outcome": outcome} for outcome in ("renews", "ends", "month_to_month", "cancelled")
    ],
    "key_issued": [{"opens_doors": True}, {"opens_doors": False}],
    "booking_cancelled": [{"charge_kept": True}, {"charge_kept": False}],
    "payment_failed": [{}, {"pay_url": ""}],
}
CASES = [(name, variant) for name in sorted(TEMPLATES) for variant in VARIANTS.get(name, [{}])]


def spanish_email(name, variant):
    return render_email(template=name, context={**BASE, **variant}, language="es")


@pytest.mark.parametrize(("name", "variant"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
def test_email_spanish(name, variant):
    email = spanish_email(name, variant)

    assert english_left(email.subject) == [], email.subject
    assert english_left(email.text) == [], email.text
    assert english_left(visible_text(email.html)) == [], email.html
    assert '<html lang="es"' in email.html


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_email_formats_spanish(name):
    spec = TEMPLATES[name]
    email = spanish_email(name, VARIANTS.get(name, [{}])[0])
    displayed_keys = (set(spec.dates) | set(spec.money)) & set(spec.required)

    for key in displayed_keys:
        expected = SPANISH_AMOUNT if key in spec.money else SPANISH_DAY
        assert expected in email.text, (key, email.text)
        assert expected in email.html, key
    assert "1.250,00" not in email.text
    assert "1250,00" not in email.text


def test_email_english_detected():
    """The check finds English: the same email in English fails it."""
    email = render_email(template="payment_received", context=BASE, language="en")

    assert english_left(email.text)


def sent_to(address):
    return [message for message in mail.outbox if address in message.to]


def test_approval_by_english_staff_in_spanish(
    staff_user, hot_desk, django_capture_on_commit_callbacks
):
    application = ApplicationFactory(plan=hot_desk, email="ana@example.com", language="es")

    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        member_services.approve_application(application=application, actor=staff_user)

    row = OutboxEmail.objects.get(template="application_approved")
    assert row.language == "es"
    (message,) = sent_to("ana@example.com")
    assert english_left(message.body) == []
    assert (
        message.subject
        == render_email(template="application_approved", context=row.context, language="es").subject
    )


def test_member_emails_follow_stored_language(
    hot_desk, now, room, django_capture_on_commit_callbacks
):
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        # paid_member records a cash payment of the first month.
        member = paid_member(hot_desk, email="ana@example.com", language="es")
        access_services.issue_key(
            member=member, number="FOB-0042", kind=AccessKey.Kind.FOB, actor=None
        )
        bookings_services.book_room(
            member=member, room=room, start=at(TUESDAY, 10), end=at(TUESDAY, 11)
        )

    rows = OutboxEmail.objects.filter(recipient="ana@example.com")
    templates = set(rows.values_list("template", flat=True))
    assert {"payment_received", "key_issued", "booking_confirmed"} <= templates
    assert set(rows.values_list("language", flat=True)) == {"es"}
    assert rows.get(template="payment_received").context["method"] == "Efectivo"
    assert rows.get(template="key_issued").context["key_kind"] == "Llavero electrónico"
    for message in sent_to("ana@example.com"):
        assert english_left(message.body) == [], message.subject


def test_english_member_gets_english(hot_desk, now, django_capture_on_commit_callbacks):
    with translation.override("es"), django_capture_on_commit_callbacks(execute=True):
        paid_member(hot_desk, email="ben@example.com", language="en")

    row = OutboxEmail.objects.get(template="payment_received")
    assert (row.language, row.context["method"]) == ("en", "Cash")


def test_staff_notice_in_staff_language(settings, staff_user, hot_desk):
    settings.CPR_STAFF_NOTIFY_EMAILS = [staff_user.email, "frontdesk@example.com"]
    LanguagePreference.objects.create(user=staff_user, language="es")
    application = ApplicationFactory(plan=hot_desk, language="en")

    with translation.override("en"):
        member_emails.queue_application_received(application)

    notices = OutboxEmail.objects.filter(template="application_staff_notice")
    languages = dict(notices.values_list("recipient", "language"))
    assert languages == {staff_user.email: "es", "frontdesk@example.com": "en"}
    assert OutboxEmail.objects.get(template="application_received").language == "en"


def test_sign_in_code_in_member_language(client):
    MemberWithUserFactory(email="ana@example.com", language="es")

    response = request_login_code(client, "ana@example.com")

    assert response.status_code == 302
    row = OutboxEmail.objects.get(recipient="ana@example.com")
    assert row.language == "es"
    (message,) = sent_to("ana@example.com")
    assert english_left(message.body) == [], message.body
    assert "[Code Puerto Rico]" in message.subject
    assert reverse("account_login") not in message.subject


def test_booking_email_time_spanish():
    email = render_email(template="booking_confirmed", context=BASE, language="es")

    assert "4 de diciembre de 2026, 2:00 p.m. – 3:30 p.m." in email.text
