""".env.example: every variable the settings, gunicorn and the stack read, and no secret."""

import re

import pytest

from tests.deploy.support import PROJECT_DIR, read_env_example

# env("NAME" ...), env.bool("NAME" ...), positive_int_env("NAME" ...), required_env("NAME").
SETTINGS_VARIABLE = re.compile(
    r"\b(?:env(?:\.[a-z_]+)?|positive_int_env|required_env)\(\s*\"(?P<name>[A-Z][A-Z0-9_]*)\"",
)
GUNICORN_VARIABLE = re.compile(
    r"(?:positive_int_from_env|os\.environ\.get)\(\s*\"(?P<name>[A-Z][A-Z0-9_]*)\""
)
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY$)")
# Defaults of the Odoo import command, which reads them itself.
ODOO_VARIABLES = ["ODOO_URL", "ODOO_DB", "ODOO_USERNAME", "ODOO_PASSWORD"]


@pytest.fixture(scope="module")
def env_example():
    return read_env_example()


def variables_read(path, pattern) -> set[str]:
    return {match["name"] for match in pattern.finditer(path.read_text())}


def test_settings_variables_listed(env_example):
    read = variables_read(PROJECT_DIR / "cpr_portal" / "settings.py", SETTINGS_VARIABLE)

    # Guards the pattern: a variable from a multi-line call must be found too.
    assert "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS" in read
    assert sorted(read - set(env_example)) == []


def test_gunicorn_variables_listed(env_example):
    read = variables_read(PROJECT_DIR / "cpr_portal" / "gunicorn_conf.py", GUNICORN_VARIABLE)

    assert read == {
        "GUNICORN_WORKERS",
        "GUNICORN_THREADS",
        "GUNICORN_TIMEOUT",
        "GUNICORN_CONTROL_SOCKET",
    }
    assert read <= set(env_example)


def test_odoo_variables_listed(env_example):
    assert sorted(set(ODOO_VARIABLES) - set(env_example)) == []


def test_secrets_left_empty(env_example):
    filled = sorted(
        name
        for name, entry in env_example.items()
        if SECRET_NAME.search(name) and entry.value and not entry.commented
    )

    assert filled == []


def test_production_defaults(env_example):
    assert env_example["DJANGO_DEBUG"].value == "false"
    assert env_example["PAYMENT_GATEWAY"].value == "billing.gateways.stripe.StripeGateway"
    assert env_example["DEFAULT_FROM_EMAIL"].value == "Code Puerto Rico <info@code.pr>"


def test_every_variable_commented():
    """Each variable line follows a comment or another variable of the same group."""
    lines = (PROJECT_DIR / ".env.example").read_text().splitlines()
    uncommented = []
    for index, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        previous = lines[index - 1] if index else ""
        if not previous:
            uncommented.append(line.split("=", 1)[0])

    assert uncommented == []
