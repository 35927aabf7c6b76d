"""Every email of the catalog renders its subject, plain text and HTML, in each language."""

import datetime
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import translation

from outbox import services
from outbox.catalog import TEMPLATES, render_email
from outbox.errors import OutboxError
from outbox.models import OutboxEmail

SITE_URL = "https://portal.code-pr.example"

# A context for each email, as the wiring in members, billing and access builds it.
CONTEXTS = {
    "application_received": {
        "application_id": 7,
        "first_name": "Ana",
        "plan_name": "Hot Desk",
        "desired_start_date": datetime.date(2025, 2, 3),
    },
    "application_staff_notice": {
        "application_id": 7,
        "full_name": "Ana Rivera",
        "email": "ana@example.com",
        "phone": "787-555-0101",
        "company": "Rivera & Hijos",
        "plan_name": "Hot Desk",
        "desired_start_date": datetime.date(2025, 2, 3),
        "message": "I code <late> at night.",
    },
    "application_approved": {
        "application_id": 7,
        "membership_id": 3,
        "first_name": "Ana",
        "email": "ana@example.com",
        "plan_name": "Hot Desk",
        "start_date": datetime.date(2025, 2, 3),
        "commitment_end": datetime.date(2026, 2, 3),
        "monthly_price": Decimal("1250.00"),
    },
    "application_rejected": {"application_id": 7, "first_name": "Ana", "plan_name": "Hot Desk"},
    "payment_received": {
        "payment_id": 41,
        "invoice_id": 12,
        "membership_id": 3,
        "first_name": "Ana",
        "plan_name": "Hot Desk",
        "amount": Decimal("250.00"),
        "method": "ATH Móvil",
        "received_on": datetime.date(2025, 2, 3),
        "period_start": datetime.date(2025, 2, 3),
        "period_last_day": datetime.date(2025, 3, 2),
    },
    "payment_failed": {
        "invoice_id": 12,
        "membership_id": 3,
        "first_name": "Ana",
        "plan_name": "Hot Desk",
        "amount": Decimal("250.00"),
        "period_start": datetime.date(2025, 3, 3),
        "period_last_day": datetime.date(2025, 4, 2),
        "grace_until": datetime.date(2025, 3, 10),
        "pay_url": "https://invoice.stripe.example/i/acct_1/test_42",
    },
    "membership_suspended": {"membership_id": 3, "first_name": "Ana", "plan_name": "Hot Desk"},
    "membership_reinstated": {"membership_id": 3, "first_name": "Ana", "plan_name": "Hot Desk"},
    "key_issued": {
        "key_id": 5,
        "first_name": "Ana",
        "key_kind": "Key fob",
        "key_last_digits": "4821",
        "opens_doors": True,
    },
    "key_suspended": {
        "key_id": 5,
        "first_name": "Ana",
        "key_kind": "Key fob",
        "key_last_digits": "4821",
    },
    "cancellation_confirmed": {
        "membership_id": 3,
        "first_name": "Ana",
        "plan_name": "Hot Desk",
        "scheduled": True,
        "end_date": datetime.date(2026, 2, 3),
    },
    "booking_confirmed": {
        "booking_id": 9,
        "first_name": "Ana",
        "room_name": "Sala Morro",
        "start": datetime.datetime(2025, 3, 4, 14, 0, tzinfo=datetime.UTC),
        "end": datetime.datetime(2025, 3, 4, 16, 0, tzinfo=datetime.UTC),
        "price": Decimal("50.00"),
        "credit_used": Decimal("30.00"),
        "overage": Decimal("20.00"),
        "bookings_url": f"{SITE_URL}/portal/bookings/",
    },
    "booking_cancelled": {
        "booking_id": 9,
        "first_name": "Ana",
        "room_name": "Sala Morro",
        "start": datetime.datetime(2025, 3, 4, 14, 0, tzinfo=datetime.UTC),
        "end": datetime.datetime(2025, 3, 4, 16, 0, tzinfo=datetime.UTC),
        "price": Decimal("50.00"),
        "credit_used": Decimal("30.00"),
        "overage": Decimal("20.00"),
        "charge_kept": False,
        "bookings_url": f"{SITE_URL}/portal/bookings/",
    },
    "commitment_ending": {
        "membership_id": 3,
        "first_name": "Ana",
        "plan_name": "Hot Desk",
        "commitment_end": datetime.date(2026, 2, 3),
        "contract_months": 12,
        "outcome": "renews",
    },
}

