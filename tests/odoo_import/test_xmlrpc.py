"""The XML-RPC source: login, errors, paging, and the fields it reads."""

import datetime
import logging
import os
import socket

import pytest
from django.core.management import execute_from_command_line

from access.models import AccessKey
from members.models import Member

from .helpers import counts_of

pytestmark = pytest.mark.django_db

D = datetime.date


@pytest.fixture
def one_member(dataset):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com", access_key="FOB-1")
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    return partner


def test_wrong_password_clear_error(odoo, dataset, one_member, import_odoo, monkeypatch, caplog):
    odoo.load(dataset)
    monkeypatch.setenv("ODOO_PASSWORD", "not-the-password")

    with caplog.at_level(logging.DEBUG):
        status, out, err = import_odoo()

    assert status == 1
    assert "rejected the login of 'admin@example.com' to database 'cpr'" in err
    assert "ODOO_PASSWORD" in err
    assert "not-the-password" not in out + err + caplog.text
    assert Member.objects.count() == 0


def test_unknown_database_error(odoo, one_member, import_odoo, monkeypatch):
    monkeypatch.setenv("ODOO_DB", "nope")

    status, _out, err = import_odoo()

    assert status == 1
    assert "Odoo rejected the login to database nope" in err
    assert 'database "nope" does not exist' in err


