"""Parsers for the values Odoo sends over XML-RPC or writes into its CSV exports.

Each parser takes what either source produces (XML-RPC gives Python values with `False`
for an empty field, CSV gives strings) and returns a Python value, `None` for an empty
field, or raises `ParseError`, a `ValueError` with a message that names the value.
"""

import datetime
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import gettext_noop

from billing.money import CENT
from cpr_portal.messages import MessageError


class ParseError(MessageError, ValueError):
    """A value cannot be parsed: English in str(), translated where the import prints it."""


# Odoo's membership states, on a partner (`membership_state`) and on a membership line
# (`state`), with the labels that a list-view export writes instead of the keys.
MEMBERSHIP_STATES = {
    "none": "none",
    "canceled": "canceled",
    "old": "old",
    "waiting": "waiting",
    "invoiced": "invoiced",
    "free": "free",
    "paid": "paid",
    "non member": "none",
    "cancelled": "canceled",
    "cancelled member": "canceled",
    "canceled member": "canceled",
    "old member": "old",
    "waiting member": "waiting",
    "invoiced member": "invoiced",
    "free member": "free",
    "paid member": "paid",
}

TRUE_WORDS = {"true", "1", "yes", "y", "t", "x"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}

# An external id that Odoo's export made up for a record without one:
# `__export__.<table>_<id>_<8 hex digits>` since Odoo 12, `__export__.<table>_<id>` before.
EXPORT_ID = re.compile(r"^__export__\.(?P<table>[a-z0-9_]+?)_(?P<id>\d+)(?:_[0-9a-f]{8})?$")
THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def is_empty(value) -> bool:
    """Return whether `value` is an empty field: None, False, or blank text."""
    if value is None or value is False:
        return True
    return isinstance(value, str) and not value.strip()


def clean_text(value) -> str:
    """Return `value` as text in Unicode NFC with runs of whitespace made one space."""
    if is_empty(value):
        return ""
    text = unicodedata.normalize("NFC", str(value))
    return " ".join(text.split())


def parse_date(value) -> datetime.date | None:
    """Parse an Odoo date: ISO `2024-01-31` (time part allowed) or US `01/31/2024`."""
    if is_empty(value):
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ParseError(
        gettext_noop("the date %(value)r is not a date in the form 2024-01-31 or 01/31/2024"),
        value=text,
    )


def parse_money(value) -> Decimal | None:
    """Parse an amount in USD to a Decimal with two places; `$` and thousands commas are allowed.

    XML-RPC sends floats, which are converted through their shortest text form, so 250.1
    becomes 250.10 and not 250.099999....
    """
    if value is True:
        raise ParseError(gettext_noop("the amount %(value)r is not a number"), value=value)
    if is_empty(value):
        return None
    if isinstance(value, int | float):
        text = repr(value)
    else:
        text = str(value).strip().replace("$", "").replace("USD", "")
        text = "".join(text.split())
        if THOUSANDS.match(text):
            text = text.replace(",", "")
        if not PLAIN_NUMBER.match(text):
            raise ParseError(
                gettext_noop("the amount %(value)r is not a number"), value=str(value).strip()
            )
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ParseError(gettext_noop("the amount %(value)r is not a number"), value=text) from None
    if not amount.is_finite():
        raise ParseError(gettext_noop("the amount %(value)r is not a number"), value=text)
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_bool(value) -> bool:
    """Parse an Odoo boolean: XML-RPC's True/False, or an export's True/False, 1/0, Yes/No."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ParseError(gettext_noop("the value %(value)r is not true or false"), value=str(value))


def parse_state(value) -> str:
    """Parse a membership state key or its label (`Paid Member`) to the key (`paid`)."""
    if is_empty(value):
        return "none"
    text = " ".join(str(value).strip().lower().split())
    try:
        return MEMBERSHIP_STATES[text]
    except KeyError:
        known = ", ".join(sorted({key for key in MEMBERSHIP_STATES.values()}))
        raise ParseError(
            gettext_noop("the membership state %(value)r is not one of Odoo's states (%(known)s)"),
            value=str(value),
            known=known,
        ) from None


def parse_record_id(value, table: str) -> int | str | None:
    """Return the database id in an Odoo id value, or the external id text when it has none.

    `value` is a database id (42 or "42"), a many2one pair ([42, "Name"]), or an external
    id from an export. An id that Odoo's export made up for `table`, such as
    `__export__.res_partner_42_0a1b2c3d`, contains the database id, 42. Any other external
    id (`base.partner_admin`) is returned as text, to match records within one export.
    """
    if is_empty(value):
        return None
    if isinstance(value, list | tuple):
        if not value:
            return None
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = EXPORT_ID.match(text)
    if match and match["table"] == table:
        return int(match["id"])
    return text


def many2one_name(value) -> str:
    """Return the display name of an XML-RPC many2one pair, or the text of an export column."""
    if isinstance(value, list | tuple):
        return clean_text(value[1]) if len(value) > 1 else ""
    return clean_text(value)


INTERNAL_REFERENCE = re.compile(r"^\[[^\]]*\]\s*")


def product_name(name: str) -> str:
    """Return a product's name without the internal reference that Odoo shows before it.

    Odoo displays a product with an internal reference as "[DD] Dedicated Desk", and a
    plain export of the membership lines writes that display name.
    """
    return INTERNAL_REFERENCE.sub("", name, count=1) or name


def split_name(name: str) -> tuple[str, str]:
    """Split a contact's name into first and last name.

    "Last, First" splits at the comma. Otherwise the first word is the first name and
    the rest is the last name, which keeps Spanish double surnames together
    ("Ana Rivera Ortiz" gives "Ana" and "Rivera Ortiz"). One word is a first name alone.
    """
    name = clean_text(name)
    if "," in name:
        last, first = (part.strip() for part in name.split(",", 1))
        if first and last:
            return first, last
        return first or last, ""
    words = name.split(" ")
    if len(words) == 1:
        return name, ""
    return words[0], " ".join(words[1:])


def months_covered(start: datetime.date, last_day: datetime.date) -> int:
    """Return the whole number of months (at least one) nearest to `start` through `last_day`.

    1 January to 31 December is 12 months, 15 January to 14 February is one, and
    15 March to 31 December is ten (the nearest boundary is 15 January).
    """
    from members.periods import add_months

    end = last_day + datetime.timedelta(days=1)
    estimate = (end.year - start.year) * 12 + end.month - start.month
    candidates = range(max(estimate - 1, 1), max(estimate + 2, 2))
    return min(candidates, key=lambda months: (abs((add_months(start, months) - end).days), months))
