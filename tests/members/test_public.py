"""The public site through Django's test client: plans, the application form, its guards."""

import datetime
import types
from html.parser import HTMLParser

import pytest
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from members import services
from members.models import MembershipApplication
from members.ratelimit import client_ip, hit_rate_limit
from tests.factories import (
    ApplicationFactory,
    MembershipFactory,
    PlanFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

APPLY_URL = reverse("members:apply")
THANKS_URL = reverse("members:apply_thanks")
HOME_URL = reverse("members:home")

# 23:30 on 28 February 2026 in San Juan (UTC-4) is already 1 March in UTC, so a form that
# took "today" from the UTC date would reject a start date of 28 February.
LATE_EVENING_UTC = datetime.datetime(2026, 3, 1, 3, 30, tzinfo=datetime.UTC)
LATE_EVENING_LOCAL_DATE = datetime.date(2026, 2, 28)


class FormHTML(HTMLParser):
    """Collect what an HTML page shows in its form controls, labels and containers."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self.controls: list[dict[str, str | None]] = []
        self.label_targets: set[str] = set()
        self.aria_hidden_controls: set[str] = set()
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self._textarea: str | None = None
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **attributes})
            if any(open_attrs.get("aria-hidden") == "true" for _, open_attrs in self._open):
                self.aria_hidden_controls.add(attributes.get("name") or "")
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        if tag == "input" and attributes.get("type") not in ("checkbox", "radio", "submit"):
            self.values[attributes.get("name") or ""] = attributes.get("value") or ""
        elif tag == "textarea":
            self._textarea = attributes.get("name")
            self.values[self._textarea or ""] = ""
        elif tag == "select":
            self._select = attributes.get("name")
        elif tag == "option" and self._select and "selected" in attributes:
            self.values[self._select] = attributes.get("value") or ""
        if tag not in ("input", "br", "hr", "img", "meta", "link", "option"):
            self._open.append((tag, attributes))

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        if tag == "select":
            self._select = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data):
        if self._textarea:
            # HTML drops one newline right after <textarea>; Django's widget writes one.
            text = data[1:] if not self.values[self._textarea] and data[:1] == "\n" else data
            self.values[self._textarea] += text

    def control(self, name: str) -> dict[str, str | None]:
        return next(control for control in self.controls if control.get("name") == name)


def local_today() -> datetime.date:
    """Return today as the form computes it: in the active time zone, America/Puerto_Rico."""
    return timezone.localdate()


def application_data(open_plan, /, **overrides) -> dict[str, str]:
    """Return a valid form submission for `open_plan`; `overrides` replace single fields."""
    data = {
        "first_name": "Ana",
        "last_name": "Rivera",
        "email": "ana.rivera@example.com",
        "phone": "787-555-0123",
        "company": "Rivera Labs",
        "plan": str(open_plan.pk),
        "desired_start_date": (local_today() + datetime.timedelta(days=14)).isoformat(),
        "referral_source": "friend",
        "message": "I build mobile apps and need a desk three days a week.",
        "website": "",
    }
    data.update(overrides)
    return data


def assert_typed_values_kept(response, data: dict[str, str], skip: tuple[str, ...] = ()):
    page = FormHTML(response.content.decode())
    for name, typed in data.items():
        if name in skip or name == "website":
            continue
        assert page.values.get(name) == typed, f"{name} lost what was typed"


def field_errors(response, name: str) -> list[str]:
    return list(response.context["form"].errors.get(name, []))


@pytest.fixture
def late_evening(monkeypatch):
    """Pin the clock to 23:30 local time on a day whose UTC date is already the next one."""
    monkeypatch.setattr(timezone, "now", lambda: LATE_EVENING_UTC)
    assert timezone.localdate() == LATE_EVENING_LOCAL_DATE
    return LATE_EVENING_LOCAL_DATE


# --- Plans -------------------------------------------------------------------------


def test_home_lists_open_plans(client, hot_desk):
    PlanFactory(name="Dedicated Desk", slug="dedicated-desk")
    PlanFactory(name="Secret Founders Plan", slug="secret", is_public=False)
    PlanFactory(name="Retired Night Owl Plan", slug="night-owl", is_active=False)

    response = client.get(HOME_URL)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Hot Desk" in content
    assert "Dedicated Desk" in content
    assert "Secret Founders Plan" not in content
    assert "Retired Night Owl Plan" not in content
    assert f"{APPLY_URL}?plan=hot-desk" in content


def test_home_reads_plans_from_database(client, hot_desk):
    hot_desk.name = "Hot Desk Plus"
    hot_desk.monthly_price = "275.00"
    hot_desk.save()

    content = client.get(HOME_URL).content.decode()

    assert "Hot Desk Plus" in content
    assert "275.00" in content


def test_home_without_open_plans(client, hot_desk):
    hot_desk.is_active = False
    hot_desk.save()

    response = client.get(HOME_URL)

    assert response.status_code == 200
    assert "No plans are open for applications right now" in response.content.decode()


def test_plan_page_hot_desk(client, hot_desk):
    response = client.get(reverse("members:plan_detail", args=["hot-desk"]))

    assert response.status_code == 200
    content = response.content.decode()
    assert "<h1>Hot Desk</h1>" in content
    assert "250.00" in content
    assert "150.00" in content
    assert "12 months" in content


@pytest.mark.parametrize(
    "plan_kwargs",
    [{"is_public": False}, {"is_active": False}],
    ids=["not-public", "inactive"],
)
def test_plan_page_closed_plan_404(client, plan_kwargs):
    plan = PlanFactory(slug="closed-plan", **plan_kwargs)

    response = client.get(reverse("members:plan_detail", args=[plan.slug]))

    assert response.status_code == 404


def test_plan_page_unknown_slug_404(client):
    response = client.get(reverse("members:plan_detail", args=["no-such-plan"]))

    assert response.status_code == 404


def test_apply_preselects_plan(client, hot_desk):
    PlanFactory(slug="other-plan", sort_order=0)

    response = client.get(f"{APPLY_URL}?plan=hot-desk")

    assert response.status_code == 200
    assert FormHTML(response.content.decode()).values.get("plan") == str(hot_desk.pk)


def test_apply_ignores_closed_plan_slug(client, hot_desk):
    PlanFactory(slug="secret", is_public=False)

    response = client.get(f"{APPLY_URL}?plan=secret")

    assert response.status_code == 200
    assert FormHTML(response.content.decode()).values.get("plan") == ""


def test_apply_plan_choices_open_only(client, hot_desk):
    hidden = PlanFactory(name="Secret Founders Plan", is_public=False)
    inactive = PlanFactory(name="Retired Night Owl Plan", is_active=False)

    content = client.get(APPLY_URL).content.decode()

    assert FormHTML(content).control("plan")["tag"] == "select"
    assert f'value="{hot_desk.pk}"' in content
    assert f'value="{hidden.pk}"' not in content
    assert f'value="{inactive.pk}"' not in content


# --- A valid application ----------------------------------------------------------


def test_apply_valid_creates_application(client, hot_desk):
    data = application_data(hot_desk)

    response = client.post(APPLY_URL, data, REMOTE_ADDR="198.51.100.23")

    assert response.status_code == 302
    assert response["Location"] == THANKS_URL
    assert MembershipApplication.objects.count() == 1
    application = MembershipApplication.objects.get()
    assert application.first_name == "Ana"
    assert application.last_name == "Rivera"
    assert application.email == "ana.rivera@example.com"
    assert application.phone == "787-555-0123"
    assert application.company == "Rivera Labs"
    assert application.plan == hot_desk
    assert application.desired_start_date == local_today() + datetime.timedelta(days=14)
    assert application.referral_source == "friend"
    assert application.message == data["message"]
    assert application.language == "en"
    assert application.ip_address == "198.51.100.23"
    assert application.status == MembershipApplication.Status.SUBMITTED


def test_apply_records_spanish_language(client, hot_desk):
    client.post(APPLY_URL, application_data(hot_desk), HTTP_ACCEPT_LANGUAGE="es")

    assert MembershipApplication.objects.get().language == "es"


def test_apply_optional_fields_empty(client, hot_desk):
    data = application_data(
        hot_desk, phone="", company="", desired_start_date="", referral_source="", message=""
    )

    response = client.post(APPLY_URL, data)

    assert response.status_code == 302
    application = MembershipApplication.objects.get()
    assert application.desired_start_date is None
    assert application.phone == ""


def test_thanks_page_names_plan_and_email(client, hot_desk):
    response = client.post(APPLY_URL, application_data(hot_desk), follow=True)

    assert response.redirect_chain == [(THANKS_URL, 302)]
    content = response.content.decode()
    assert "Thanks, Ana." in content
    assert "Hot Desk" in content
    assert "ana.rivera@example.com" in content


def test_thanks_page_without_application(client):
    response = client.get(THANKS_URL)

    assert response.status_code == 200
    assert "Your application is with our staff" in response.content.decode()


# --- Bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("first_name", "Enter your first name."),
        ("last_name", "Enter your last name."),
        ("email", "Enter your email address."),
        ("plan", "Choose a plan."),
    ],
)
def test_apply_missing_required_field(client, hot_desk, field, message):
    data = application_data(hot_desk, **{field: ""})

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, field) == [message]
    assert message in response.content.decode()
    assert_typed_values_kept(response, data, skip=(field,))
    assert MembershipApplication.objects.count() == 0


def test_apply_whitespace_only_name(client, hot_desk):
    response = client.post(APPLY_URL, application_data(hot_desk, first_name="   "))

    assert field_errors(response, "first_name") == ["Enter your first name."]
    assert MembershipApplication.objects.count() == 0


@pytest.mark.parametrize("email", ["ana.rivera", "ana@", "ana rivera@example.com", "@example.com"])
def test_apply_invalid_email(client, hot_desk, email):
    data = application_data(hot_desk, email=email)

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "email") == [
        "Enter a valid email address, for example ana@example.com."
    ]
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


@pytest.mark.parametrize("phone", ["call me", "787-555-CODE", "12345", "+1 (787) 555-0123 ext 4"])
def test_apply_bad_phone(client, hot_desk, phone):
    data = application_data(hot_desk, phone=phone)

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    errors = field_errors(response, "phone")
    assert len(errors) == 1
    assert errors[0].startswith("Enter a phone number using digits")
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


@pytest.mark.parametrize("phone", ["+1 787 555 0123", "(787) 555-0123", "787.555.0123"])
def test_apply_good_phone_formats(client, hot_desk, phone):
    response = client.post(APPLY_URL, application_data(hot_desk, phone=phone))

    assert response.status_code == 302
    assert MembershipApplication.objects.get().phone == phone


@pytest.mark.parametrize(
    ("field", "length", "limit"),
    [
        ("first_name", 101, 100),
        ("last_name", 101, 100),
        ("company", 201, 200),
        ("message", 2001, 2000),
        ("phone", 41, 40),
    ],
)
def test_apply_text_over_limit(client, hot_desk, field, length, limit):
    typed = "7" * length if field == "phone" else "ñ" * length
    data = application_data(hot_desk, **{field: typed})

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    expected = f"Use at most {limit} characters (you entered {length})."
    assert expected in field_errors(response, field)
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_email_over_limit(client, hot_desk):
    email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com"
    data = application_data(hot_desk, email=email)

    response = client.post(APPLY_URL, data)

    assert len(email) > 254
    assert field_errors(response, "email")
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_start_date_yesterday(client, hot_desk):
    yesterday = local_today() - datetime.timedelta(days=1)
    data = application_data(hot_desk, desired_start_date=yesterday.isoformat())

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "desired_start_date") == [
        f"The start date {date_format(yesterday)} has passed. Choose today or a later date."
    ]
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_start_date_today(client, hot_desk):
    today = local_today()

    response = client.post(APPLY_URL, application_data(hot_desk, desired_start_date=today))

    assert response.status_code == 302
    assert MembershipApplication.objects.get().desired_start_date == today


def test_apply_start_date_one_year_ahead(client, hot_desk):
    latest = local_today() + datetime.timedelta(days=365)

    response = client.post(APPLY_URL, application_data(hot_desk, desired_start_date=latest))

    assert response.status_code == 302
    assert MembershipApplication.objects.get().desired_start_date == latest


def test_apply_start_date_too_far(client, hot_desk):
    latest = local_today() + datetime.timedelta(days=365)
    too_far = latest + datetime.timedelta(days=1)
    data = application_data(hot_desk, desired_start_date=too_far.isoformat())

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "desired_start_date") == [
        f"The start date {date_format(too_far)} is more than a year away. "
        f"Choose a date on or before {date_format(latest)}."
    ]
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_start_date_invalid(client, hot_desk):
    data = application_data(hot_desk, desired_start_date="2026-02-30")

    response = client.post(APPLY_URL, data)

    assert field_errors(response, "desired_start_date") == [
        "Enter a valid date, for example 2027-01-15."
    ]
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_today_is_local_date(client, hot_desk, late_evening):
    data = application_data(hot_desk, desired_start_date=late_evening.isoformat())

    response = client.post(APPLY_URL, data)

    assert response.status_code == 302
    assert MembershipApplication.objects.get().desired_start_date == late_evening


def test_apply_local_boundaries(client, hot_desk, late_evening):
    yesterday = late_evening - datetime.timedelta(days=1)
    latest = late_evening + datetime.timedelta(days=365)

    past = client.post(APPLY_URL, application_data(hot_desk, desired_start_date=yesterday))
    too_far = client.post(
        APPLY_URL,
        application_data(hot_desk, desired_start_date=latest + datetime.timedelta(days=1)),
    )
    last_day = client.post(APPLY_URL, application_data(hot_desk, desired_start_date=latest))

    assert field_errors(past, "desired_start_date")
    assert field_errors(too_far, "desired_start_date")
    assert last_day.status_code == 302
    assert MembershipApplication.objects.get().desired_start_date == datetime.date(2027, 2, 28)


def test_apply_date_input_bounds(client, late_evening):
    page = FormHTML(client.get(APPLY_URL).content.decode())

    assert page.control("desired_start_date")["min"] == "2026-02-28"
    assert page.control("desired_start_date")["max"] == "2027-02-28"


@pytest.mark.parametrize(
    "plan_kwargs",
    [{"is_public": False}, {"is_active": False}],
    ids=["not-public", "inactive"],
)
def test_apply_closed_plan(client, hot_desk, plan_kwargs):
    closed = PlanFactory(**plan_kwargs)
    data = application_data(closed)

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "plan") == [
        "That plan is not open for applications. Choose one of the plans listed."
    ]
    assert_typed_values_kept(response, data, skip=("plan",))
    assert MembershipApplication.objects.count() == 0


@pytest.mark.parametrize("plan_value", ["999999", "hot-desk", "-1"])
def test_apply_unknown_plan(client, hot_desk, plan_value):
    data = application_data(hot_desk, plan=plan_value)

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "plan") == [
        "That plan is not open for applications. Choose one of the plans listed."
    ]
    assert_typed_values_kept(response, data, skip=("plan",))
    assert MembershipApplication.objects.count() == 0


def test_apply_plan_closes_after_form_check(client, hot_desk, monkeypatch):
    """A plan closed between form validation and the service call gets a plan error."""
    original = services.submit_application

    def close_plan_then_submit(**kwargs):
        kwargs["plan"].is_active = False
        return original(**kwargs)

    monkeypatch.setattr(services, "submit_application", close_plan_then_submit)
    data = application_data(hot_desk)

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "plan") == [
        "The plan “Hot Desk” is not open for applications; choose another plan."
    ]
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_error_summary_links_fields(client, hot_desk):
    response = client.post(APPLY_URL, application_data(hot_desk, first_name="", email="nope"))

    content = response.content.decode()
    assert 'role="alert"' in content
    assert '<a href="#id_first_name">' in content
    assert '<a href="#id_email">' in content


# --- Names and long text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [("José", "Núñez"), ("Iñaki", "Muñoz"), ("Zoë", "O'Brien-Ávila")],
)
def test_apply_accented_names(client, hot_desk, first_name, last_name):
    prefix = "Cooperativa de Tecnología Boricua — Ñandú & Asociados, "
    company = prefix + "é" * (200 - len(prefix))
    data = application_data(hot_desk, first_name=first_name, last_name=last_name, company=company)

    response = client.post(APPLY_URL, data, follow=True)

    application = MembershipApplication.objects.get()
    assert application.first_name == first_name
    assert application.last_name == last_name
    assert application.company == company
    assert len(application.company) == 200
    content = response.content.decode()
    assert f"Thanks, {first_name}." in content
    assert "ana.rivera@example.com" in content


def test_apply_accented_name_kept_on_error(client, hot_desk):
    data = application_data(hot_desk, first_name="Zoë", last_name="O'Brien-Ávila", email="x")

    response = client.post(APPLY_URL, data)

    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


# --- Duplicates ---------------------------------------------------------------------


def test_apply_duplicate_open_application(client, hot_desk):
    ApplicationFactory(email="ana.rivera@example.com", plan=hot_desk)
    data = application_data(hot_desk, email="Ana.Rivera@EXAMPLE.com")

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert field_errors(response, "email") == [
        "An application from Ana.Rivera@example.com is already waiting for review. "
        "We will write to you soon; there is no need to apply again."
    ]
    assert "already waiting for review" in response.content.decode()
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 1


def test_apply_duplicate_current_membership(client, hot_desk):
    MembershipFactory(member__email="ana.rivera@example.com", plan=hot_desk)
    data = application_data(hot_desk, email="ANA.RIVERA@example.com")

    response = client.post(APPLY_URL, data)

    assert response.status_code == 200
    assert "already has a current membership" in field_errors(response, "email")[0]
    assert "already has a current membership" in response.content.decode()
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 0


def test_apply_member_after_approval(client, hot_desk):
    staff = StaffUserFactory()
    application = ApplicationFactory(email="ana.rivera@example.com", plan=hot_desk)
    services.approve_application(application=application, actor=staff)

    response = client.post(APPLY_URL, application_data(hot_desk))

    assert response.status_code == 200
    assert "already has a current membership" in field_errors(response, "email")[0]
    assert MembershipApplication.objects.count() == 1


def test_apply_after_rejection_accepted(client, hot_desk):
    staff = StaffUserFactory()
    earlier = ApplicationFactory(email="ana.rivera@example.com", plan=hot_desk)
    services.reject_application(application=earlier, actor=staff, reason="No desks left")

    response = client.post(APPLY_URL, application_data(hot_desk))

    assert response.status_code == 302
    assert MembershipApplication.objects.count() == 2
    assert MembershipApplication.objects.filter(status="submitted").count() == 1


def test_apply_after_ended_membership_accepted(client, hot_desk):
    MembershipFactory(member__email="ana.rivera@example.com", plan=hot_desk, state="ended")

    response = client.post(APPLY_URL, application_data(hot_desk))

    assert response.status_code == 302
    assert MembershipApplication.objects.count() == 1


# --- Honeypot -----------------------------------------------------------------------


def test_apply_honeypot_drops_submission(client, hot_desk):
    data = application_data(hot_desk, website="https://cheap-pills.example")

    response = client.post(APPLY_URL, data)

    assert response.status_code == 302
    assert response["Location"] == THANKS_URL
    assert MembershipApplication.objects.count() == 0


def test_apply_honeypot_not_counted(client, hot_desk, settings):
    settings.CPR_APPLY_RATE_LIMIT = 1
    client.post(APPLY_URL, application_data(hot_desk, website="spam"))

    response = client.post(APPLY_URL, application_data(hot_desk))

    assert response.status_code == 302
    assert MembershipApplication.objects.count() == 1


def test_apply_honeypot_flood_logged_once(client, hot_desk, caplog):
    caplog.set_level("WARNING")

    for _attempt in range(5):
        client.post(APPLY_URL, application_data(hot_desk, website="spam"))

    honeypot_lines = [r for r in caplog.records if "honeypot filled in" in r.getMessage()]
    limit_lines = [r for r in caplog.records if "Rate limit" in r.getMessage()]
    assert len(honeypot_lines) == 1
    assert len(limit_lines) == 1
    assert MembershipApplication.objects.count() == 0


# --- Rate limit ---------------------------------------------------------------------


def post_from(client, plan, number: int, **extra):
    data = application_data(plan, email=f"person{number}@example.com")
    return client.post(APPLY_URL, data, **extra)


def test_rate_limit_sixth_submission(client, hot_desk, settings):
    settings.CPR_APPLY_RATE_LIMIT = 5
    for number in range(5):
        accepted = post_from(client, hot_desk, number, REMOTE_ADDR="203.0.113.7")
        assert accepted.status_code == 302, f"submission {number + 1} was not accepted"
    data = application_data(hot_desk, email="person5@example.com", first_name="Iñaki")

    response = client.post(APPLY_URL, data, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
    content = response.content.decode()
    assert "We have received several applications from your network" in content
    assert settings.CPR_CONTACT_EMAIL in content
    assert_typed_values_kept(response, data)
    assert MembershipApplication.objects.count() == 5


def test_rate_limit_other_address_passes(client, hot_desk):
    for number in range(6):
        post_from(client, hot_desk, number, REMOTE_ADDR="203.0.113.7")

    response = post_from(client, hot_desk, 6, REMOTE_ADDR="203.0.113.8")

    assert response.status_code == 302
    assert MembershipApplication.objects.filter(ip_address="203.0.113.8").count() == 1


def test_rate_limit_ignores_invalid_submissions(client, hot_desk):
    for _ in range(10):
        invalid = client.post(APPLY_URL, application_data(hot_desk, email="nope"))
        assert invalid.status_code == 200

    statuses = [post_from(client, hot_desk, number).status_code for number in range(5)]

    assert statuses == [302] * 5
    assert MembershipApplication.objects.count() == 5


def test_rate_limit_configurable(client, hot_desk, settings):
    settings.CPR_APPLY_RATE_LIMIT = 2

    statuses = [post_from(client, hot_desk, number).status_code for number in range(3)]

    assert statuses == [302, 302, 429]
    assert MembershipApplication.objects.count() == 2


def test_rate_limit_uses_proxy_header(client, hot_desk, settings):
    settings.CPR_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    proxy = {"REMOTE_ADDR": "192.0.2.10"}
    for number in range(5):
        post_from(client, hot_desk, number, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy)

    blocked = post_from(client, hot_desk, 5, HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy)
    other = post_from(client, hot_desk, 6, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)

    assert blocked.status_code == 429
    assert other.status_code == 302
    assert MembershipApplication.objects.filter(ip_address="203.0.113.7").count() == 5
    assert MembershipApplication.objects.filter(ip_address="203.0.113.9").count() == 1


def test_rate_limit_header_ignored_unless_set(client, hot_desk, settings):
    settings.CPR_CLIENT_IP_HEADER = ""
    for number in range(5):
        post_from(client, hot_desk, number, HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")

    response = post_from(client, hot_desk, 5, HTTP_X_FORWARDED_FOR="203.0.113.99")

    assert response.status_code == 429
    assert MembershipApplication.objects.filter(ip_address="127.0.0.1").count() == 5


def test_client_ip_takes_proxy_entry(rf, settings):
    """The proxy appends the address it saw; earlier entries come from the client."""
    settings.CPR_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7", REMOTE_ADDR="192.0.2.10")

    assert client_ip(request) == "203.0.113.7"


@pytest.mark.parametrize("header_value", ["", "unknown", "203.0.113.7, not-an-ip"])
def test_client_ip_bad_header_falls_back(rf, settings, header_value):
    settings.CPR_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    request = rf.get("/", HTTP_X_FORWARDED_FOR=header_value, REMOTE_ADDR="192.0.2.10")

    assert client_ip(request) == "192.0.2.10"


def test_apply_bad_proxy_header_stores_remote_addr(client, hot_desk, settings):
    settings.CPR_CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"

    response = post_from(client, hot_desk, 1, HTTP_X_FORWARDED_FOR="unknown", REMOTE_ADDR="::1")

    assert response.status_code == 302
    assert MembershipApplication.objects.get().ip_address == "::1"


@pytest.fixture
def fake_clock(monkeypatch):
    """Drive the local-memory cache's expiry with a clock the test moves by hand."""
    clock = types.SimpleNamespace(now=1_000_000.0)
    fake_time = types.SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(locmem, "time", fake_time)
    monkeypatch.setattr(cache_base, "time", fake_time)
    return clock


def test_rate_limit_window_expires(fake_clock):
    def hit():
        return hit_rate_limit(scope="test", key="203.0.113.7", limit=2, window_seconds=3600)

    assert hit() is False
    fake_clock.now += 3000
    assert hit() is False
    fake_clock.now += 500
    assert hit() is True
    fake_clock.now += 101
    assert hit() is False


def test_rate_limit_keys_separate(fake_clock):
    first = hit_rate_limit(scope="test", key="203.0.113.7", limit=1, window_seconds=60)
    same = hit_rate_limit(scope="test", key="203.0.113.7", limit=1, window_seconds=60)
    other_key = hit_rate_limit(scope="test", key="203.0.113.8", limit=1, window_seconds=60)
    other_scope = hit_rate_limit(scope="other", key="203.0.113.7", limit=1, window_seconds=60)

    assert first is False
    assert same is True
    assert other_key is False
    assert other_scope is False


def test_rate_limit_window_reopens_for_form(client, hot_desk, settings, fake_clock):
    settings.CPR_APPLY_RATE_LIMIT = 1
    post_from(client, hot_desk, 1)
    assert post_from(client, hot_desk, 2).status_code == 429

    fake_clock.now += settings.CPR_APPLY_RATE_WINDOW_SECONDS + 1
    response = post_from(client, hot_desk, 3)

    assert response.status_code == 302
    assert MembershipApplication.objects.count() == 2


# --- Query counts -------------------------------------------------------------------


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", [HOME_URL, APPLY_URL, f"{APPLY_URL}?plan=hot-desk"])
def test_public_pages_constant_queries(client, hot_desk, url):
    one_plan = count_queries(client, url)
    plans = PlanFactory.create_batch(19)

    twenty_plans = count_queries(client, url)

    assert one_plan == twenty_plans
    content = client.get(url).content.decode()
    missing = [plan.name for plan in plans if plan.name not in content]
    assert missing == [], "plans missing from the page"


# --- HTML ---------------------------------------------------------------------------


def apply_form_html(response) -> str:
    """Return the application form's HTML alone, without the layout's language switch."""
    content = response.content.decode()
    start = content.index(f'<form method="post" action="{APPLY_URL}"')
    return content[start : content.index("</form>", start) + len("</form>")]


def test_apply_every_input_labelled(client, hot_desk):
    page = FormHTML(apply_form_html(client.get(APPLY_URL)))

    visible = [control for control in page.controls if control.get("type") != "hidden"]
    assert len(visible) == 10
    for control in visible:
        assert control.get("id") in page.label_targets, f"{control.get('name')} has no label"


def test_apply_honeypot_hidden(client, hot_desk):
    page = FormHTML(client.get(APPLY_URL).content.decode())

    assert page.aria_hidden_controls == {"website"}
    assert page.control("website")["tabindex"] == "-1"
    assert page.control("website")["autocomplete"] == "off"


def test_apply_errors_marked_invalid(client, hot_desk):
    data = application_data(hot_desk, first_name="", email="nope")

    page = FormHTML(client.post(APPLY_URL, data).content.decode())

    assert page.control("first_name").get("aria-invalid") == "true"
    assert page.control("email").get("aria-invalid") == "true"
    assert page.control("email").get("aria-describedby") == "id_email_error"
    assert page.control("company").get("aria-invalid") is None


def test_apply_fields_in_visual_order(client, hot_desk):
    page = FormHTML(apply_form_html(client.get(APPLY_URL)))

    names = [control.get("name") for control in page.controls if control.get("type") != "hidden"]
    assert names == [
        "first_name",
        "last_name",
        "email",
        "phone",
        "company",
        "plan",
        "desired_start_date",
        "referral_source",
        "message",
        "website",
    ]


@pytest.mark.parametrize("value", ["%00", "hot-desk%00", "hot desk", "../admin"])
def test_apply_plan_query_malformed(client, hot_desk, value):
    response = client.get(f"{APPLY_URL}?plan={value}")

    assert response.status_code == 200
    assert "selected>Hot Desk" not in response.content.decode()


def test_rate_limit_counts_only_accepted(client, hot_desk, settings):
    settings.CPR_APPLY_RATE_LIMIT = 2
    client.post(APPLY_URL, application_data(hot_desk, email="first@example.com"))
    duplicate = client.post(APPLY_URL, application_data(hot_desk, email="FIRST@example.com"))

    second = client.post(APPLY_URL, application_data(hot_desk, email="second@example.com"))
    third = client.post(APPLY_URL, application_data(hot_desk, email="third@example.com"))

    assert duplicate.status_code == 200
    assert second.status_code == 302
    assert third.status_code == 429
    assert "Your form was not sent." in third.content.decode()
    assert MembershipApplication.objects.count() == 2


def test_rate_limit_groups_ipv6_network(client, hot_desk, settings):
    settings.CPR_APPLY_RATE_LIMIT = 1
    client.post(
        APPLY_URL, application_data(hot_desk, email="a@example.com"), REMOTE_ADDR="2001:db8::1"
    )

    same_network = client.post(
        APPLY_URL, application_data(hot_desk, email="b@example.com"), REMOTE_ADDR="2001:db8::2"
    )
    other_network = client.post(
        APPLY_URL, application_data(hot_desk, email="c@example.com"), REMOTE_ADDR="2001:db8:1::1"
    )

    assert same_network.status_code == 429
    assert other_network.status_code == 302


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "José \u202eevil"),
        ("last_name", "Nu\u200bñez"),
        ("company", "Acme\u2066 Labs"),
        ("email", "ana\u200d@example.com"),
    ],
)
def test_apply_invisible_characters_rejected(client, hot_desk, field, value):
    response = client.post(APPLY_URL, application_data(hot_desk, **{field: value}))

    assert response.status_code == 200
    assert "invisible character" in response.content.decode()
    assert MembershipApplication.objects.count() == 0


def test_apply_duplicate_non_ascii_domain_case(client, hot_desk):
    client.post(APPLY_URL, application_data(hot_desk, email="ana@éxample.com"))

    response = client.post(APPLY_URL, application_data(hot_desk, email="ana@ÉXAMPLE.com"))

    assert response.status_code == 200
    assert MembershipApplication.objects.count() == 1
    assert MembershipApplication.objects.get().email == "ana@éxample.com"
