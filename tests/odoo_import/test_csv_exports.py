"""Details of Odoo's CSV exports: escaped cells, product references, companies, names."""

import csv
import datetime
from pathlib import Path

import pytest

from members.models import Member, Membership

from .helpers import counts_of

pytestmark = pytest.mark.django_db

D = datetime.date
LINES_FILE = "Membership Line (membership.membership_line).csv"
CONTACTS_FILE = "Contact (res.partner).csv"


def rewrite(path: Path, change) -> None:
    """Rewrite a CSV file, passing each row as a dict by header to `change`."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows = [change(dict(row)) for row in rows]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_csv_phone_without_export_apostrophe(odoo, dataset, import_odoo, hot_desk, tmp_path):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com", phone="+1 787 555 0100")
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    folder = dataset.write_csv(tmp_path, style="labels")
    assert "'+1 787 555 0100" in (folder / CONTACTS_FILE).read_text(encoding="utf-8")

    import_odoo("--csv-dir", str(folder))
    assert Member.objects.get().phone == "+1 787 555 0100"

    status, out, _err = import_odoo()  # then over XML-RPC: nothing flips
    assert status == 0
    assert counts_of(out, "member") == (0, 0, 1, 0, 0)


def test_csv_product_with_internal_reference(dataset, import_odoo, hot_desk, tmp_path):
    """A plain export without Membership/ID names the product as "[DD] Dedicated Desk"."""
    dataset.product("Hot Desk", 250)
    desk = dataset.product("Dedicated Desk", 400)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com")
    dataset.line(partner, desk, "paid", D(2025, 1, 1), D(2025, 1, 31))
    folder = dataset.write_csv(tmp_path, style="labels")

    def name_product(row):
        del row["Membership/ID"]
        row["Membership"] = "[DD] Dedicated Desk"
        return row

    rewrite(folder / LINES_FILE, name_product)

    status, out, err = import_odoo("--csv-dir", str(folder))

    assert status == 0, out + err
    assert Membership.objects.get().plan.name == "Dedicated Desk"


def test_csv_company_from_parent_id(dataset, import_odoo, hot_desk, tmp_path):
    product = dataset.product("Hot Desk", 250)
    acme = dataset.partner("Acme Corp", "hello@acme.example", is_company=True)
    dataset.line(acme, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    bob = dataset.partner("Bob Smith", "bob@acme.example", company=acme)
    dataset.line(bob, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    folder = dataset.write_csv(tmp_path, style="compatible")
    ids = {}

    def company_by_id(row):
        ids.setdefault(row["name"], row["id"])
        row["parent_id/id"] = ids["Acme Corp"] if row["company_name"] else ""
        del row["company_name"]
        return row

    rewrite(folder / "contacts.csv", company_by_id)

    status, _out, err = import_odoo("--csv-dir", str(folder))

    assert status == 0, err
    assert Member.objects.get(email="bob@acme.example").company == "Acme Corp"


def test_csv_company_not_in_file_warns(dataset, import_odoo, hot_desk, tmp_path):
    product = dataset.product("Hot Desk", 250)
    acme = dataset.partner("Acme Corp", "hello@acme.example", is_company=True)
    bob = dataset.partner("Bob Smith", "bob@acme.example", company=acme)
    dataset.line(bob, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    folder = dataset.write_csv(tmp_path, style="compatible")

    def company_by_id(row):
        row["parent_id/id"] = "__export__.res_partner_1_0a1b2c3d" if row["company_name"] else ""
        del row["company_name"]
        return row

    rewrite(folder / "contacts.csv", company_by_id)

    status, _out, err = import_odoo("--csv-dir", str(folder))

    assert status == 0
    assert "1 contacts name their company by id only" in err
    assert Member.objects.get().company == ""


def test_csv_complete_name_without_company(dataset, import_odoo, hot_desk, tmp_path):
    product = dataset.product("Hot Desk", 250)
    acme = dataset.partner("Acme Corp", "hello@acme.example", is_company=True)
    bob = dataset.partner("Bob Smith", "bob@acme.example", company=acme)
    dataset.line(bob, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    folder = dataset.write_csv(tmp_path, style="labels")

    def complete_name(row):
        company = row["Related Company"]
        row["Complete Name"] = f"{company}, {row.pop('Name')}" if company else row.pop("Name")
        return row

    rewrite(folder / CONTACTS_FILE, complete_name)

    status, _out, err = import_odoo("--csv-dir", str(folder))

    assert status == 0, err
    member = Member.objects.get()
    assert (member.first_name, member.last_name, member.company) == ("Bob", "Smith", "Acme Corp")
