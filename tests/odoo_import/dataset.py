"""Odoo records for the import tests, shaped like Odoo 16/17 returns them over XML-RPC.

`Dataset` builds membership products, contacts and membership lines; `write_csv` writes
the same records as Odoo's list-view exports would, in either export style. The
contacts' `membership_state` is computed as Odoo's membership module computes it, so the
XML-RPC domain that selects members returns the same partners Odoo would.
"""

import csv
import datetime
import hashlib
from collections import Counter
from pathlib import Path

STATE_LABELS = {
    "none": "Non Member",
    "canceled": "Cancelled Member",
    "old": "Old Member",
    "waiting": "Waiting Member",
    "invoiced": "Invoiced Member",
    "free": "Free Member",
    "paid": "Paid Member",
}


def _export_id(table: str, record_id: int) -> str:
    """Return the external id Odoo's export makes up for a record without one."""
    digest = hashlib.sha256(f"{table}{record_id}".encode()).hexdigest()[:8]
    return f"__export__.{table}_{record_id}_{digest}"


def _export_cell(value):
    """Return a value as Odoo's CSV export writes it: empty for False, and an apostrophe
    before text that a spreadsheet would read as a formula (=, + or - first)."""
    if value is False or value is None:
        return ""
    if isinstance(value, str) and value.startswith(("=", "-", "+")):
        return f"'{value}"
    return value


def _date(value) -> str | bool:
    return value.isoformat() if isinstance(value, datetime.date) else value


