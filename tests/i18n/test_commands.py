"""Staff-facing management commands print their output in the operator's language."""

import datetime
import logging
import re
import subprocess

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation
from django.utils.translation import gettext_noop

from cpr_portal.operator_language import operator_language
from tests.backup_restore.helpers import PROJECT_DIR, project_environment, run_manage, run_python

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


def test_message_english_and_translated():
    from cpr_portal.messages import Message

    database = Message(gettext_noop("SQLite database %(name)s"), name="/srv/db.sqlite3")
    message = Message(gettext_noop("Dumping the %(database)s"), database=database)

    with translation.override("es"):
        assert str(message) == "Dumping the SQLite database /srv/db.sqlite3"
        assert message.translated() == "Volcando la base de datos SQLite /srv/db.sqlite3"


def test_message_logged_in_english(caplog):
    from cpr_portal.messages import Message

    logger = logging.getLogger("backup_restore.services")
    with caplog.at_level(logging.INFO, logger=logger.name), translation.override("es"):
        logger.info(Message(gettext_noop("Writing the archive in %(folder)s"), folder="/b"))

    assert caplog.messages == ["Writing the archive in /b"]


def test_backup_error_english_and_spanish(tmp_path):
    from backup_restore.archive import extract_archive
    from backup_restore.errors import BackupError

    missing = tmp_path / "backup_20260101_020000.tar.gz"
    with pytest.raises(BackupError) as raised:
        extract_archive(missing, tmp_path)

    # Translated where it is shown, in the language active there; str() stays English.
    with translation.override("es"):
        shown = raised.value.translated()
        logged = str(raised.value)
    assert logged == f"Backup archive {missing} not found: give the path of a .tar.gz file."
    assert shown == (
        f"No se encontró el archivo de copia de seguridad {missing}: indique la ruta de un "
        "archivo .tar.gz."
    )


def test_restore_error_spanish(clean_locale, tmp_path):
    clean_locale.setenv("LANG", "es_PR.UTF-8")
    missing = tmp_path / "backup_20260101_020000.tar.gz"

    with pytest.raises(CommandError) as raised:
        call_command("restore", str(missing))

    assert str(raised.value) == (
        f"Restauración falló: No se encontró el archivo de copia de seguridad {missing}: "
        "indique la ruta de un archivo .tar.gz."
    )


def test_backup_progress_spanish(tmp_path):
    environment = spanish_environment(tmp_path)
    assert run_manage(["migrate", "--no-input", "-v0"], environment).returncode == 0

    result = run_manage(["backup"], environment)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"Volcando la base de datos SQLite {tmp_path / 'db'}.sqlite3", lines
    assert lines[1] == f"Copiando los archivos de media de {tmp_path / 'media'}", lines
    assert lines[2] == f"Escribiendo el archivo en {tmp_path / 'backups'}", lines
    assert not [line for line in lines if ENGLISH_PROGRESS.match(line)], lines


def test_restore_progress_and_refusal_spanish(tmp_path):
    environment = spanish_environment(tmp_path)
    assert run_manage(["migrate", "--no-input", "-v0"], environment).returncode == 0
    assert run_manage(["backup", "-v0"], environment).returncode == 0
    archive = next((tmp_path / "backups").glob("backup_*.tar.gz"))
    added = run_python(["-c", ADD_ROOM], environment)
    assert added.returncode == 0, added.stderr

    refused = run_manage(["restore", str(archive)], environment)

    assert refused.returncode == 1
    assert "ya contiene datos (bookings_room: 1 filas)" in refused.stderr, refused.stderr
    assert "already contains data" not in refused.stderr

    forced = run_manage(["restore", str(archive), "--force"], environment)

    assert forced.returncode == 0, forced.stderr
    lines = forced.stdout.strip().splitlines()
    assert lines[0] == f"Verificando {archive} y cada suma de verificación", lines
    assert any(
        re.fullmatch(
            r"Copia de seguridad preventiva escrita: .*/pre_restore_\d{8}_\d{6}\.tar\.gz", line
        )
        for line in lines
    ), lines
    assert not [line for line in lines if ENGLISH_PROGRESS.match(line)], lines