# Text each email must contain, in its plain-text body, when rendered in English.
FACTS = {
    "application_received": ["Hot Desk", "Feb. 3, 2025"],
    "application_staff_notice": [
        "Ana Rivera",
        "ana@example.com",
        "Rivera & Hijos",
        "I code <late> at night.",
        f"{SITE_URL}/admin/members/membershipapplication/7/change/",
    ],
    "application_approved": [
        "Feb. 3, 2025",
        "$1,250.00",
        "Feb. 3, 2026",
        "ana@example.com",
        f"{SITE_URL}/accounts/login/",
        f"{SITE_URL}/portal/",
        "Pay now",
    ],
    "application_rejected": ["Hot Desk"],
    "payment_received": ["41", "$250.00", "ATH Móvil", "Feb. 3, 2025", "March 2, 2025"],
    "payment_failed": [
        "$250.00",
        "March 10, 2025",
        "https://invoice.stripe.example/i/acct_1/test_42",
    ],
    "membership_suspended": ["suspended", f"{SITE_URL}/portal/"],
    "membership_reinstated": ["active again"],
    "key_issued": ["key fob ending in 4821", "opens the doors now"],
    "key_suspended": ["key fob ending in 4821"],
    "cancellation_confirmed": ["Feb. 3, 2026", "ends then"],
    "commitment_ending": ["Feb. 3, 2026", "another 12 months"],
    # 14:00 UTC is 10 a.m. in San Juan (UTC-4).
    "booking_confirmed": [
        "Sala Morro",
        "March 4, 2025, 10 a.m. – noon",
        "$50.00",
        "$30.00",
        "$20.00",
        f"{SITE_URL}/portal/bookings/",
    ],
    "booking_cancelled": [
        "March 4, 2025, 10 a.m. – noon, is cancelled",
        "$30.00 of credit is back",
        "$20.00 is removed",
    ],
}


def stored(context: dict) -> dict:
    """Return `context` as it comes back from the JSON column: dates and amounts as text."""
    return json.loads(json.dumps(context, cls=DjangoJSONEncoder))


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.CPR_SITE_URL = SITE_URL
    settings.CPR_CONTACT_EMAIL = "hola@code-pr.example"


def test_every_template_has_a_sample():
    assert set(CONTEXTS) == set(TEMPLATES)
    assert set(FACTS) == set(TEMPLATES)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_renders_in_english(template):
    rendered = render_email(template=template, context=stored(CONTEXTS[template]), language="en")

    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "{%" not in rendered.text + rendered.html
    assert all(len(line) <= 72 or " " not in line for line in rendered.text.splitlines())
    words = " ".join(rendered.text.split())
    for fact in FACTS[template]:
        assert fact in words, fact
    assert "hola@code-pr.example" in rendered.text
    assert rendered.html.startswith("<!doctype html>")
    assert '<html lang="en">' in rendered.html
    assert "hola@code-pr.example" in rendered.html


def test_payment_failed_links_invoice():
    context = stored(CONTEXTS["payment_failed"])

    rendered = render_email(template="payment_failed", context=context, language="en")

    assert 'href="https://invoice.stripe.example/i/acct_1/test_42"' in rendered.html
    assert f'href="{SITE_URL}/portal/"' not in rendered.html
    assert "sign in" not in rendered.text


def test_payment_failed_without_invoice_page():
    context = stored({**CONTEXTS["payment_failed"], "pay_url": ""})

    rendered = render_email(template="payment_failed", context=context, language="en")

    assert f"{SITE_URL}/portal/" in rendered.text
    assert f'href="{SITE_URL}/portal/"' in rendered.html
    assert "sign in" in rendered.text


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_renders_in_spanish(template):
    rendered = render_email(template=template, context=stored(CONTEXTS[template]), language="es")

    assert rendered.subject
    assert '<html lang="es">' in rendered.html
    name = CONTEXTS[template].get("first_name") or CONTEXTS[template]["full_name"]
    assert name in rendered.text