class Dataset:
    def __init__(self, today: datetime.date):
        self.today = today
        self.products: list[dict] = []
        self.partners: list[dict] = []
        self.lines: list[dict] = []
        self._next_id = {"product": 1, "partner": 1, "line": 1, "invoice": 1}

    def _id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1
        return value

    def product(self, name: str, price: float, date_from=False, date_to=False, active=True) -> dict:
        record = {
            "id": self._id("product"),
            "name": name,
            "list_price": float(price),
            "membership": True,
            "membership_date_from": _date(date_from),
            "membership_date_to": _date(date_to),
            "active": active,
            "detailed_type": "membership",
        }
        self.products.append(record)
        return record

    def partner(
        self,
        name: str,
        email,
        *,
        phone=False,
        mobile=False,
        is_company=False,
        company=None,
        free_member=False,
        membership_type=False,
        start_date=False,
        access_key=False,
        associate=None,
        active=True,
    ) -> dict:
        record = {
            "id": self._id("partner"),
            "name": name,
            "email": email,
            "phone": phone,
            "mobile": mobile,
            "is_company": is_company,
            "parent_id": [company["id"], company["name"]] if company else False,
            "company_name": False,
            "membership_state": "none",
            "membership_start": False,
            "membership_stop": False,
            "membership_cancel": False,
            "free_member": free_member,
            "associate_member": [associate["id"], associate["name"]] if associate else False,
            "active": active,
            "x_membership_type": membership_type,
            "x_start_date": _date(start_date),
            "x_access_key": access_key,
        }
        self.partners.append(record)
        self.refresh_state(record)
        return record

    def line(
        self,
        partner: dict | None,
        product: dict,
        state: str,
        date_from,
        date_to,
        price=None,
        date_cancel=False,
        joined=None,
    ) -> dict:
        has_invoice = state in ("paid", "invoiced", "waiting", "canceled")
        invoice_id = self._id("invoice") if has_invoice else None
        record = {
            "id": self._id("line"),
            "partner": [partner["id"], partner["name"]] if partner else False,
            "membership_id": [product["id"], product["name"]],
            "date": _date(joined if joined is not None else date_from),
            "date_from": _date(date_from),
            "date_to": _date(date_to),
            "date_cancel": _date(date_cancel),
            "state": state,
            "member_price": product["list_price"] if price is None else price,
            "account_invoice_id": [invoice_id, f"INV/2024/{invoice_id:05d}"]
            if invoice_id
            else False,
            "company_id": [1, "Code Puerto Rico"],
        }
        self.lines.append(record)
        if partner is not None:
            self.refresh_state(partner)
        return record

    def refresh_state(self, partner: dict) -> None:
        """Compute membership_state, start and stop the way Odoo's membership module does."""
        today = self.today.isoformat()
        lines = [
            line for line in self.lines if line["partner"] and line["partner"][0] == partner["id"]
        ]
        live = [line for line in lines if not line["date_cancel"]]
        partner["membership_start"] = min((line["date_from"] for line in live), default=False)
        partner["membership_stop"] = max(
            (line["date_to"] for line in live if line["date_to"]), default=False
        )
        current = [
            line
            for line in lines
            if line["date_from"] <= today and (line["date_to"] or "9999") >= today
        ]
        states = {line["state"] for line in current}
        if "paid" in states:
            state = "paid"
        elif partner["free_member"]:
            state = "free"
        elif "invoiced" in states:
            state = "invoiced"
        elif "canceled" in states:
            state = "canceled"
        elif "waiting" in states:
            state = "waiting"
        elif any(line["state"] in ("paid", "old") for line in lines):
            state = "old"
        elif lines and all(line["state"] == "canceled" for line in lines):
            state = "canceled"
        else:
            state = "none"
        partner["membership_state"] = state

    # CSV exports -----------------------------------------------------------------------

    def write_csv(self, directory: Path, style: str = "compatible") -> Path:
        """Write contacts.csv, membership_lines.csv and products.csv like Odoo's exports.

        "compatible" has the technical headers and external ids of an import-compatible
        export, with state keys and ISO dates. It keeps the read-only fields (the state and
        dates of lines) that Odoo's import-compatible export leaves out, as a file put
        together by hand would. "labels" is the plain export: field labels as headers,
        database ids in the ID columns, state labels and US dates.
        """
        directory.mkdir(parents=True, exist_ok=True)
        if style == "compatible":
            self._write_compatible(directory)
        elif style == "labels":
            self._write_labels(directory)
        else:
            raise ValueError(f"unknown export style {style!r}")
        return directory

    @staticmethod
    def _write(path: Path, header: list[str], rows: list[list]) -> None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([_export_cell(value) for value in row])

    def _write_compatible(self, directory: Path) -> None:
        def ref(table, value):
            return _export_id(table, value[0]) if value else ""

        def boolean(value):
            return "True" if value else "False"

        self._write(
            directory / "products.csv",
            ["id", "name", "list_price", "membership_date_from", "membership_date_to"],
            [
                [
                    _export_id("product_product", p["id"]),
                    p["name"],
                    p["list_price"],
                    p["membership_date_from"],
                    p["membership_date_to"],
                ]
                for p in self.products
            ],
        )
        self._write(
            directory / "contacts.csv",
            [
                "id",
                "name",
                "email",
                "phone",
                "mobile",
                "is_company",
                "company_name",
                "membership_state",
                "membership_start",
                "free_member",
                "associate_member/id",
                "x_membership_type",
                "x_start_date",
                "x_access_key",
            ],
            [
                [
                    _export_id("res_partner", p["id"]),
                    p["name"],
                    p["email"],
                    p["phone"],
                    p["mobile"],
                    boolean(p["is_company"]),
                    p["parent_id"][1] if p["parent_id"] else p["company_name"],
                    p["membership_state"],
                    p["membership_start"],
                    boolean(p["free_member"]),
                    ref("res_partner", p["associate_member"]),
                    p["x_membership_type"],
                    p["x_start_date"],
                    p["x_access_key"],
                ]
                for p in self._member_partners()
            ],
        )
        self._write(
            directory / "membership_lines.csv",
            [
                "id",
                "partner/id",
                "membership_id/id",
                "date",
                "date_from",
                "date_to",
                "date_cancel",
                "state",
                "member_price",
            ],
            [
                [
                    _export_id("membership_membership_line", line["id"]),
                    ref("res_partner", line["partner"]),
                    ref("product_product", line["membership_id"]),
                    line["date"],
                    line["date_from"],
                    line["date_to"],
                    line["date_cancel"],
                    line["state"],
                    line["member_price"],
                ]
                for line in self.lines
            ],
        )

    def _write_labels(self, directory: Path) -> None:
        def us_date(value):
            if not value:
                return ""
            try:
                return datetime.date.fromisoformat(value).strftime("%m/%d/%Y")
            except ValueError:
                return value  # a deliberately broken date stays as it is

        self._write(
            directory / "Product Variant (product.product).csv",
            ["ID", "Name", "Sales Price", "Membership Start Date", "Membership End Date"],
            [
                [
                    p["id"],
                    p["name"],
                    f"{p['list_price']:,.2f}" if isinstance(p["list_price"], float) else "",
                    us_date(p["membership_date_from"]),
                    us_date(p["membership_date_to"]),
                ]
                for p in self.products
            ],
        )
        self._write(
            directory / "Contact (res.partner).csv",
            [
                "ID",
                "Name",
                "Email",
                "Phone",
                "Mobile",
                "Is a Company",
                "Related Company",
                "Membership State",
                "Membership Start Date",
                "Free Member",
                "Associate Member/ID",
                "Membership Type",
                "Start Date",
                "Access Key",
            ],
            [
                [
                    p["id"],
                    p["name"],
                    p["email"],
                    p["phone"],
                    p["mobile"],
                    "True" if p["is_company"] else "False",
                    p["parent_id"][1] if p["parent_id"] else "",
                    STATE_LABELS[p["membership_state"]],
                    us_date(p["membership_start"]),
                    "True" if p["free_member"] else "False",
                    p["associate_member"][0] if p["associate_member"] else "",
                    p["x_membership_type"],
                    us_date(p["x_start_date"]),
                    p["x_access_key"],
                ]
                for p in self._member_partners()
            ],
        )
        self._write(
            directory / "Membership Line (membership.membership_line).csv",
            [
                "ID",
                "Partner/ID",
                "Membership/ID",
                "Join Date",
                "From",
                "To",
                "Cancel date",
                "Membership Status",
                "Membership Fee",
            ],
            [
                [
                    line["id"],
                    line["partner"][0] if line["partner"] else "",
                    line["membership_id"][0],
                    us_date(line["date"]),
                    us_date(line["date_from"]),
                    us_date(line["date_to"]),
                    us_date(line["date_cancel"]),
                    STATE_LABELS.get(line["state"], line["state"]),
                    line["member_price"],
                ]
                for line in self.lines
            ],
        )

    def _member_partners(self) -> list[dict]:
        """Return the contacts an operator exports: those that are or were members."""
        with_lines = {line["partner"][0] for line in self.lines if line["partner"]}
        return [
            p for p in self.partners if p["membership_state"] != "none" or p["id"] in with_lines
        ]


