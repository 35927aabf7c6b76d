"""Sources of the Odoo records: Odoo's external XML-RPC API, or CSV exports.

Both sources return an `OdooData` whose records are dicts with the same keys (see
`PRODUCT_KEYS`, `PARTNER_KEYS` and `LINE_KEYS`). The values are left as the source
sends them: the import parses them, so a bad value becomes a conflict on its record
instead of stopping the run.
"""

import csv
import http.client
import logging
import re
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

from django.utils.translation import gettext_noop

from cpr_portal.messages import Message, MessageError

from . import parsing

logger = logging.getLogger(__name__)

PRODUCT_KEYS = ("id", "name", "list_price", "date_from", "date_to")
PARTNER_KEYS = (
    "id",
    "name",
    "email",
    "phone",
    "mobile",
    "is_company",
    "company",
    "membership_state",
    "membership_start",
    "free_member",
    "associate_member",
    "membership_type",
    "start_date",
    "access_key",
)
LINE_KEYS = (
    "id",
    "partner",
    "partner_name",
    "product",
    "product_name",
    "date",
    "date_from",
    "date_to",
    "date_cancel",
    "state",
    "member_price",
)


class OdooSourceError(MessageError):
    """The source cannot be read: Odoo is unreachable, refuses the login, or a file is bad.

    str(error) is English (for logs); `translated()` is what import_odoo prints.
    """


# Names of the custom fields and of the CSV files, as messages name them.
CUSTOM_FIELD_LABELS = {
    "membership_type": Message(gettext_noop("membership type")),
    "start_date": Message(gettext_noop("start date")),
    "access_key": Message(gettext_noop("access key")),
}
CSV_KIND_LABELS = {
    "products": Message(gettext_noop("products")),
    "contacts": Message(gettext_noop("contacts")),
    "lines": Message(gettext_noop("membership lines")),
}


@dataclass(frozen=True)
class CustomFields:
    """Names of the fields that the old custom module added to res.partner."""

    membership_type: str = "x_membership_type"
    start_date: str = "x_start_date"
    access_key: str = "x_access_key"


@dataclass
class OdooData:
    """Every record the import needs, and warnings about what the source lacks."""

    source: str
    products: list[dict] = field(default_factory=list)
    partners: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    # Messages: English in str() for the log, translated where import_odoo prints them.
    warnings: list[Message] = field(default_factory=list)


# Called after each page with (model, records read so far, total records).
Progress = Callable[[str, int, int], None]


# --- XML-RPC ---------------------------------------------------------------------------

PARTNER_MODEL = "res.partner"
LINE_MODEL = "membership.membership_line"
PRODUCT_MODEL = "product.product"

# Fields of Odoo 16 and 17 (membership module). The first group of each model must exist;
# the others are read when the database has them.
PRODUCT_REQUIRED = ("name", "list_price", "membership")
PRODUCT_OPTIONAL = ("membership_date_from", "membership_date_to")
PARTNER_REQUIRED = ("name", "email", "membership_state", "member_lines")
PARTNER_OPTIONAL = (
    "phone",
    "mobile",
    "is_company",
    "parent_id",
    "company_name",
    "membership_start",
    "free_member",
    "associate_member",
)
LINE_REQUIRED = ("partner", "membership_id", "date_from", "date_to", "state", "member_price")
LINE_OPTIONAL = ("date", "date_cancel")

# Types of the custom fields the import can read a plan name, a date or a key number from.
CUSTOM_FIELD_TYPES = frozenset(
    {"char", "text", "html", "selection", "many2one", "date", "datetime", "integer"}
)


def custom_value(value, field: dict):
    """Return the value of a custom field as text or a date, by the field's type in fields_get.

    A many2one field gives the display name of the record it points to, and a selection
    field the label of the chosen option. An empty field gives False, as Odoo sends it.
    """
    field_type = field.get("type")
    if field_type == "many2one":
        return value[1] if isinstance(value, list | tuple) and len(value) > 1 else False
    if field_type == "selection" and value:
        labels = {key: label for key, label in field.get("selection") or []}
        return labels.get(value, value)
    if field_type == "integer":
        return str(value) if value else False  # Odoo sends 0 for an empty integer field
    return value


# Archived records count too: a former member's contact or a retired product may be archived.
ALL_RECORDS = {"active_test": False}


