"""Back-office labels of stored codes: states, causes, languages, gateways, object names."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from billing.models import Invoice, Payment
from bookings.models import Booking
from members.models import FAKE_GATEWAY_DECLINE, MembershipEvent
from outbox.models import OutboxEmail

from .conftest import TUESDAY
from .english import visible_text

pytestmark = pytest.mark.django_db


def page_text(response) -> str:
    assert response.status_code == 200
    return " ".join(visible_text(response.content.decode()).split())


def test_membership_events_spanish(spanish_client, staff_user, spanish_member):
    membership = spanish_member.memberships.get()
    MembershipEvent.objects.create(
        membership=membership, from_state="", to_state="pending", cause="application approved"
    )
    MembershipEvent.objects.create(
        membership=membership, from_state="pending", to_state="active", cause="first payment"
    )
    MembershipEvent.objects.create(
        membership=membership,
        from_state="active",
        to_state="past_due",
        cause="payment failed",
        reason=FAKE_GATEWAY_DECLINE,
    )
    spanish_client.force_login(staff_user)

    text = page_text(
        spanish_client.get(reverse("admin:members_membership_change", args=[membership.pk]))
    )

    for english in ("application approved", "first payment", "payment failed", "Simulated"):
        assert english not in text
    assert "solicitud aprobada" in text
    assert "primer pago" in text
    assert "pago fallido" in text
    assert not re.search(r"\b(pending|past_due)\b", text)


def test_event_str_uses_labels():
    event = MembershipEvent(membership_id=7, from_state="active", to_state="past_due")

    with translation.override("es"):
        assert str(event) == "7: Activa → Pago atrasado"
    with translation.override("en"):
        assert str(event) == "7: Active → Payment overdue"


def test_unknown_cause_shown_as_stored():
    event = MembershipEvent(cause="moved by a script")

    with translation.override("es"):
        assert event.get_cause_display() == "moved by a script"


def test_booking_str_local_time(spanish_member):
    booking = Booking.objects.get(member=spanish_member)

    with translation.override("en"):
        english = str(booking)
    with translation.override("es"):
        spanish = str(booking)

    # Booked 10:00-11:00 on the space's clock, 14:00 in UTC.
    assert "2 p.m." not in english
    assert "March 3, 2026, 10 a.m." in english
    assert "3 de marzo de 2026, 10:00" in spanish
    assert TUESDAY.day == 3


def test_invoice_and_payment_str(spanish_member):
    invoice = Invoice.objects.filter(membership__member=spanish_member).first()
    payment = Payment.objects.filter(invoice__membership__member=spanish_member).first()
    assert invoice is not None
    assert payment is not None

    with translation.override("es"):
        assert str(invoice).startswith(f"Factura {invoice.pk} · ")
        assert "de marzo de 2026" in str(invoice)
        assert str(payment) == f"Pago {payment.pk} · $250.00 · Efectivo"
    with translation.override("en"):
        assert str(invoice).startswith(f"Invoice {invoice.pk} · ")
        assert str(payment) == f"Payment {payment.pk} · $250.00 · Cash"


def test_outbox_language_and_gateway_names(spanish_client, staff_user, spanish_member):
    email = OutboxEmail.objects.filter(language="es").first() or OutboxEmail.objects.first()
    assert email is not None
    email.language = "es"
    with translation.override("es"):
        assert email.get_language_display() == "Español"
        assert Invoice(gateway="fake").get_gateway_display() == "Pasarela de prueba (simulada)"
    spanish_client.force_login(staff_user)

    text = page_text(spanish_client.get(reverse("admin:outbox_outboxemail_changelist")))

    assert "Español" in text