# The first words of every English progress line of backup and restore.
ENGLISH_PROGRESS = re.compile(
    r"^(Checking|Dumping|Copying|Writing|Safety backup|Restoring|Deleted old|The archive is)"
)

ADD_ROOM = """
import django
django.setup()
from decimal import Decimal
from bookings.models import Room
Room.objects.create(name="Sala Morro", capacity=8, hourly_rate=Decimal("25.00"))
"""


def test_import_source_error_spanish(clean_locale, tmp_path):
    clean_locale.setenv("LANG", "es_PR.UTF-8")
    missing = tmp_path / "exports"

    with pytest.raises(CommandError) as raised:
        call_command("import_odoo", "--csv-dir", str(missing))

    assert str(raised.value) == (
        f"La carpeta de CSV {str(missing)!r} no existe; indique en --csv-dir la carpeta que "
        "contiene los archivos exportados."
    )


def test_import_warning_spanish():
    from odoo_import.sources import _complete_contacts

    partners = [{"id": "7", "name": "Ana Rivera", "company_ref": "__export__.res_partner_99_x"}]
    [warning] = _complete_contacts(partners)

    with translation.override("es"):
        assert warning.translated().startswith(
            "1 contactos identifican su compañía solo por id (parent_id/id)"
        )
        assert str(warning).startswith("1 contacts name their company by id only")


@pytest.mark.django_db
def test_import_outcomes_spanish(clean_locale, tmp_path, caplog):
    """A Spanish operator reads the outcome of each record in Spanish; the log stays English."""
    import io

    from members import services as members_services
    from tests.odoo_import.dataset import Dataset

    today = members_services.local_today()
    start = today - datetime.timedelta(days=10)
    dataset = Dataset(today=today)
    hot_desk = dataset.product("Hot Desk", 250)
    rosa = dataset.partner("Rosa Díaz", "rosa@example.com", access_key="F123")
    dataset.line(rosa, hot_desk, "paid", start, start + datetime.timedelta(days=30))
    no_email = dataset.partner("Sin Correo", False)
    dataset.line(no_email, hot_desk, "paid", start, start + datetime.timedelta(days=30))
    bad_fee = dataset.partner("Luis Vélez", "luis@example.com")
    dataset.line(bad_fee, hot_desk, "paid", start, start, price="doscientos")
    folder = dataset.write_csv(tmp_path / "exports")
    clean_locale.setenv("LANG", "es_PR.UTF-8")
    out = io.StringIO()

    with (
        caplog.at_level(logging.WARNING, logger="odoo_import"),
        pytest.raises(CommandError) as raised,
    ):
        call_command("import_odoo", "--csv-dir", str(folder), "-v", "2", stdout=out, no_color=True)

    output = out.getvalue()
    assert raised.value.returncode == 2
    assert "Se leyeron 1 producto de membresía, 3 contactos y 3 líneas de membresía." in output
    # The migrations' Hot Desk plan takes the product's name, so the import links it.
    assert re.search(
        r"el plan \d+ 'Hot Desk' tiene el nombre del producto; quedó vinculado a él", output
    ), output
    assert "miembro nuevo Rosa Díaz <rosa@example.com>" in output
    assert re.search(
        rf"Hot Desk, activa, del {start} al \d{{4}}-\d\d-\d\d, \$250\.00/mes \(", output
    ), output
    assert "llavero F123: llave activa, en espera de la próxima sincronización" in output
    assert "el contacto no tiene correo electrónico; añádale uno en Odoo" in output
    assert "su contacto 2 no se importa (vea el conflicto de ese contacto)" in output
    assert "member price: el monto 'doscientos' no es un número" in output
    # The summary's columns stay apart with the longer Spanish words.
    assert re.search(r"^ +creados +actualizados +sin cambios +omitidos +conflictos$", output, re.M)
    assert re.search(r"^llaves de acceso +1 +0 +0 +0 +0$", output, re.M), output
    for english in ("new member", "/month", "waiting for the next sync", "has no email"):
        assert english not in output, english
    assert [record.getMessage() for record in caplog.records] == [
        "Odoo import conflict on partner 2 (member): "
        "the contact has no email address; add one in Odoo",
        "Odoo import conflict on line 3 (membership): "
        "member price: the amount 'doscientos' is not a number",
    ]
