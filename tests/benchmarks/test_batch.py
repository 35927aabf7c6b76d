"""bench/batch.py end to end at a small size: every step runs and finds work; no timings."""

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
STEPS = {
    "seed_scale", "credit_grants", "activate_due_memberships", "grace_period_suspensions",
    "term_ends", "scheduled_cancellations", "credit_expiry", "access_reconcile",
    "outbox_sweep", "outbox_send", "commitment_reminders", "backup", "restore", "odoo_import",
}  # fmt: skip
# Steps that find work at a few hundred members: the seed leaves it for them on purpose.
STEPS_WITH_WORK = (
    "credit_grants", "grace_period_suspensions", "credit_expiry", "access_reconcile",
    "outbox_sweep", "outbox_send", "odoo_import",
)  # fmt: skip


def bench_database_url() -> str:
    settings = connection.settings_dict
    user = quote(settings["USER"] or "postgres")
    password = f":{quote(settings['PASSWORD'])}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    port = settings["PORT"] or "5432"
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}_bench"


def test_batch_small_run(tmp_path):
    out = tmp_path / "batch.json"

    run = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(ROOT / "bench" / "batch.py"),
            "--members",
            "300",
            "--json",
            str(out),
            "--database-url",
            bench_database_url(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["members"] == 300
    assert result["machine"]["cores"] >= 1
    assert set(result["batch"]) == STEPS
    for name in STEPS_WITH_WORK:
        assert result["batch"][name]["items"] > 0, name
    assert result["batch"]["outbox_send"]["items"] == result["batch"]["outbox_sweep"]["items"]
    assert result["batch"]["odoo_import"]["exit_status"] == 2
    grace = result["batch"]["grace_period_suspensions"]
    # One transaction of about 21 queries per suspension, plus the query that finds them.
    assert grace["queries"] <= 25 * grace["items"] + 5
    for name, entry in result["batch"].items():
        assert entry["seconds"] >= 0, name
