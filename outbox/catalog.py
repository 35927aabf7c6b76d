"""The emails the portal sends, and how a row's stored context becomes subject and bodies.

Each email has three templates in `templates/email/<name>/`: `subject.txt`,
`message.txt` and `message.html`. The context is stored as JSON, so dates and amounts
come back as strings. `EmailTemplate.dates`, `.datetimes` and `.money` name the keys
that rendering turns back into `datetime.date`, aware `datetime.datetime` and `Decimal`,
for the `date`, `time` and `usd` filters. Aware datetimes render in settings.TIME_ZONE.
"""

import datetime
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.template import Context
from django.template.loader import get_template
from django.urls import reverse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class EmailTemplate:
    """One kind of email: its name, its label for staff, and the context it needs."""

    name: str
    label: Promise
    required: tuple[str, ...]
    dates: tuple[str, ...] = ()
    money: tuple[str, ...] = ()
    datetimes: tuple[str, ...] = ()

    def paths(self) -> tuple[str, str, str]:
        """Return the template paths of the subject, the plain-text and the HTML body."""
        base = f"email/{self.name}"
        return f"{base}/subject.txt", f"{base}/message.txt", f"{base}/message.html"

    def decode(self, context: dict) -> dict:
        """Return `context` with its date and money strings turned back into values."""
        values = dict(context)
        for key in self.dates:
            if isinstance(values.get(key), str):
                values[key] = datetime.date.fromisoformat(values[key][:10])
        for key in self.datetimes:
            if isinstance(values.get(key), str):
                values[key] = datetime.datetime.fromisoformat(values[key])
        for key in self.money:
            if values.get(key) is not None:
                values[key] = Decimal(str(values[key]))
        return values


TEMPLATES = {
    spec.name: spec
    for spec in (
        EmailTemplate(
            "application_received",
            _("Application received"),
            required=("first_name", "plan_name"),
            dates=("desired_start_date",),
        ),
        EmailTemplate(
            "application_staff_notice",
            _("New application (staff notice)"),
            required=("application_id", "full_name", "email", "plan_name"),
            dates=("desired_start_date",),
        ),
        EmailTemplate(
            "application_approved",
            _("Application approved"),
            required=("first_name", "plan_name", "start_date", "monthly_price", "commitment_end"),
            dates=("start_date", "commitment_end"),
            money=("monthly_price",),
        ),
        EmailTemplate(
            "application_rejected",
            _("Application rejected"),
            required=("first_name", "plan_name"),
        ),
        EmailTemplate(
            "payment_received",
            _("Payment received"),
            required=("first_name", "payment_id", "amount", "method", "received_on"),
            dates=("received_on", "period_start", "period_last_day"),
            money=("amount",),
        ),
        EmailTemplate(
            "payment_failed",
            _("Payment failed"),
            required=("first_name", "plan_name", "amount", "grace_until"),
            dates=("grace_until", "period_start", "period_last_day"),
            money=("amount",),
        ),
        EmailTemplate(
            "membership_suspended",
            _("Membership suspended"),
            required=("first_name", "plan_name"),
        ),
        EmailTemplate(
            "membership_reinstated",
            _("Membership reinstated"),
            required=("first_name", "plan_name"),
        ),
        EmailTemplate(
            "key_issued",
            _("Access key issued"),
            required=("first_name", "key_kind", "key_last_digits"),
        ),
        EmailTemplate(
            "key_suspended",
            _("Access key suspended"),
            required=("first_name", "key_kind", "key_last_digits"),
        ),
        EmailTemplate(
            "cancellation_confirmed",
            _("Cancellation confirmed"),
            required=("first_name", "plan_name", "end_date", "scheduled"),
            dates=("end_date",),
        ),
        EmailTemplate(
            "booking_confirmed",
            _("Room booking confirmed"),
            required=("first_name", "room_name", "start", "end", "price"),
            datetimes=("start", "end"),
            money=("price", "credit_used", "overage"),
        ),
        EmailTemplate(
            "booking_cancelled",
            _("Room booking cancelled"),
            required=("first_name", "room_name", "start", "end", "charge_kept"),
            datetimes=("start", "end"),
            money=("credit_used", "overage"),
        ),
        EmailTemplate(
            "commitment_ending",
            _("Commitment ending in 30 days"),
            required=("first_name", "plan_name", "commitment_end", "outcome"),
            dates=("commitment_end",),
        ),
    )
}

# Emails that arrive rendered, from django-allauth (sign-in codes, address confirmations,
# password resets and its notices). Their rows store the subject and bodies instead of a
# context, and the bodies are deleted once the row is sent, failed or expired, because
# they can contain a sign-in code or a confirmation link.
ACCOUNT_TEMPLATE = "account"

TEMPLATE_CHOICES = [
    *((spec.name, spec.label) for spec in TEMPLATES.values()),
    (ACCOUNT_TEMPLATE, _("Sign-in or account email")),
]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def site_context() -> dict:
    """Return the values every email template may use: the site's links and contact address."""
    site_url = settings.CPR_SITE_URL
    return {
        "site_name": "Code Puerto Rico",
        "site_url": site_url,
        "portal_url": site_url + reverse("members:portal_dashboard"),
        "login_url": site_url + reverse("account_login"),
        "contact_email": settings.CPR_CONTACT_EMAIL,
    }


def render_email(*, template: str, context: dict, language: str) -> RenderedEmail:
    """Render the subject and both bodies of an email in `language`.

    Raises KeyError for a template name that is not in TEMPLATES, and the template
    engine's errors for a missing or broken template file.
    """
    spec = TEMPLATES[template]
    values = {**spec.decode(context), **site_context()}
    subject_path, text_path, html_path = spec.paths()
    with translation.override(language):
        subject = _render_plain(subject_path, values)
        text = _render_plain(text_path, values)
        html = get_template(html_path).render(values)
    return RenderedEmail(subject=" ".join(subject.split()), text=_tidy(text), html=html)


def _render_plain(path: str, values: dict) -> str:
    """Render a plain-text template without HTML escaping, so "&" stays "&"."""
    template = get_template(path).template
    return template.render(Context(values, autoescape=False))


def _tidy(text: str) -> str:
    """Drop trailing spaces and the blank lines that template tags leave behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