class _TimeoutMixin:
    """Give every connection of an xmlrpc.client transport a timeout, in seconds."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


class _TimeoutTransport(_TimeoutMixin, xmlrpc.client.Transport):
    pass


class _TimeoutSafeTransport(_TimeoutMixin, xmlrpc.client.SafeTransport):
    pass


def _fault_summary(fault: xmlrpc.client.Fault) -> str:
    """Return the last line of an Odoo fault, which contains the error without the traceback."""
    lines = [line.strip() for line in str(fault.faultString).splitlines() if line.strip()]
    return lines[-1] if lines else str(fault.faultCode)


def _without_login(url: str) -> str:
    """Return `url` with anything before an "@" in its address (a login) replaced by ***."""
    scheme, separator, rest = url.rpartition("://")
    address, slash, path = rest.partition("/")
    if "@" in address:
        address = "***@" + address.rpartition("@")[2]
    return f"{scheme}{separator}{address}{slash}{path}"


class XmlRpcSource:
    """Read the membership records of a live Odoo over its external XML-RPC API.

    The password (or API key) is used only in the calls themselves; it is never logged
    and never part of an error message.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str,
        username: str,
        password: str,
        page_size: int = 200,
        timeout: float = 60,
    ):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OdooSourceError(
                gettext_noop(
                    "The Odoo URL %(url)r is not an http:// or https:// address; set ODOO_URL "
                    "or --url to the address of the Odoo site, such as "
                    "https://odoo.example.com."
                ),
                url=_without_login(url.strip()),
            )
        if parts.username or parts.password:
            raise OdooSourceError(
                gettext_noop(
                    "The Odoo URL contains a user name or password; give the address alone "
                    "and the login in ODOO_USERNAME and ODOO_PASSWORD."
                )
            )
        self.url = url.strip().rstrip("/")
        self.database = database
        self.username = username
        self._password = password
        self.page_size = page_size
        transport_class = _TimeoutSafeTransport if parts.scheme == "https" else _TimeoutTransport
        self._common = xmlrpc.client.ServerProxy(
            f"{self.url}/xmlrpc/2/common", transport=transport_class(timeout)
        )
        self._object = xmlrpc.client.ServerProxy(
            f"{self.url}/xmlrpc/2/object", transport=transport_class(timeout)
        )
        self._uid: int | None = None

    def describe(self) -> Message:
        return Message(
            gettext_noop("Odoo at %(url)s, database %(database)s, user %(username)s"),
            url=self.url,
            database=self.database,
            username=self.username,
        )

    def _call(self, description: str | Message, function, *args):
        try:
            return function(*args)
        except xmlrpc.client.Fault as fault:
            summary = _fault_summary(fault)
            logger.warning("Odoo call %s failed: %s", description, summary)
            raise OdooSourceError(
                gettext_noop("Odoo rejected %(call)s: %(error)s"), call=description, error=summary
            ) from None
        except xmlrpc.client.ProtocolError as error:
            logger.warning("Odoo call %s failed: HTTP %s", description, error.errcode)
            raise OdooSourceError(
                gettext_noop(
                    "%(url)s returned HTTP %(status)s %(reason)s to %(call)s; check that "
                    "ODOO_URL is the address of the Odoo site and that its XML-RPC API is open."
                ),
                url=self.url,
                status=error.errcode,
                reason=error.errmsg,
                call=description,
            ) from None
        except (OSError, http.client.HTTPException) as error:
            logger.warning("Odoo call %s failed: %s", description, error)
            raise OdooSourceError(
                gettext_noop(
                    "Cannot reach Odoo at %(url)s (%(call)s): %(error)s. Check ODOO_URL and "
                    "the network, then run the import again."
                ),
                url=self.url,
                call=description,
                error=error,
            ) from None
        except (xmlrpc.client.ResponseError, ExpatError) as error:
            logger.warning(
                "Odoo call %s got a response that is not XML-RPC: %s", description, error
            )
            raise OdooSourceError(
                gettext_noop(
                    "%(url)s returned a response to %(call)s that is not XML-RPC (%(error)s); "
                    "check ODOO_URL."
                ),
                url=self.url,
                call=description,
                error=error,
            ) from None

    def authenticate(self) -> int:
        """Log in and return the user id; raise OdooSourceError naming what to fix."""
        version = self._call("version()", self._common.version)
        server_version = version.get("server_version", "?") if isinstance(version, dict) else "?"
        logger.info("Connected to Odoo %s at %s", server_version, self.url)
        uid = self._call(
            Message(gettext_noop("the login to database %(database)s"), database=self.database),
            self._common.authenticate,
            self.database,
            self.username,
            self._password,
            {},
        )
        if not uid:
            logger.warning(
                "Odoo at %s rejected the login of %s to database %s",
                self.url,
                self.username,
                self.database,
            )
            raise OdooSourceError(
                gettext_noop(
                    "Odoo at %(url)s rejected the login of %(username)r to database "
                    "%(database)r. Check ODOO_DB, ODOO_USERNAME and ODOO_PASSWORD (an API key "
                    "of that user works in place of the password)."
                ),
                url=self.url,
                username=self.username,
                database=self.database,
            )
        self._uid = uid
        return uid

    def execute(self, model: str, method: str, args: list, kwargs: dict | None = None):
        if self._uid is None:
            self.authenticate()
        return self._call(
            f"{model}.{method}",
            self._object.execute_kw,
            self.database,
            self._uid,
            self._password,
            model,
            method,
            args,
            kwargs or {},
        )

    def available_fields(self, model: str) -> dict[str, dict]:
        """Return the fields of `model` by name, each with its type (and its options, if a
        selection field)."""
        return self.execute(model, "fields_get", [], {"attributes": ["type", "selection"]})

    def _choose_fields(self, model, available, required, optional) -> list[str]:
        missing = [name for name in required if name not in available]
        if missing:
            raise OdooSourceError(
                gettext_noop(
                    "The Odoo model %(model)s has no field %(fields)s; install Odoo's "
                    "membership module in that database, or check ODOO_DB."
                ),
                model=model,
                fields=", ".join(missing),
            )
        return [*required, *(name for name in optional if name in available)]

    def search_read(
        self, model: str, domain: list, fields: list[str], progress: Progress | None = None
    ) -> list[dict]:
        """Read every record of `model` matching `domain`, `page_size` records per call."""
        total = self.execute(model, "search_count", [domain], {"context": ALL_RECORDS})
        records: list[dict] = []
        while True:
            page = self.execute(
                model,
                "search_read",
                [domain],
                {
                    "fields": fields,
                    "offset": len(records),
                    "limit": self.page_size,
                    "order": "id",
                    "context": ALL_RECORDS,
                },
            )
            records.extend(page)
            if progress:
                progress(model, len(records), max(total, len(records)))
            if len(page) < self.page_size:
                return records

    def fetch(
        self,
        custom: CustomFields,
        progress: Progress | None = None,
        known_partner_ids: list[int] | tuple = (),
    ) -> OdooData:
        """Read the membership products, the member contacts and every membership line.

        The contacts are those that are or were members, and those in `known_partner_ids`
        (imported before), so that a contact that is no longer a member is updated too.
        """
        self.authenticate()
        data = OdooData(source=self.describe())

        product_fields = self._choose_fields(
            PRODUCT_MODEL,
            self.available_fields(PRODUCT_MODEL),
            PRODUCT_REQUIRED,
            PRODUCT_OPTIONAL,
        )
        for record in self.search_read(
            PRODUCT_MODEL, [("membership", "=", True)], product_fields, progress
        ):
            data.products.append(
                {
                    "id": record["id"],
                    "name": record.get("name"),
                    "list_price": record.get("list_price"),
                    "date_from": record.get("membership_date_from"),
                    "date_to": record.get("membership_date_to"),
                }
            )

        available = self.available_fields(PARTNER_MODEL)
        partner_fields = self._choose_fields(
            PARTNER_MODEL, available, PARTNER_REQUIRED, PARTNER_OPTIONAL
        )
        partner_fields.remove("member_lines")  # used in the domain only
        custom_names = {
            "membership_type": custom.membership_type,
            "start_date": custom.start_date,
            "access_key": custom.access_key,
        }
        custom_fields: dict[str, dict] = {}
        for key, name in custom_names.items():
            label, option = CUSTOM_FIELD_LABELS[key], f"--field-{key.replace('_', '-')}"
            field_type = available.get(name, {}).get("type")
            if name not in available:
                data.warnings.append(
                    Message(
                        gettext_noop(
                            "Odoo's res.partner has no field %(field)s, so no %(label)s is "
                            "imported; give the right field name with %(option)s."
                        ),
                        field=name,
                        label=label,
                        option=option,
                    )
                )
            elif field_type not in CUSTOM_FIELD_TYPES:
                data.warnings.append(
                    Message(
                        gettext_noop(
                            "The field %(field)s of res.partner is of type %(type)s, which holds "
                            "no %(label)s the import can read, so none is imported; give a "
                            "text, date, selection or many2one field with %(option)s."
                        ),
                        field=name,
                        type=field_type,
                        label=label,
                        option=option,
                    )
                )
            else:
                partner_fields.append(name)
                custom_fields[key] = available[name]
        domain = ["|", ("membership_state", "!=", "none"), ("member_lines", "!=", False)]
        if known_partner_ids:
            domain = ["|", *domain, ("id", "in", sorted(known_partner_ids))]
        for record in self.search_read(PARTNER_MODEL, domain, partner_fields, progress):
            parent = record.get("parent_id")
            company = parent[1] if isinstance(parent, list) and len(parent) > 1 else None
            data.partners.append(
                {
                    "id": record["id"],
                    "name": record.get("name"),
                    "email": record.get("email"),
                    "phone": record.get("phone"),
                    "mobile": record.get("mobile"),
                    "is_company": record.get("is_company", False),
                    "company": company or record.get("company_name"),
                    "membership_state": record.get("membership_state"),
                    "membership_start": record.get("membership_start"),
                    "free_member": record.get("free_member", False),
                    "associate_member": record.get("associate_member"),
                    **{
                        key: custom_value(record.get(name), custom_fields.get(key, {}))
                        for key, name in custom_names.items()
                    },
                }
            )

        line_fields = self._choose_fields(
            LINE_MODEL, self.available_fields(LINE_MODEL), LINE_REQUIRED, LINE_OPTIONAL
        )
        for record in self.search_read(LINE_MODEL, [], line_fields, progress):
            data.lines.append(
                {
                    "id": record["id"],
                    "partner": record.get("partner"),
                    "partner_name": record.get("partner"),
                    "product": record.get("membership_id"),
                    "product_name": record.get("membership_id"),
                    "date": record.get("date"),
                    "date_from": record.get("date_from"),
                    "date_to": record.get("date_to"),
                    "date_cancel": record.get("date_cancel"),
                    "state": record.get("state"),
                    "member_price": record.get("member_price"),
                }
            )
        logger.info(
            "Read %s products, %s contacts and %s membership lines from %s",
            len(data.products),
            len(data.partners),
            len(data.lines),
            data.source,
        )
        return data


