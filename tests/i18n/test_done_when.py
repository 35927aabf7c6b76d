"""A person who chooses Español applies, is approved, signs in, pays and books a room.

Every page on the way and every email to the person is Spanish, with no English
sentence of ours, even though the browser asks for English and the staff member who
approves works in English. The gateway is the fake one, the default of `make run`.
"""

import datetime
import functools
import re
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.test import Client
from django.urls import reverse

from bookings.models import Booking
from members.models import Member, MembershipApplication
from outbox.models import OutboxEmail
from tests.accounts.helpers import sign_in_with_code
from tests.factories.bookings import RoomFactory

from .english import english_left, visible_text

pytestmark = pytest.mark.django_db

EMAIL = "ana.rivera@example.com"
MONDAY = datetime.date(2026, 3, 2)
TUESDAY = MONDAY + datetime.timedelta(days=1)


def local_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def spanish_page(client, url, data=None, *, plan=None):
    """GET (or POST `data` to) `url`, follow redirects, and check the page is all Spanish."""
    send = client.get if data is None else functools.partial(client.post, data=data)
    response = send(url, follow=True)
    assert response.status_code == 200, url
    page = response.content.decode()
    assert re.search(r'<html lang="es"[ >]', page), url
    shown_data = (plan.name, plan.summary, plan.description) if plan else ()
    assert english_left(visible_text(page), shown_data) == [], url
    return response


def test_spanish_person_end_to_end(client, staff_user, hot_desk, time_machine, settings):
    settings.PAYMENT_GATEWAY = "billing.gateways.fake.FakeGateway"
    time_machine.move_to(datetime.datetime(2026, 3, 2, 13, tzinfo=datetime.UTC), tick=False)
    room = RoomFactory(name="Sala Morro")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"

    # The browser asks for English; the person picks Español on the application page.
    home = client.get(reverse("members:home"))
    assert '<html lang="en">' in home.content.decode()
    switched = client.post(
        reverse("set_language"), {"language": "es", "next": reverse("members:apply")}
    )
    assert switched["Location"] == reverse("members:apply")
    spanish_page(client, reverse("members:apply"), plan=hot_desk)

    # Apply.
    application_form = {
        "first_name": "Ana",
        "last_name": "Rivera",
        "email": EMAIL,
        "phone": "787-555-0123",
        "company": "Rivera Labs",
        "plan": str(hot_desk.pk),
        "desired_start_date": MONDAY.isoformat(),
        "referral_source": "friend",
        "message": "Necesito un escritorio tres días a la semana.",
        "website": "",
    }
    spanish_page(client, reverse("members:apply"), application_form, plan=hot_desk)
    application = MembershipApplication.objects.get(email=EMAIL)
    assert application.language == "es"

    # A staff member working in English approves it in the back office.
    staff = Client(HTTP_ACCEPT_LANGUAGE="en")
    staff.force_login(staff_user)
    changelist = reverse("admin:members_membershipapplication_changelist")
    approved = staff.post(
        changelist,
        {"action": "approve_selected", ACTION_CHECKBOX_NAME: [str(application.pk)], "index": "0"},
        follow=True,
    )
    assert '<html lang="en"' in approved.content.decode()
    member = Member.objects.get(email__iexact=EMAIL)
    assert member.language == "es"

    # Sign in with an emailed code, then pay the first month.
    sign_in_with_code(client, EMAIL)
    dashboard = spanish_page(client, reverse("members:portal_dashboard"), plan=hot_desk)
    assert "$250.00" in dashboard.content.decode()
    pay_page = local_path(client.post(reverse("billing:pay"))["Location"])
    spanish_page(client, pay_page)
    spanish_page(client, pay_page, {}, plan=hot_desk)
    membership = member.memberships.get()
    membership.refresh_from_db()
    assert membership.state == "active"

    # Book a meeting room for Tuesday at 10:00.
    spanish_page(client, reverse("bookings:rooms"))
    spanish_page(client, reverse("bookings:room_day", args=[room.pk]) + f"?date={TUESDAY}")
    book_url = reverse("bookings:book", args=[room.pk])
    booking_form = {"date": TUESDAY.isoformat(), "start_time": "10:00", "minutes": "60"}
    spanish_page(client, book_url, booking_form)
    spanish_page(client, book_url, {**booking_form, "confirm": "1"})
    assert Booking.objects.filter(member=member).count() == 1

    # Every email to the person went out in Spanish.
    rows = OutboxEmail.objects.filter(recipient__iexact=EMAIL)
    assert set(rows.values_list("language", flat=True)) == {"es"}
    templates = set(rows.values_list("template", flat=True))
    expected = {
        "application_received",
        "application_approved",
        "account",
        "payment_received",
        "booking_confirmed",
    }
    assert expected <= templates, templates
    messages = [message for message in mail.outbox if EMAIL in message.to]
    assert len(messages) == rows.count()
    for message in messages:
        assert english_left(message.subject) == [], message.subject
        assert english_left(message.body) == [], message.body
        for content, kind in getattr(message, "alternatives", []):
            if kind == "text/html":
                assert english_left(visible_text(content)) == [], message.subject