def test_unreachable_server_error(db, import_odoo, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ODOO_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ODOO_DB", "cpr")
    monkeypatch.setenv("ODOO_USERNAME", "admin@example.com")
    monkeypatch.setenv("ODOO_PASSWORD", "secret-value")

    status, _out, err = import_odoo("--timeout", "5")

    assert status == 1
    assert f"Cannot reach Odoo at http://127.0.0.1:{port}" in err
    assert "secret-value" not in err


def test_wrong_path_error(odoo, import_odoo, monkeypatch):
    monkeypatch.setenv("ODOO_URL", os.environ["ODOO_URL"] + "/odoo")

    status, _out, err = import_odoo()

    assert status == 1
    assert "returned HTTP 404" in err


def test_missing_settings_error(db, import_odoo, monkeypatch):
    for name in ("ODOO_URL", "ODOO_DB", "ODOO_USERNAME", "ODOO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    status, _out, err = import_odoo("--db", "cpr")

    assert status == 1
    assert "Set ODOO_URL (or --url), ODOO_USERNAME (or --username), ODOO_PASSWORD" in err


def test_url_with_password_rejected(db, import_odoo, monkeypatch):
    monkeypatch.setenv("ODOO_DB", "cpr")
    monkeypatch.setenv("ODOO_USERNAME", "admin")
    monkeypatch.setenv("ODOO_PASSWORD", "secret-value")

    status, _out, err = import_odoo("--url", "http://admin:secret-value@127.0.0.1:1")

    assert status == 1
    assert "contains a user name or password" in err
    assert "secret-value" not in err


@pytest.mark.parametrize(
    "url", ["admin:secret-value@odoo.example.com", "ftp://admin:secret-value@odoo.example.com"]
)
def test_bad_url_not_echoed_with_password(db, import_odoo, monkeypatch, url):
    monkeypatch.setenv("ODOO_DB", "cpr")
    monkeypatch.setenv("ODOO_USERNAME", "admin")
    monkeypatch.setenv("ODOO_PASSWORD", "secret-value")

    status, _out, err = import_odoo("--url", url)

    assert status == 1
    assert "is not an http:// or https:// address" in err
    assert "secret-value" not in err
    assert "***@odoo.example.com" in err


def test_options_override_environment(odoo, dataset, one_member, import_odoo, monkeypatch):
    odoo.load(dataset)
    url = os.environ["ODOO_URL"]
    monkeypatch.setenv("ODOO_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ODOO_DB", "wrong")

    status, _out, err = import_odoo("--url", url, "--db", "cpr")

    assert status == 0, err
    assert Member.objects.count() == 1


def test_pages_of_batch_size(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    for number in range(5):
        partner = dataset.partner(f"Person {number}", f"person{number}@example.com")
        dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    status, _out, _err = import_odoo("--batch-size", "2")

    assert status == 0
    assert Member.objects.count() == 5
    reads = [
        call
        for model, method, call in odoo.calls
        if model == "res.partner" and method == "search_read"
    ]
    assert [(call["offset"], call["limit"]) for call in reads] == [(0, 2), (2, 2), (4, 2)]
    assert all(call["order"] == "id" for call in reads)
    assert all(call["context"] == {"active_test": False} for call in reads)
    assert "x_access_key" in reads[0]["fields"]
    assert "member_lines" not in reads[0]["fields"]
    counts = [method for model, method, _call in odoo.calls if method == "search_count"]
    assert len(counts) == 3


def test_archived_contact_imported(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250, active=False)
    partner = dataset.partner("Former Member", "former@example.com", active=False)
    dataset.line(partner, product, "old", D(2023, 1, 1), D(2023, 12, 31))
    odoo.load(dataset)

    status, _out, _err = import_odoo()

    assert status == 0
    assert Member.objects.get().memberships.get().state == "ended"


def test_missing_custom_fields_warn(odoo, dataset, one_member, import_odoo, hot_desk):
    odoo.load(dataset)
    odoo.remove_field("res.partner", "x_access_key")
    odoo.remove_field("res.partner", "x_start_date")

    status, _out, err = import_odoo()

    assert status == 0
    assert "Odoo's res.partner has no field x_access_key, so no access key is imported" in err
    assert "--field-access-key" in err
    assert "no field x_start_date" in err
    assert Member.objects.count() == 1
    assert AccessKey.objects.count() == 0


def test_custom_field_names_option(odoo, dataset, import_odoo, hot_desk):
    odoo.fields["res.partner"]["x_studio_fob"] = "char"
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com")
    partner["x_studio_fob"] = "STUDIO-1"
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    status, _out, _err = import_odoo("--field-access-key", "x_studio_fob")

    assert status == 0
    assert AccessKey.objects.get().number == "STUDIO-1"


def test_membership_module_missing_error(odoo, one_member, import_odoo):
    odoo.remove_field("res.partner", "membership_state")

    status, _out, err = import_odoo()

    assert status == 1
    assert "res.partner has no field membership_state" in err
    assert "install Odoo's membership module" in err


def test_known_contact_no_longer_member(odoo, dataset, one_member, import_odoo, hot_desk):
    odoo.load(dataset)
    import_odoo()
    odoo.update("res.partner", one_member["id"], phone="787-555-0100", membership_state="none")
    del odoo.records["membership.membership_line"][dataset.lines[0]["id"]]

    status, out, _err = import_odoo()

    assert status == 0
    assert Member.objects.get().phone == "787-555-0100"
    assert counts_of(out, "member") == (0, 1, 0, 0, 0)


def test_conflict_exit_status_from_shell(odoo, dataset, import_odoo, hot_desk, capsys):
    product = dataset.product("Hot Desk", 250)
    dataset.line(None, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "import_odoo", "--no-color"])

    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "1 conflict reported above" in captured.err
    assert "the line has no partner" in captured.out


def test_many2one_custom_fields(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner(
        "Rosa Díaz", "rosa@example.com", free_member=True, start_date=D(2024, 6, 1),
        membership_type=[1, "Hot Desk"], access_key=[44, "FOB 7788"],
    )  # fmt: skip
    dataset.line(partner, product, "canceled", D(2024, 1, 1), D(2024, 1, 31))
    odoo.load(dataset)
    odoo.set_field("res.partner", "x_membership_type", "many2one")
    odoo.set_field("res.partner", "x_access_key", "many2one")

    status, out, err = import_odoo()

    assert status == 0, out + err
    membership = Member.objects.get().memberships.get(odoo_ref__startswith="res.partner")
    assert membership.plan == hot_desk
    assert AccessKey.objects.get().number == "FOB7788"


def test_selection_custom_field_label(odoo, dataset, import_odoo, hot_desk):
    dataset.product("Hot Desk", 250)
    dataset.partner(
        "Rosa Díaz", "rosa@example.com", free_member=True, start_date=D(2024, 6, 1),
        membership_type="hot_desk",
    )  # fmt: skip
    odoo.load(dataset)
    odoo.set_field(
        "res.partner", "x_membership_type", "selection",
        selection=[["hot_desk", "Hot Desk"], ["office", "Private Office"]],
    )  # fmt: skip

    status, out, err = import_odoo()

    assert status == 0, out + err
    assert Member.objects.get().memberships.get().plan == hot_desk


def test_unreadable_custom_field_warns(odoo, dataset, one_member, import_odoo):
    odoo.load(dataset)
    odoo.set_field("res.partner", "x_access_key", "many2many")
    odoo.update("res.partner", one_member["id"], x_access_key=[3, 4])

    status, _out, err = import_odoo()

    assert status == 0
    assert "The field x_access_key of res.partner is of type many2many" in err
    assert not AccessKey.objects.exists()