# --- CSV exports -------------------------------------------------------------------------

# File names the import looks for in the export folder: its own short names first, then
# the names Odoo gives an export ("Contact (res.partner).csv").
CSV_FILES = {
    "contacts": ("contacts.csv", "res_partner.csv", "*(res.partner).csv"),
    "lines": (
        "membership_lines.csv",
        "membership_membership_line.csv",
        "*(membership.membership_line).csv",
    ),
    "products": ("products.csv", "product_product.csv", "*(product.product).csv"),
}

# For each record key, the column headers that may hold it, best first, after
# `header_key` has normalised them ("Partner / ID" becomes "partner/id"). ".id" columns
# hold database ids; "id" columns hold external ids, which may contain the database id.
ID_HEADERS = (".id", "database_id", "id", "external_id")
PRODUCT_HEADERS = {
    "id": ID_HEADERS,
    "name": ("name", "product_name", "display_name"),
    "list_price": ("list_price", "sales_price", "sale_price", "price"),
    "date_from": ("membership_date_from", "membership_start_date"),
    "date_to": ("membership_date_to", "membership_end_date"),
}
PARTNER_HEADERS = {
    "id": ID_HEADERS,
    "name": ("name",),
    # Odoo's display name of a company's contact is "Company, Person".
    "display_name": ("display_name", "complete_name"),
    "email": ("email", "e_mail", "email_normalized"),
    "phone": ("phone",),
    "mobile": ("mobile",),
    "is_company": ("is_company", "is_a_company"),
    "company": (
        "parent_id",
        "related_company",
        "parent_name",
        "company_name",
        "commercial_company_name",
    ),
    # An import-compatible export names the company by its id only.
    "company_ref": (
        "parent_id/.id",
        "parent_id/id",
        "related_company/.id",
        "related_company/database_id",
        "related_company/id",
        "related_company/external_id",
    ),
    "membership_state": (
        "membership_state",
        "current_membership_status",
        "current_membership_state",
        "membership_status",
    ),
    "membership_start": ("membership_start", "membership_start_date"),
    "free_member": ("free_member",),
    "associate_member": (
        "associate_member/.id",
        "associate_member/id",
        "associate_member",
    ),
}
LINE_HEADERS = {
    "id": ID_HEADERS,
    "partner": (
        "partner/.id",
        "partner/database_id",
        "partner/id",
        "partner/external_id",
        "partner_id/.id",
        "partner_id/id",
    ),
    "partner_name": ("partner", "partner_id", "member"),
    "product": (
        "membership_id/.id",
        "membership_id/database_id",
        "membership_id/id",
        "membership_id/external_id",
        "membership/.id",
        "membership/database_id",
        "membership/id",
        "membership/external_id",
    ),
    "product_name": ("membership_id", "membership", "membership_product"),
    "date": ("date", "join_date"),
    "date_from": ("date_from", "from"),
    "date_to": ("date_to", "to"),
    "date_cancel": ("date_cancel", "cancel_date"),
    "state": ("state", "membership_status", "membership_state", "status"),
    "member_price": ("member_price", "membership_fee", "fee"),
}
REQUIRED_HEADERS = {
    "contacts": ("id", "email"),
    "lines": ("id", "partner", "state", "date_from", "date_to", "member_price"),
    "products": ("id", "name"),
}


