"""The README and the CI job name files that exist, and the README's tables stay whole."""

import re
from pathlib import Path

from django.conf import settings

BASE = Path(settings.BASE_DIR)
TEST_PATH = re.compile(r"\btests/[\w/]+\.py\b")


def test_named_test_files_exist():
    for document in ("README.md", "README.es.md", ".ci/run"):
        for path in TEST_PATH.findall((BASE / document).read_text(encoding="utf-8")):
            assert (BASE / path).is_file(), f"{document} names {path}, which does not exist"


def test_readme_tables_unbroken():
    lines = (BASE / "README.md").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:-1], start=2):
        if line.strip():
            continue
        before, after = lines[number - 2], lines[number]
        # A row after the blank line that is not the header of a new table (a header is
        # followed by its "| --- |" separator row) belongs to the table above.
        next_is_separator = number + 1 < len(lines) and lines[number + 1].startswith("| --")
        split = before.startswith("|") and after.startswith("|") and not next_is_separator
        assert not split, f"README.md line {number}: a blank line splits a table"
