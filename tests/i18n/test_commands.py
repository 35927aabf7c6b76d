"""Staff-facing management commands answer in the operator's language."""

import re
import subprocess

import pytest
from django.core.management import CommandError, call_command

from cpr_portal.operator_language import operator_language
from tests.backup_restore.helpers import PROJECT_DIR, project_environment, run_manage

LOCALE_VARIABLES = ("CPR_COMMAND_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture
def clean_locale(monkeypatch):
    for variable in LOCALE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "en"),
        ({"LANG": "es_PR.UTF-8"}, "es"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({"LANGUAGE": "fr:es_PR", "LANG": "en_US.UTF-8"}, "es"),
        ({"LC_ALL": "es_ES.UTF-8@euro", "LANG": "en_US.UTF-8"}, "es"),
        ({"CPR_COMMAND_LANGUAGE": "en", "LANG": "es_PR.UTF-8"}, "en"),
        ({"CPR_COMMAND_LANGUAGE": "es"}, "es"),
    ],
)
def test_operator_language_from_locale(clean_locale, variables, expected):
    for variable, value in variables.items():
        clean_locale.setenv(variable, value)

    assert operator_language() == expected


def test_import_error_spanish(clean_locale):
    clean_locale.setenv("LANG", "es_PR.UTF-8")

    with pytest.raises(CommandError, match=r"^Use --csv-dir o --url, no ambos\.$"):
        call_command("import_odoo", "--csv-dir", "/nonexistent", "--url", "https://odoo.test")


def test_command_language_not_left_active(clean_locale):
    from django.utils import translation

    clean_locale.setenv("LANG", "es_PR.UTF-8")
    with translation.override("en"):
        with pytest.raises(CommandError):
            call_command("import_odoo", "--csv-dir", "/nonexistent", "--url", "https://odoo.test")
        assert translation.get_language() == "en"


def spanish_environment(tmp_path):
    environment = project_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db'}.sqlite3",
        DJANGO_MEDIA_ROOT=str(tmp_path / "media"),
        CPR_BACKUP_DIR=str(tmp_path / "backups"),
        LANG="es_PR.UTF-8",
    )
    environment.pop("CPR_COMMAND_LANGUAGE", None)
    return environment


def test_backup_summary_spanish(tmp_path):
    environment = spanish_environment(tmp_path)
    assert run_manage(["migrate", "--no-input", "-v0"], environment).returncode == 0

    result = run_manage(["backup"], environment)

    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith("Copia de seguridad escrita: "), last_line
    assert re.search(r"\d+ tablas, \d+ filas, 0 archivos de media", last_line), last_line
    # scripts/backup.sh finds the archive path with this sed expression in any language.
    sed = subprocess.run(  # noqa: S603
        ["sed", "-n", r"s/^[^:]*: \([^ ]*\.tar\.gz\) (.*/\1/p"],  # noqa: S607
        input=result.stdout,
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_DIR,
    )
    assert sed.stdout.strip().endswith(".tar.gz")
    assert list((tmp_path / "backups").glob("backup_*.tar.gz"))


def test_backup_help_spanish(tmp_path):
    result = run_manage(["backup", "--help"], spanish_environment(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "Carpeta para el archivo" in result.stdout
    assert "Folder for the archive" not in result.stdout