# Odoo's CSV export puts an apostrophe before a value that starts with one of these
# characters, so that spreadsheets do not read it as a formula.
FORMULA_STARTS = ("=", "-", "+")


def unescape_cell(value: str) -> str:
    """Return a cell of an Odoo CSV export without the apostrophe the export added."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_STARTS:
        return value[1:]
    return value


def header_key(header: str) -> str:
    """Normalise a CSV header: lower case, `/` without spaces around it, `_` between words."""
    key = header.strip().lower()
    key = re.sub(r"\s*/\s*", "/", key)
    return re.sub(r"[\s\-]+", "_", key)


def _custom_headers(technical_name: str) -> tuple[str, ...]:
    """Return the headers a custom field may have: its name, or its label in an export."""
    name = technical_name.strip().lower()
    label = name.removeprefix("x_studio_").removeprefix("x_")
    return (name, label) if label != name else (name,)


def _complete_contacts(partners: list[dict]) -> list[Message]:
    """Fill in the name and company of contacts from the columns an export gave instead.

    A company given by id (`parent_id/id`) is named after that company's row, when the
    file has one. A display name ("Acme Corp, Bob Smith") gives the name without its
    company. Returns warnings about companies that could not be named.
    """
    by_id = {
        parsing.parse_record_id(record.get("id"), "res_partner"): record for record in partners
    }
    unnamed = 0
    for record in partners:
        company_ref = record.pop("company_ref", "")
        if company_ref and not parsing.clean_text(record.get("company")):
            company = by_id.get(parsing.parse_record_id(company_ref, "res_partner"))
            if company is None:
                unnamed += 1
            else:
                record["company"] = parsing.clean_text(
                    company.get("name") or company.get("display_name")
                )
        display_name = parsing.clean_text(record.pop("display_name", ""))
        if display_name and not parsing.clean_text(record.get("name")):
            prefix = f"{parsing.clean_text(record.get('company'))}, "
            if prefix != ", " and display_name.startswith(prefix):
                display_name = display_name.removeprefix(prefix)
            record["name"] = display_name
    if not unnamed:
        return []
    return [
        Message(
            gettext_noop(
                "%(count)d contacts name their company by id only (parent_id/id), and that "
                "company is not in the contacts file, so their company is not imported; add "
                "the Related Company column, which contains the company's name, to the export."
            ),
            count=unnamed,
        )
    ]


class CsvSource:
    """Read CSV files exported from Odoo's list views (contacts, membership lines, products).

    The plain export (headers such as `Email` and `Partner/ID`, state labels such as
    `Paid Member`) works for all three files. Technical headers (`email`, `partner/id`)
    and external ids (`__export__.res_partner_42_0a1b2c3d`) are read too, but Odoo's
    import-compatible export leaves out read-only fields, among them the state and dates
    of membership lines, so the lines file must be a plain export.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise OdooSourceError(
                gettext_noop(
                    "The CSV folder %(folder)r does not exist; give --csv-dir the folder that "
                    "contains the exported files."
                ),
                folder=str(self.directory),
            )

    def describe(self) -> Message:
        return Message(gettext_noop("CSV files in %(folder)s"), folder=self.directory)

    def _find(self, kind: str) -> Path:
        patterns = CSV_FILES[kind]
        for pattern in patterns:
            matches = sorted(self.directory.glob(pattern))
            if len(matches) > 1:
                names = ", ".join(path.name for path in matches)
                raise OdooSourceError(
                    gettext_noop(
                        "%(folder)s contains more than one file of %(kind)s (%(names)s); keep one."
                    ),
                    folder=self.directory,
                    kind=CSV_KIND_LABELS[kind],
                    names=names,
                )
            if matches:
                return matches[0]
        raise OdooSourceError(
            gettext_noop(
                "%(folder)s has no file of %(kind)s; export it from Odoo and save it as "
                "%(pattern)s (also accepted: %(others)s)."
            ),
            folder=self.directory,
            kind=CSV_KIND_LABELS[kind],
            pattern=patterns[0],
            others=", ".join(patterns[1:]),
        )

    def _read(self, kind: str, headers: dict[str, tuple[str, ...]]) -> list[dict]:
        path = self._find(kind)
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                sample = handle.read(4096)
                handle.seek(0)
                try:
                    dialect = csv.Sniffer().sniff(sample, delimiters=",;")
                except csv.Error:
                    dialect = csv.excel
                reader = csv.reader(handle, dialect)
                header_row = next(reader, None)
                if header_row is None:
                    raise OdooSourceError(
                        gettext_noop("%(file)s is empty; export it from Odoo again."),
                        file=path.name,
                    )
                columns = self._map_columns(path, kind, header_row, headers)
                records = []
                for row_number, row in enumerate(reader, start=2):
                    if not any(cell.strip() for cell in row):
                        continue
                    record = {
                        key: unescape_cell(row[index]) if index < len(row) else ""
                        for key, index in columns.items()
                    }
                    record["_row"] = f"{path.name} row {row_number}"
                    records.append(record)
        except UnicodeDecodeError as error:
            raise OdooSourceError(
                gettext_noop(
                    "%(file)s is not UTF-8 text (%(error)s); export it from Odoo again, which "
                    "writes UTF-8."
                ),
                file=path.name,
                error=error,
            ) from None
        except csv.Error as error:
            raise OdooSourceError(
                gettext_noop("%(file)s is not valid CSV: %(error)s"), file=path.name, error=error
            ) from None
        logger.info("Read %s rows from %s", len(records), path)
        return records

    @staticmethod
    def _map_columns(path, kind, header_row, headers) -> dict[str, int]:
        positions = {}
        for index, header in enumerate(header_row):
            positions.setdefault(header_key(header), index)
        columns = {}
        for key, candidates in headers.items():
            for candidate in candidates:
                if candidate in positions:
                    columns[key] = positions[candidate]
                    break
        missing = [key for key in REQUIRED_HEADERS[kind] if key not in columns]
        if kind == "contacts" and "name" not in columns and "display_name" not in columns:
            missing.insert(1, "name")
        if missing:
            expected = "; ".join(
                f"{key}: {' or '.join(headers[key][:3])}" for key in missing if key in headers
            )
            raise OdooSourceError(
                gettext_noop(
                    "%(file)s lacks the columns for %(missing)s (expected %(expected)s); it has "
                    "%(columns)s. Export those fields from Odoo and try again."
                ),
                file=path.name,
                missing=", ".join(missing),
                expected=expected,
                columns=", ".join(header_row),
            )
        return columns

    def fetch(
        self,
        custom: CustomFields,
        progress: Progress | None = None,
        known_partner_ids: list[int] | tuple = (),
    ) -> OdooData:
        """Read the three files; the contacts are the rows of the export, whatever their ids."""
        data = OdooData(source=self.describe())
        partner_headers = {
            **PARTNER_HEADERS,
            "membership_type": _custom_headers(custom.membership_type),
            "start_date": _custom_headers(custom.start_date),
            "access_key": _custom_headers(custom.access_key),
        }
        data.products = self._read("products", PRODUCT_HEADERS)
        data.partners = self._read("contacts", partner_headers)
        data.warnings.extend(_complete_contacts(data.partners))
        data.lines = self._read("lines", LINE_HEADERS)
        for key, option in (
            ("membership_type", "--field-membership-type"),
            ("start_date", "--field-start-date"),
            ("access_key", "--field-access-key"),
        ):
            if data.partners and key not in data.partners[0]:
                data.warnings.append(
                    Message(
                        gettext_noop(
                            "The contacts file has no column for %(label)s (%(headers)s), so "
                            "none is imported; name the field with %(option)s."
                        ),
                        label=CUSTOM_FIELD_LABELS[key],
                        headers=" or ".join(partner_headers[key]),
                        option=option,
                    )
                )
        for model, records in (
            ("product.product", data.products),
            ("res.partner", data.partners),
            ("membership.membership_line", data.lines),
        ):
            if progress:
                progress(model, len(records), len(records))
        return data
