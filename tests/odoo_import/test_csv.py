"""The CSV source: Odoo list-view exports in both styles give what XML-RPC gives."""

import datetime
import os

import pytest

from access.models import AccessKey
from members.models import Member, Membership, Plan
from odoo_import.sources import (
    LINE_KEYS,
    PARTNER_KEYS,
    PRODUCT_KEYS,
    CsvSource,
    CustomFields,
    XmlRpcSource,
)

from .helpers import counts_of, snapshot, summary
from .test_import import build_space

pytestmark = pytest.mark.django_db

D = datetime.date


def wipe_import():
    """Delete what an import wrote, keeping the plans that existed before it."""
    AccessKey.objects.all().delete()
    Membership.objects.all().delete()
    Member.objects.all().delete()
    Plan.objects.filter(is_active=False).delete()
    Plan.objects.update(odoo_product_id=None)


@pytest.mark.parametrize("style", ["compatible", "labels"])
def test_csv_matches_xmlrpc(odoo, dataset, import_odoo, hot_desk, tmp_path, style):
    build_space(dataset)
    odoo.load(dataset)
    xmlrpc_status, xmlrpc_out, _err = import_odoo()
    expected = snapshot()
    wipe_import()
    folder = dataset.write_csv(tmp_path / style, style=style)

    status, out, err = import_odoo("--csv-dir", str(folder))

    assert (xmlrpc_status, status) == (0, 0), err
    assert snapshot() == expected
    assert summary(out) == summary(xmlrpc_out)


def test_csv_second_run_unchanged(dataset, import_odoo, hot_desk, tmp_path):
    build_space(dataset)
    folder = dataset.write_csv(tmp_path)
    import_odoo("--csv-dir", str(folder))
    before = snapshot()

    status, out, _err = import_odoo("--csv-dir", str(folder))

    assert status == 0
    assert snapshot() == before
    assert counts_of(out, "member") == (0, 0, 6, 0, 0)
    assert counts_of(out, "membership") == (0, 0, 7, 0, 0)


def test_csv_dry_run_writes_nothing(dataset, import_odoo, hot_desk, tmp_path):
    build_space(dataset)
    folder = dataset.write_csv(tmp_path)

    status, out, _err = import_odoo("--csv-dir", str(folder), "--dry-run")

    assert status == 0
    assert counts_of(out, "member") == (6, 0, 0, 0, 0)
    assert Member.objects.count() == 0
    assert Membership.objects.count() == 0


def test_csv_conflicts_name_rows(dataset, import_odoo, hot_desk, tmp_path):
    product = dataset.product("Hot Desk", 250)
    person = dataset.partner("Rosa Díaz", "rosa@example.com")
    good = dataset.line(person, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    bad_date = dataset.line(person, product, "paid", "31/02/2024", D(2025, 1, 31))
    bad_money = dataset.line(person, product, "paid", D(2024, 1, 1), D(2024, 1, 31), price="$1.2.3")
    folder = dataset.write_csv(tmp_path)
    contacts = folder / "contacts.csv"
    text = contacts.read_text(encoding="utf-8")
    contacts.write_text(
        text + "base.partner_admin,Administrator,admin@example.com,,,False,,paid,,False,,,,\n",
        encoding="utf-8",
    )

    status, out, _err = import_odoo("--csv-dir", str(folder))

    assert status == 2
    assert f"CONFLICT membership line {bad_date['id']}" in out
    assert "'31/02/2024' is not a date" in out
    assert f"CONFLICT membership line {bad_money['id']}" in out
    assert "'$1.2.3' is not a number" in out
    assert "contacts.csv row 3" in out
    assert "'base.partner_admin' contains no database id" in out
    membership = Membership.objects.get()
    assert membership.odoo_ref == f"membership.membership_line,{good['id']}"


def test_csv_missing_file_error(dataset, import_odoo, tmp_path):
    folder = dataset.write_csv(tmp_path)
    (folder / "products.csv").unlink()

    status, _out, err = import_odoo("--csv-dir", str(folder))

    assert status == 1
    assert "has no file of products; export it from Odoo and save it as products.csv" in err


def test_csv_missing_column_error(dataset, import_odoo, tmp_path):
    folder = dataset.write_csv(tmp_path)
    (folder / "contacts.csv").write_text("id,name\n1,Rosa\n", encoding="utf-8")

    status, _out, err = import_odoo("--csv-dir", str(folder))

    assert status == 1
    assert "contacts.csv lacks the columns for email" in err
    assert "it has id, name" in err


def test_csv_missing_folder_error(db, import_odoo, tmp_path):
    status, _out, err = import_odoo("--csv-dir", str(tmp_path / "nowhere"))

    assert status == 1
    assert "does not exist" in err


def test_csv_and_url_together_rejected(db, import_odoo, tmp_path):
    status, _out, err = import_odoo("--csv-dir", str(tmp_path), "--url", "http://127.0.0.1:1")

    assert status == 1
    assert "Give either --csv-dir or --url, not both." in err


def test_sources_share_record_keys(odoo, dataset, tmp_path):
    build_space(dataset)
    odoo.load(dataset)
    folder = dataset.write_csv(tmp_path, style="labels")
    xmlrpc = XmlRpcSource(
        url=os.environ["ODOO_URL"],
        database=odoo.database,
        username=odoo.login,
        password=odoo.password,
    ).fetch(CustomFields())
    exported = CsvSource(folder).fetch(CustomFields())

    for records, keys in (
        (xmlrpc.products, PRODUCT_KEYS),
        (xmlrpc.partners, PARTNER_KEYS),
        (xmlrpc.lines, LINE_KEYS),
    ):
        assert {key for record in records for key in record} == set(keys)
    for records, keys in (
        (exported.products, PRODUCT_KEYS),
        (exported.partners, PARTNER_KEYS),
        (exported.lines, LINE_KEYS),
    ):
        assert {key for record in records for key in record} <= {*keys, "_row"}
    assert len(exported.partners) == len(xmlrpc.partners)
    assert len(exported.lines) == len(xmlrpc.lines)