def test_html_escapes_and_text_does_not():
    context = stored(CONTEXTS["application_staff_notice"])

    rendered = render_email(template="application_staff_notice", context=context, language="en")

    assert "I code &lt;late&gt; at night." in rendered.html
    assert "Rivera &amp; Hijos" in rendered.html
    assert "Rivera & Hijos" in rendered.text


@pytest.mark.parametrize(
    ("outcome", "fact"),
    [
        ("renews", "renews for another 12 months"),
        ("ends", "does not renew"),
        ("month_to_month", "month to month"),
        ("cancelled", "As you asked"),
    ],
)
def test_commitment_outcomes(outcome, fact):
    context = stored({**CONTEXTS["commitment_ending"], "outcome": outcome})

    rendered = render_email(template="commitment_ending", context=context, language="en")

    assert fact in " ".join(rendered.text.split())
    assert fact in " ".join(rendered.html.split())


def test_immediate_cancellation_wording():
    context = stored({**CONTEXTS["cancellation_confirmed"], "scheduled": False})

    rendered = render_email(template="cancellation_confirmed", context=context, language="en")

    assert "cancelled as of Feb. 3, 2026" in " ".join(rendered.text.split())


def test_late_booking_cancellation_keeps_charge():
    context = stored({**CONTEXTS["booking_cancelled"], "charge_kept": True})

    rendered = render_email(template="booking_cancelled", context=context, language="en")

    words = " ".join(rendered.text.split())
    assert "still charged" in words
    assert "back in your balance" not in words


def test_template_files_checked():
    call_command("check", "--tag", "templates")


@pytest.mark.django_db
def test_unknown_template_rejected():
    with pytest.raises(OutboxError, match="Unknown email template 'welcome'"):
        services.queue_email(
            recipient="a@example.com", template="welcome", context={}, dedupe_key="x"
        )


@pytest.mark.django_db
def test_missing_context_rejected():
    with pytest.raises(OutboxError, match="needs the context value"):
        services.queue_email(
            recipient="a@example.com",
            template="application_rejected",
            context={"first_name": "Ana"},
            dedupe_key="x",
        )
    assert not OutboxEmail.objects.exists()


@pytest.mark.django_db
def test_non_json_context_rejected():
    with pytest.raises(OutboxError, match="is not JSON"):
        services.queue_email(
            recipient="a@example.com",
            template="application_rejected",
            context={"first_name": object(), "plan_name": "Hot Desk"},
            dedupe_key="x",
        )


@pytest.mark.django_db
def test_invalid_recipient_stored_failed(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        email = services.queue_email(
            recipient="not an address",
            template="application_rejected",
            context={"first_name": "Ana", "plan_name": "Hot Desk"},
            dedupe_key="x",
        )

    assert email.status == OutboxEmail.Status.FAILED
    assert "not an address" in email.last_error
    assert callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize(("requested", "stored_as"), [("fr", "en"), ("es-pr", "es"), ("es", "es")])
def test_language_normalized(requested, stored_as):
    email = services.queue_email(
        recipient="a@example.com",
        template="application_rejected",
        context={"first_name": "Ana", "plan_name": "Hot Desk"},
        dedupe_key="x",
        language=requested,
    )

    assert email.language == stored_as


@pytest.mark.django_db
def test_language_defaults_to_active():
    with translation.override("es"):
        email = services.queue_email(
            recipient="a@example.com",
            template="application_rejected",
            context={"first_name": "Ana", "plan_name": "Hot Desk"},
            dedupe_key="x",
        )

    assert email.language == "es"


@pytest.mark.django_db
def test_same_key_queued_once(django_capture_on_commit_callbacks):
    values = {
        "recipient": "a@example.com",
        "template": "application_rejected",
        "context": {"first_name": "Ana", "plan_name": "Hot Desk"},
        "dedupe_key": "application_rejected:application:1",
    }

    with django_capture_on_commit_callbacks() as callbacks:
        first = services.queue_email(**values)
        second = services.queue_email(**{**values, "recipient": "b@example.com"})

    assert second.pk == first.pk
    assert second.recipient == "a@example.com"
    assert OutboxEmail.objects.count() == 1
    assert len(callbacks) == 1
