"""No text of ours reaches people without a translate tag or a gettext call."""

from pathlib import Path

from django.conf import settings

from .unwrapped import python_problems, template_problems, unwrapped_template_text

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# Our apps' Python code, without migrations. The benchmarks app is left out: its strings
# are seed data for load tests, not text that a portal user reads.
APPS = (
    "members",
    "billing",
    "bookings",
    "access",
    "outbox",
    "backup_restore",
    "odoo_import",
    "cpr_portal",
)


def python_sources() -> list[Path]:
    base = Path(settings.BASE_DIR)
    return [
        path
        for app in APPS
        for path in sorted((base / app).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_templates_wrapped():
    assert template_problems(TEMPLATES) == []


def test_python_texts_wrapped():
    assert python_problems(python_sources(), Path(settings.BASE_DIR)) == []


def test_unwrapped_paragraph_found():
    source = (
        '{% load i18n %}<h1>{% translate "Welcome" %}</h1>\n'
        "<p>Our lounge opens early on every weekday.</p>"
    )

    assert unwrapped_template_text(source, is_html=True) == [
        "Our lounge opens early on every weekday."
    ]


def test_wrapped_and_markup_ignored():
    source = (
        "{% load i18n %}{# A note #}{% comment %}Staff only{% endcomment %}\n"
        '<a class="button big" href="{% url \'members:apply\' %}">{% translate "Apply" %}</a>\n'
        "{% blocktranslate trimmed %}Hello {{ name }}, welcome.{% endblocktranslate %}\n"
        "<span>{{ amount }} · 12:00 – 13:00</span> Code Puerto Rico\n"
        "<script>var label = 'Open';</script>"
    )

    assert unwrapped_template_text(source, is_html=True) == []


def test_read_attribute_found():
    source = '<button aria-label="Close the menu">×</button><img alt="{% translate "Logo" %}">'

    assert unwrapped_template_text(source, is_html=True) == ["Close the menu"]


def test_email_text_found():
    source = '{% load i18n %}{% translate "Hello" %}\nSee you soon,\n{{ site }}'

    assert unwrapped_template_text(source, is_html=False) == ["See you soon,"]


def test_bare_message_found(tmp_path):
    module = tmp_path / "views.py"
    module.write_text(
        "from django.contrib import messages\n"
        "from django.core.exceptions import ValidationError\n"
        "from django.utils.translation import gettext as _\n"
        "def view(request):\n"
        "    messages.success(request, 'Saved your changes.')\n"
        "    messages.error(request, _('Not saved.'))\n"
        "    raise ValidationError(f'Bad value {request}')\n"
        "    messages.info(request, 'Sent to %s.' % request.user)\n"
        "    messages.info(request, _('Sent to %s.') % request.user)\n"
    )

    assert python_problems([module], tmp_path) == [
        "views.py:5: 'Saved your changes.'",
        "views.py:7: 'Bad value {…}'",
        "views.py:8: 'Sent to %s.'",
    ]