# --- A space of a few hundred contacts ------------------------------------------------------

FIRST_NAMES = ("María", "José", "Ana", "Luis", "Carmen", "Jorge", "Lucía", "Pedro", "Sofía", "Iván")
LAST_NAMES = ("Rodríguez Pérez", "Núñez", "Ortiz", "Vélez Rivera", "Colón", "Muñoz", "Díaz")


def build_large_space(dataset: Dataset, per_kind: int = 25) -> dict:
    """Add contacts of every kind, `per_kind` of each, and return the expected outcome.

    The data is the same on every call: names, emails and dates come from the position
    of each contact, never from a random generator. The returned dict counts, per
    (entity, verb), what a first import must report, and under "current" how many
    members must end with a current membership in each state.
    """
    today = dataset.today
    month_start = today.replace(day=1)
    hot_desk = dataset.product("Hot Desk", 250)
    dedicated = dataset.product(
        "Dedicated Desk", 4200, today.replace(month=1, day=1), today.replace(month=12, day=31)
    )
    expected = {
        ("plan", "updated"): 1,  # the existing Hot Desk plan, linked to its product
        ("plan", "created"): 1,
        ("member", "created"): 0,
        ("member", "conflict"): 0,
        ("membership", "created"): 0,
        ("membership", "skipped"): 0,
        ("membership", "conflict"): 0,
        ("key", "created"): 0,
        ("key", "skipped"): 0,
        ("key", "conflict"): 0,
        "current": Counter(),
    }
    counter = iter(range(1, 100_000))

    def person(kind: str, **fields) -> dict:
        number = next(counter)
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[number % len(LAST_NAMES)]
        name = fields.pop("name", f"{first} {last}")
        email = fields.pop("email", f"{kind}.{number}@Example.COM" if number % 3 else None)
        if email is None:
            email = f"{kind}.{number}@example.com"
        return dataset.partner(name, email, **fields)

    def member(kind: str, current_state, memberships: int, **fields) -> dict:
        partner = person(kind, **fields)
        expected["member", "created"] += 1
        expected["membership", "created"] += memberships
        if current_state:
            expected["current"][current_state] += 1
        return partner

    last_month = (month_start - datetime.timedelta(days=1)).replace(day=1)
    month_end = (month_start + datetime.timedelta(days=32)).replace(day=1) - datetime.timedelta(
        days=1
    )
    next_month = month_end + datetime.timedelta(days=1)
    year_ago = today.replace(year=today.year - 1)

    for index in range(per_kind):
        # Paid this month, with two older paid months: one active, two ended; a key.
        partner = member("paid", "active", 3, access_key=f"FOB-{index:04d}")
        dataset.line(partner, hot_desk, "paid", year_ago, year_ago + datetime.timedelta(days=30))
        dataset.line(partner, hot_desk, "paid", last_month, month_start - datetime.timedelta(1))
        dataset.line(partner, hot_desk, "paid", month_start, month_end)
        expected["key", "created"] += 1

        # A yearly line of the product that has no plan yet.
        partner = member("yearly", "active", 1)
        dataset.line(partner, dedicated, "paid", dedicated["membership_date_from"],
                     dedicated["membership_date_to"])  # fmt: skip

        # Invoiced, unpaid, started: past due.
        partner = member("invoiced", "past_due", 1)
        dataset.line(partner, hot_desk, "invoiced", month_start, month_end)

        # Waiting for an invoice, starts next month: pending.
        partner = member("waiting", "pending", 1)
        dataset.line(partner, hot_desk, "waiting", next_month, next_month.replace(day=28))

        # Cancelled: history only, so the key is not recorded.
        partner = member("canceled", None, 1, access_key=f"CXL-{index:04d}")
        dataset.line(partner, hot_desk, "canceled", last_month, month_start - datetime.timedelta(1))
        expected["key", "skipped"] += 1

        # Membership ran out last year.
        partner = member("old", None, 1)
        dataset.line(partner, hot_desk, "old", year_ago, year_ago + datetime.timedelta(days=30))

        # Free member without lines: an active membership at no charge, and a key.
        member(
            "free", "active", 1, free_member=True, membership_type="HOT DESK",
            start_date=year_ago, access_key=f"FREE-{index:04d}",
        )  # fmt: skip
        expected["key", "created"] += 1

        # Lines in several states; the paid one of this month is current.
        partner = member("mixed", "active", 4)
        dataset.line(partner, hot_desk, "canceled", year_ago, year_ago + datetime.timedelta(30))
        dataset.line(partner, hot_desk, "paid", last_month, month_start - datetime.timedelta(1))
        dataset.line(partner, hot_desk, "invoiced", month_start, month_end)
        dataset.line(partner, dedicated, "paid", month_start, month_end, price=350)

        # A company that is a member.
        partner = member("company", "active", 1, name=f"Empresa {index} LLC", is_company=True)
        dataset.line(partner, hot_desk, "paid", month_start, month_end)

        # "Last, First" with accents, and an email in capitals.
        partner = member(
            "comma", "active", 1, name=f"Ñúñez Ávila, Zoë {index}",
            email=f"ZOE.{index}@EXAMPLE.COM",
        )  # fmt: skip
        dataset.line(partner, hot_desk, "paid", month_start, month_end)

        # A contact that never was a member: Odoo does not return it.
        person("prospect")

    conflicts = max(per_kind // 5, 1)
    for index in range(conflicts):
        # Two contacts with one email: both reported, their lines skipped.
        for suffix in ("a", "b"):
            partner = person("twin", email=f"twin.{index}@example.com" if suffix == "a"
                             else f"TWIN.{index}@example.com")  # fmt: skip
            dataset.line(partner, hot_desk, "paid", month_start, month_end)
            expected["member", "conflict"] += 1
            expected["membership", "skipped"] += 1

        # A contact without email.
        partner = person("nomail", email=False)
        dataset.line(partner, hot_desk, "paid", month_start, month_end)
        expected["member", "conflict"] += 1
        expected["membership", "skipped"] += 1

        # A line without a partner.
        dataset.line(None, hot_desk, "paid", month_start, month_end)
        expected["membership", "conflict"] += 1

        # A member with a good line and three broken ones: unknown product, bad date, bad money.
        partner = member("broken", "active", 1)
        dataset.line(partner, hot_desk, "paid", month_start, month_end)
        unknown = dataset.line(partner, hot_desk, "paid", last_month, last_month.replace(day=28))
        unknown["membership_id"] = [900 + index, "Day Pass"]
        dataset.line(partner, hot_desk, "paid", f"{today.year}-02-30", month_end)
        dataset.line(partner, hot_desk, "paid", year_ago, year_ago, price="two hundred")
        expected["membership", "conflict"] += 3

        # A key number another member already holds.
        partner = member("dupkey", "active", 1, access_key=f"FOB-{index:04d}")
        dataset.line(partner, hot_desk, "paid", month_start, month_end)
        expected["key", "conflict"] += 1
    return expected
