"""Find English sentences of ours in Spanish output.

The English sentences are the catalogue's msgids whose translation differs from them,
cut at placeholders and HTML tags into fragments of three or more words. A Spanish
page or email that still contains such a fragment shows text that was not translated.
"""

import functools
import html
import re

import polib

from cpr_portal.catalogue import catalogue_paths, live_entries

# %(name)s, %(size).1f, %s, %d, {{ value }}, {name}: the parts of a msgid that the output fills.
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdfrxX]|%[sdr]|\{\{.*?\}\}|\{\w*\}")
TAG = re.compile(r"<[^>]+>")
MIN_WORDS = 3
# Attributes whose text a person reads or hears (screen readers).
READ_ATTRIBUTES = re.compile(r'\s(?:aria-label|title|placeholder|alt)="([^"]*)"')


def _fragments(msgid: str) -> set[str]:
    text = html.unescape(TAG.sub("\n", msgid))
    fragments = set()
    for part in PLACEHOLDER.split(text):
        for piece in part.split("\n"):
            words = " ".join(piece.split()).strip(" :;,.·–-")
            if len(words.split()) >= MIN_WORDS:
                fragments.add(words)
    return fragments


@functools.cache
def english_fragments() -> frozenset[str]:
    """Return the English fragments of every translated message of the catalogue."""
    fragments = set()
    for po_path in catalogue_paths():
        for entry in live_entries(polib.pofile(str(po_path))):
            translations = [entry.msgstr, *entry.msgstr_plural.values()]
            for msgid in filter(None, (entry.msgid, entry.msgid_plural)):
                if msgid in translations:
                    continue  # The same in both languages, such as a product name.
                fragments |= _fragments(msgid)
    return frozenset(fragments)


def visible_text(page: str) -> str:
    """Return the text of an HTML page that a person reads: text nodes and read attributes."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    attributes = " \n".join(READ_ATTRIBUTES.findall(page))
    text = TAG.sub("\n", page) + "\n" + attributes
    return html.unescape(text)


def english_left(text: str, data: tuple[str, ...] = ()) -> list[str]:
    """Return the English fragments of ours found in `text`, which is plain text.

    `data` lists values from the database that the page shows as they are (a plan's
    description); they are removed first, since data is not translated.
    """
    for value in data:
        for line in value.splitlines():
            text = text.replace(line.strip(), " ") if line.strip() else text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    flat = "\n".join(lines) + "\n" + " ".join(text.split())
    return sorted(fragment for fragment in english_fragments() if fragment in flat)
