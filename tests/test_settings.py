"""Settings read from the environment, checked in a fresh Python process per case.

Each case starts `cpr_portal.settings` in a subprocess whose environment contains only PATH
and the variables the case sets. The subprocess runs in a copy of the project
with no `.env` file, because the settings read `BASE_DIR/.env` when one exists and a
developer's file would otherwise leak in.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpr_portal import gunicorn_conf

PROJECT_DIR = Path(__file__).resolve().parent.parent
REQUIRED_IN_PRODUCTION = ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL"]

# Prints the settings the defaults test checks, as JSON.
DUMP_SETTINGS = """
import json
import django
from django.conf import settings

django.setup()
database = settings.DATABASES["default"]
print(json.dumps({
    "BASE_DIR": str(settings.BASE_DIR),
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "DATABASE_ENGINE": database["ENGINE"],
    "DATABASE_NAME": str(database["NAME"]),
    "CELERY_TASK_ALWAYS_EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "EMAIL_BACKEND": settings.MAILERS["default"]["BACKEND"],
    "TIME_ZONE": settings.TIME_ZONE,
    "USE_TZ": settings.USE_TZ,
    "LANGUAGE_CODE": settings.LANGUAGE_CODE,
    "LANGUAGES": [code for code, _name in settings.LANGUAGES],
}))
"""


def _is_local_state(path: Path) -> bool:
    """Tell whether `path` is a developer's local file that must not reach the copy."""
    name = path.name
    return (
        name.startswith(".")
        or name in {"cpr_portal", "staticfiles", "media", "__pycache__"}
        or name.endswith(".egg-info")
        or "sqlite3" in name
    )


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    """Return a project directory without `.env`, local databases or other local state.

    The settings package is copied because BASE_DIR comes from its resolved file path.
    Everything else is symlinked.
    """
    target = tmp_path_factory.mktemp("project")
    shutil.copytree(
        PROJECT_DIR / "cpr_portal",
        target / "cpr_portal",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for entry in PROJECT_DIR.iterdir():
        if not _is_local_state(entry):
            (target / entry.name).symlink_to(entry)
    return target


@pytest.fixture
def production_env(tmp_path):
    """Return the variables a production start needs, with a SQLite file in tmp_path."""
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "portal.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        "EMAIL_URL": "smtp://127.0.0.1:25",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
        "PAYMENT_GATEWAY": "billing.gateways.stripe.StripeGateway",
        "STRIPE_SECRET_KEY": "sk_test_placeholder",
        "STRIPE_WEBHOOK_SECRET": "whsec_placeholder",
    }


def run_django(project_dir: Path, args: list[str], variables: dict[str, str]):
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DJANGO_SETTINGS_MODULE": "cpr_portal.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        **variables,
    }
    return subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [sys.executable, *args],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("missing", REQUIRED_IN_PRODUCTION)
def test_production_missing_variable(project_copy, production_env, missing):
    del production_env[missing]

    result = run_django(project_copy, ["-c", "import django; django.setup()"], production_env)

    # The traceback quotes settings.py source lines, so only the exception line counts.
    error = last_line(result.stderr)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in error
    assert missing in error


@pytest.mark.parametrize("empty", REQUIRED_IN_PRODUCTION)
def test_production_empty_variable(project_copy, production_env, empty):
    production_env[empty] = "  "

    result = run_django(project_copy, ["-c", "import django; django.setup()"], production_env)

    error = last_line(result.stderr)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in error
    assert empty in error


def test_production_starts_when_complete(project_copy, production_env):
    result = run_django(project_copy, ["-c", "import django; django.setup()"], production_env)

    assert result.returncode == 0, result.stderr


def test_smtp_timeout_below_gunicorn_timeout(project_copy, production_env):
    script = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.MAILERS['default']['OPTIONS']['timeout'])"
    )

    result = run_django(project_copy, ["-c", script], production_env)

    assert result.returncode == 0, result.stderr
    assert int(last_line(result.stdout)) <= gunicorn_conf.timeout // 2


def test_production_passes_deploy_check(project_copy, production_env):
    result = run_django(
        project_copy,
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_reports_weakened_setting(project_copy, production_env):
    # Shows that the check above runs the deployment checks: one weaker setting fails it.
    production_env["DJANGO_SECURE_SSL_REDIRECT"] = "false"

    result = run_django(
        project_copy,
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env,
    )

    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_deploy_check_reports_console_email(project_copy, production_env):
    del production_env["EMAIL_URL"]

    result = run_django(
        project_copy,
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env,
    )

    assert result.returncode != 0
    assert "mail.E001" in result.stdout + result.stderr


def test_deploy_check_reports_local_cache(project_copy, production_env):
    del production_env["CACHE_URL"]

    result = run_django(
        project_copy,
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env,
    )

    assert result.returncode != 0
    assert "members.W001" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_ALLOWED_HOSTS", " , "),
        ("DATABASE_URL", "nonsense"),
        ("CPR_APPLY_RATE_LIMIT", "abc"),
        ("CPR_APPLY_RATE_LIMIT", "0"),
        ("CPR_APPLY_RATE_WINDOW_SECONDS", "-1"),
    ],
)
def test_production_invalid_variable(project_copy, production_env, name, value):
    production_env[name] = value

    result = run_django(project_copy, ["-c", "import django; django.setup()"], production_env)

    error = last_line(result.stderr)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in error
    assert name in error


def test_deploy_check_reports_fake_gateway(project_copy, production_env):
    production_env["PAYMENT_GATEWAY"] = "billing.gateways.fake.FakeGateway"

    result = run_django(
        project_copy,
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env,
    )

    assert result.returncode != 0
    assert "billing.W001" in result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_stripe_secret_missing_fails_check(project_copy, production_env, missing):
    del production_env[missing]

    result = run_django(project_copy, ["manage.py", "check"], production_env)

    assert result.returncode != 0
    assert "billing.E002" in result.stdout + result.stderr
    assert missing in result.stdout + result.stderr


@pytest.fixture(scope="module")
def default_settings(project_copy):
    result = run_django(project_copy, ["-c", DUMP_SETTINGS], {})
    assert result.returncode == 0, result.stderr
    return json.loads(last_line(result.stdout))


def test_defaults_debug(default_settings):
    assert default_settings["DEBUG"] is True
    assert default_settings["SECRET_KEY"]


def test_defaults_sqlite_in_project(default_settings):
    assert default_settings["DATABASE_ENGINE"] == "django.db.backends.sqlite3"
    assert Path(default_settings["DATABASE_NAME"]).parent == Path(default_settings["BASE_DIR"])


def test_defaults_celery_eager(default_settings):
    assert default_settings["CELERY_TASK_ALWAYS_EAGER"] is True


def test_defaults_console_email(default_settings):
    assert default_settings["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


def test_defaults_time_zone(default_settings):
    assert default_settings["TIME_ZONE"] == "America/Puerto_Rico"
    assert default_settings["USE_TZ"] is True


def test_defaults_languages(default_settings):
    assert default_settings["LANGUAGE_CODE"] == "en"
    assert default_settings["LANGUAGES"] == ["en", "es"]
