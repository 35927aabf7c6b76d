"""Compile and check the translation catalogues under locale/.

    python -m cpr_portal.catalogue compile   # .po -> .mo, only where the .mo is stale
    python -m cpr_portal.catalogue check     # untranslated or fuzzy messages fail
    python -m cpr_portal.catalogue drift     # fails when makemessages would change msgids
    python -m cpr_portal.catalogue update    # makemessages with the project's options

Compiling uses polib, so `make run`, `make test` and the Docker build need no GNU
gettext. Updating and the drift check run Django's makemessages, which needs xgettext.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polib

BASE_DIR = Path(__file__).resolve().parent.parent
LOCALE_DIR = BASE_DIR / "locale"
# The options of every makemessages run. Locations name the file only, so moving a line
# changes nothing in the catalogue; obsolete messages are dropped, not kept as "#~".
MAKEMESSAGES_OPTIONS = {
    "locale": ["es"],
    "domain": "django",
    "add_location": "file",
    "no_obsolete": True,
    "ignore_patterns": ["tests/*", "staticfiles/*", "backups/*", "media/*", "locale/*"],
}


def catalogue_paths() -> list[Path]:
    """Return every .po file under locale/."""
    return sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))


def compile_catalogues(*, force: bool = False) -> list[Path]:
    """Write the .mo beside each .po that is newer than it (or all with `force`).

    Each .mo is written to a temporary file and renamed, so parallel test workers that
    compile at the same time never read half a file. Returns the .mo files written.
    """
    written = []
    for po_path in catalogue_paths():
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        handle, temporary = tempfile.mkstemp(dir=po_path.parent, suffix=".mo.tmp")
        os.close(handle)
        try:
            polib.pofile(str(po_path)).save_as_mofile(temporary)
            os.replace(temporary, mo_path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        written.append(mo_path)
    return written


def message_key(entry: polib.POEntry) -> tuple[str, str, str]:
    """Return what identifies a message: its context, msgid and plural msgid."""
    return (entry.msgctxt or "", entry.msgid, entry.msgid_plural or "")


def live_entries(catalogue: polib.POFile) -> list[polib.POEntry]:
    """Return the entries of `catalogue` except the header and obsolete ones."""
    return [entry for entry in catalogue if not entry.obsolete and entry.msgid]


def untranslated_or_fuzzy(po_path: Path) -> list[str]:
    """Return a line for each message of `po_path` that has no translation or is fuzzy."""
    problems = []
    for entry in live_entries(polib.pofile(str(po_path))):
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry.msgid!r}")
        elif not entry.translated():
            problems.append(f"untranslated: {entry.msgid!r}")
    return problems


def check_catalogues() -> list[str]:
    """Return every problem of the committed catalogues (none found: an empty list)."""
    paths = catalogue_paths()
    if not paths:
        return [f"no catalogue found under {LOCALE_DIR}; run `make messages`"]
    problems = []
    for po_path in paths:
        problems += [
            f"{po_path.relative_to(BASE_DIR)}: {line}" for line in untranslated_or_fuzzy(po_path)
        ]
    return problems


# Left out of the copy that the drift check runs makemessages in.
COPY_IGNORE = shutil.ignore_patterns(
    ".*", "__pycache__", "*.mo", "staticfiles", "media", "backups", "node_modules", "*.sqlite3"
)


def catalogue_drift() -> list[str]:
    """Return the msgids that makemessages would add to or drop from the catalogues.

    makemessages runs on a copy of the project, so the committed files stay untouched.
    Only the messages count: locations, the header (POT-Creation-Date) and the order of
    entries are ignored. Needs xgettext (GNU gettext).
    """
    if shutil.which("xgettext") is None:
        return ["xgettext is missing: install GNU gettext (apt-get install gettext)"]
    problems = []
    with tempfile.TemporaryDirectory(prefix="cpr-makemessages-") as temporary:
        copy = Path(temporary) / "project"
        shutil.copytree(BASE_DIR, copy, ignore=COPY_IGNORE)
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "cpr_portal.settings"}
        environment.pop("DJANGO_DEBUG", None)
        result = subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "cpr_portal.catalogue", "update"],
            cwd=copy,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return [f"makemessages failed ({result.returncode}): {result.stderr.strip()}"]
        for po_path in catalogue_paths():
            relative = po_path.relative_to(BASE_DIR)
            committed = {message_key(e) for e in live_entries(polib.pofile(str(po_path)))}
            fresh = {message_key(e) for e in live_entries(polib.pofile(str(copy / relative)))}
            problems += [f"{relative}: missing {key[1]!r}" for key in sorted(fresh - committed)]
            problems += [f"{relative}: stale {key[1]!r}" for key in sorted(committed - fresh)]
    return problems


def update_catalogues() -> None:
    """Run makemessages with MAKEMESSAGES_OPTIONS, from the project folder."""
    import django
    from django.core.management import call_command

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpr_portal.settings")
    django.setup()
    os.chdir(BASE_DIR)
    call_command("makemessages", verbosity=1, **MAKEMESSAGES_OPTIONS)


def report(problems: list[str], *, passed: str, next_step: str) -> int:
    """Print `problems` and `next_step` to stderr and return 1, or print `passed` and return 0."""
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(next_step, file=sys.stderr)
        return 1
    print(passed)
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "compile":
        for mo_path in compile_catalogues(force="--force" in argv):
            print(f"compiled {mo_path.relative_to(BASE_DIR)}")
        return 0
    if command == "check":
        return report(
            check_catalogues(),
            passed="Every message of the catalogue is translated.",
            next_step="Translate the messages above and remove their fuzzy flags.",
        )
    if command == "drift":
        return report(
            catalogue_drift(),
            passed="makemessages would not change the catalogue.",
            next_step="Run `make messages`, translate the new messages and commit.",
        )
    if command == "update":
        update_catalogues()
        return 0
    print(
        "usage: python -m cpr_portal.catalogue compile [--force] | check | drift | update",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
