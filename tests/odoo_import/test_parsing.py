"""Parsers of Odoo values and CSV headers."""

import datetime
from decimal import Decimal

import pytest

from odoo_import import parsing
from odoo_import.sources import header_key

D = datetime.date


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Cher", ("Cher", "")),
        ("Ana Rivera Ortiz", ("Ana", "Rivera Ortiz")),
        ("Rivera Ortiz, Ana María", ("Ana María", "Rivera Ortiz")),
        ("Ñeco,", ("Ñeco", "")),
        ("  Zoë \t Ávila ", ("Zoë", "Ávila")),
        ("Jose\u0301 Pe\u0301rez", ("José", "Pérez")),  # decomposed accents become NFC
    ],
)
def test_split_name(name, expected):
    assert parsing.split_name(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (250.1, Decimal("250.10")),
        (0, Decimal("0.00")),
        (0.0, Decimal("0.00")),
        ("1,234.50", Decimal("1234.50")),
        ("$ 99", Decimal("99.00")),
        ("12.345", Decimal("12.35")),
        ("", None),
        (False, None),
    ],
)
def test_parse_money(value, expected):
    assert parsing.parse_money(value) == expected


@pytest.mark.parametrize("value", ["12,5", "abc", "1.2.3", "nan", True, float("inf")])
def test_parse_money_rejects(value):
    with pytest.raises(ValueError, match="is not a number"):
        parsing.parse_money(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-31", D(2024, 1, 31)),
        ("2024-01-31 10:00:00", D(2024, 1, 31)),
        ("01/31/2024", D(2024, 1, 31)),
        (False, None),
        ("", None),
    ],
)
def test_parse_date(value, expected):
    assert parsing.parse_date(value) == expected


@pytest.mark.parametrize("value", ["2024-02-30", "31/01/2024", "yesterday"])
def test_parse_date_rejects(value):
    with pytest.raises(ValueError, match=f"the date '{value}' is not a date"):
        parsing.parse_date(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        ([42, "Rosa"], 42),
        ("__export__.res_partner_42_0a1b2c3d", 42),
        ("__export__.res_partner_42", 42),
        ("__export__.product_product_7_0a1b2c3d", "__export__.product_product_7_0a1b2c3d"),
        ("base.partner_admin", "base.partner_admin"),
        (False, None),
        ("", None),
    ],
)
def test_parse_record_id(value, expected):
    assert parsing.parse_record_id(value, "res_partner") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("paid", "paid"), ("Paid Member", "paid"), ("Cancelled Member", "canceled"), (False, "none")],
)
def test_parse_state(value, expected):
    assert parsing.parse_state(value) == expected


def test_parse_state_rejects():
    with pytest.raises(ValueError, match="'gold' is not one of Odoo's states"):
        parsing.parse_state("gold")


@pytest.mark.parametrize(
    ("start", "last_day", "months"),
    [
        (D(2024, 1, 1), D(2024, 12, 31), 12),
        (D(2024, 1, 15), D(2024, 2, 14), 1),
        (D(2024, 3, 15), D(2024, 12, 31), 10),
        (D(2024, 1, 1), D(2024, 1, 10), 1),
        (D(2024, 1, 31), D(2024, 2, 29), 1),
    ],
)
def test_months_covered(start, last_day, months):
    assert parsing.months_covered(start, last_day) == months


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("ID", "id"),
        ("Partner / ID", "partner/id"),
        ("Membership State", "membership_state"),
        (" Is a Company ", "is_a_company"),
        ("membership_id/.id", "membership_id/.id"),
    ],
)
def test_header_key(header, key):
    assert header_key(header) == key
