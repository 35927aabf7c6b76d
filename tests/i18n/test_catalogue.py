"""The Spanish catalogue: complete, in step with the code, placeholders kept."""

import re

import polib
import pytest

from cpr_portal.catalogue import (
    catalogue_drift,
    catalogue_paths,
    check_catalogues,
    compile_catalogues,
    live_entries,
)

from .english import english_fragments

PYTHON_PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdfrxX]")


def entries():
    return [
        entry for po_path in catalogue_paths() for entry in live_entries(polib.pofile(str(po_path)))
    ]


def test_catalogue_exists_for_spanish():
    assert [path.parts[-3] for path in catalogue_paths()] == ["es"]


def test_catalogue_fully_translated():
    assert check_catalogues() == []


def test_makemessages_leaves_catalogue_unchanged():
    assert catalogue_drift() == []


@pytest.mark.parametrize("entry", entries(), ids=lambda entry: entry.msgid[:40])
def test_translation_keeps_placeholders(entry):
    if entry.msgid_plural:
        # The singular may leave the count out ("Showing your most recent booking.").
        allowed = set(PYTHON_PLACEHOLDER.findall(entry.msgid + entry.msgid_plural))
        for translation in entry.msgstr_plural.values():
            assert set(PYTHON_PLACEHOLDER.findall(translation)) <= allowed, translation
        return
    expected = sorted(PYTHON_PLACEHOLDER.findall(entry.msgid))
    assert sorted(PYTHON_PLACEHOLDER.findall(entry.msgstr)) == expected, entry.msgstr
    assert entry.msgstr.endswith("\n") == entry.msgid.endswith("\n"), entry.msgstr


def test_catalogue_compiles(tmp_path):
    # The session compiled it already; a second run writes nothing new.
    assert compile_catalogues() == []
    for po_path in catalogue_paths():
        assert po_path.with_suffix(".mo").stat().st_size > 0


def test_english_fragments_of_catalogue():
    fragments = english_fragments()

    assert "Skip to main content" in fragments
    # Fragments are cut at placeholders and tags, and short ones are left out.
    assert not any("%(" in fragment or "<" in fragment for fragment in fragments)
    assert "Plans" not in fragments
