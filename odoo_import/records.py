"""The Odoo records as the import uses them, and the report of what it did with each.

`prepare` parses the raw records of a source into `Product`, `Partner` and `Line`
objects and links each line to its partner and product. A record with a value that
cannot be parsed, or that cannot be linked, is reported as a conflict and left out. The
other records go on to the import.
"""

import datetime
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import getaddresses

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_noop, pgettext_lazy

from cpr_portal.messages import Message, MessageError
from members.models import Member
from members.services import normalize_email

from . import parsing
from .sources import OdooData

logger = logging.getLogger(__name__)

ENTITIES = ("plan", "member", "membership", "key")
VERBS = ("created", "updated", "unchanged", "skipped", "conflict")
# The largest amount a price column (10 digits, 2 of them decimal) can hold.
MAX_PRICE = Decimal("99999999.99")


@dataclass(frozen=True)
class Outcome:
    """The result of the import for one record: the entity, the verb, the Odoo record and why."""

    entity: str
    verb: str
    ref: str
    detail: str | Message  # English in str(), translated by the command that prints it


# Words for the stored values that outcome details name, in the operator's language.
# Both nouns they describe, membresía and llave, are feminine in Spanish.
STATE_WORDS = {
    "pending": pgettext_lazy("Odoo import: state of a membership or key", "pending"),
    "active": pgettext_lazy("Odoo import: state of a membership or key", "active"),
    "past_due": pgettext_lazy("Odoo import: state of a membership or key", "past due"),
    "suspended": pgettext_lazy("Odoo import: state of a membership or key", "suspended"),
    "cancelled": pgettext_lazy("Odoo import: state of a membership or key", "cancelled"),
    "ended": pgettext_lazy("Odoo import: state of a membership or key", "ended"),
    "revoked": pgettext_lazy("Odoo import: state of a membership or key", "revoked"),
    "lost": pgettext_lazy("Odoo import: state of a membership or key", "lost"),
    "returned": pgettext_lazy("Odoo import: state of a membership or key", "returned"),
}
KIND_WORDS = {
    "fob": pgettext_lazy("Odoo import: kind of access key", "fob"),
    "card": pgettext_lazy("Odoo import: kind of access key", "card"),
    "mobile": pgettext_lazy("Odoo import: kind of access key", "mobile key"),
}


class Word(Message):
    """A stored value named in an outcome detail: as stored in English, else its word."""

    __slots__ = ("words",)

    def __init__(self, value, words: dict):
        super().__init__(str(value))
        self.words = words

    def render(self, *, translate: bool) -> str:
        word = self.words.get(self.text) if translate else None
        return self.text if word is None else str(word)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Word):
            return NotImplemented
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


def state_word(value) -> Word:
    return Word(value, STATE_WORDS)


def kind_word(value) -> Word:
    return Word(value, KIND_WORDS)


class ImportReport:
    """Counts of outcomes per entity and verb, and every outcome in the order it happened.

    `listener` is called with each outcome as it is added, so that a command can print
    it at once.
    """

    def __init__(self, listener: Callable[[Outcome], None] | None = None):
        self.counts: Counter = Counter()
        self.outcomes: list[Outcome] = []
        self.warnings: list = []  # Messages of the source (see OdooData.warnings)
        self.listener = listener

    def add(self, entity: str, verb: str, ref: str, detail: str | Message) -> None:
        self.extend([Outcome(entity, verb, ref, detail)])

    def extend(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.counts[outcome.entity, outcome.verb] += 1
            self.outcomes.append(outcome)
            if outcome.verb == "conflict":
                logger.warning(
                    "Odoo import conflict on %s (%s): %s",
                    outcome.ref,
                    outcome.entity,
                    outcome.detail,
                )
            if self.listener:
                self.listener(outcome)

    def count(self, entity: str, verb: str) -> int:
        return self.counts[entity, verb]

    @property
    def conflicts(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.verb == "conflict"]


@dataclass
class Product:
    key: int | str
    name: str
    list_price: Decimal
    months: int | None

    @property
    def ref(self) -> str:
        return f"product {self.key}"


@dataclass
class Line:
    odoo_id: int
    partner_id: int
    product: Product
    state: str
    start: datetime.date
    last_day: datetime.date | None
    cancel_date: datetime.date | None
    price: Decimal

    @property
    def ref(self) -> str:
        return f"line {self.odoo_id}"

    @property
    def odoo_ref(self) -> str:
        return f"membership.membership_line,{self.odoo_id}"


@dataclass
class Partner:
    odoo_id: int
    name: str
    first_name: str
    last_name: str
    email: str
    phone: str
    company: str
    state: str
    membership_start: datetime.date | None
    free: bool
    associate_id: int | str | None
    membership_type: str
    start_date: datetime.date | None
    access_key: str
    lines: list[Line] = field(default_factory=list)
    # The lines of this contact that were reported and left out.
    left_out_lines: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"partner {self.odoo_id}"


@dataclass
class Prepared:
    products: list[Product]
    partners: list[Partner]


class RecordError(MessageError, ValueError):
    """A record cannot be imported; the message states why and what to fix.

    Raise it with an English text marked with gettext_noop, as MessageError takes it.
    """


def _where(raw: dict, kind: str, table: str) -> str:
    """Return how to name a record in a report: by its Odoo id, else by its CSV row."""
    odoo_id = parsing.parse_record_id(raw.get("id"), table)
    if isinstance(odoo_id, int) or not raw.get("_row"):
        return f"{kind} {odoo_id}"
    return raw["_row"]


def _parse(parser, raw: dict, key: str, *args):
    try:
        return parser(raw.get(key), *args)
    except ValueError as error:
        raise RecordError(
            gettext_noop("%(field)s: %(error)s"),
            field=key.replace("_", " "),
            error=getattr(error, "message", None) or str(error),
        ) from None


# --- Products ----------------------------------------------------------------------------


def _prepare_product(raw: dict) -> Product:
    key = parsing.parse_record_id(raw.get("id"), "product_product")
    if key is None:
        raise RecordError(gettext_noop("the row has no product id"))
    name = parsing.clean_text(raw.get("name"))
    if not name:
        raise RecordError(gettext_noop("the product has no name"))
    if len(name) > 100:
        raise RecordError(
            gettext_noop("the name %(name)r is longer than 100 characters, the maximum for a plan"),
            name=name,
        )
    list_price = _parse(parsing.parse_money, raw, "list_price") or Decimal("0.00")
    if list_price < 0 or list_price > MAX_PRICE:
        raise RecordError(
            gettext_noop("the list price %(price)s is not between 0 and %(maximum)s"),
            price=list_price,
            maximum=MAX_PRICE,
        )
    date_from = _parse(parsing.parse_date, raw, "date_from")
    date_to = _parse(parsing.parse_date, raw, "date_to")
    months = None
    if date_from and date_to and date_to >= date_from:
        months = parsing.months_covered(date_from, date_to)
    return Product(key=key, name=name, list_price=list_price, months=months)


def _prepare_products(data: OdooData, report: ImportReport) -> tuple[dict, set]:
    """Return the importable products by id, and the ids of products left out."""
    products: dict[int | str, Product] = {}
    left_out: set = set()
    for raw in data.products:
        where = _where(raw, "product", "product_product")
        try:
            product = _prepare_product(raw)
        except RecordError as error:
            report.add("plan", "conflict", where, error.message)
            left_out.add(parsing.parse_record_id(raw.get("id"), "product_product"))
            continue
        if product.key in products:
            report.add(
                "plan",
                "conflict",
                product.ref,
                Message(gettext_noop("the product appears twice in the source")),
            )
            continue
        products[product.key] = product
    return products, left_out


# --- Partners ----------------------------------------------------------------------------


def _prepare_email(raw_email) -> str:
    text = parsing.clean_text(raw_email)
    if not text:
        raise RecordError(gettext_noop("the contact has no email address; add one in Odoo"))
    addresses = [address for _name, address in getaddresses([text]) if address]
    if len(addresses) != 1:
        raise RecordError(
            gettext_noop(
                "the email %(email)r is not one address; keep a single address on the contact"
            ),
            email=text,
        )
    email = normalize_email(addresses[0])
    try:
        validate_email(email)
    except ValidationError:
        raise RecordError(
            gettext_noop("the email %(email)r is not a valid address; correct it in Odoo"),
            email=text,
        ) from None
    if len(email) > Member._meta.get_field("email").max_length:
        raise RecordError(
            gettext_noop("the email %(email)r is longer than 254 characters"), email=email
        )
    return email


def _check_length(value: str, field_name: str, label: str) -> str:
    limit = Member._meta.get_field(field_name).max_length
    if len(value) > limit:
        raise RecordError(
            gettext_noop(
                "the %(label)s %(value)r is %(length)d characters long; the portal keeps at "
                "most %(limit)d, so shorten it in Odoo"
            ),
            label=Message(label),
            value=value,
            length=len(value),
            limit=limit,
        )
    return value


def _prepare_partner(raw: dict) -> Partner:
    odoo_id = parsing.parse_record_id(raw.get("id"), "res_partner")
    if not isinstance(odoo_id, int):
        raise RecordError(
            gettext_noop(
                "the contact id %(id)r contains no database id; export the ID column "
                "(or an import-compatible export) from Odoo"
            ),
            id=raw.get("id"),
        )
    name = parsing.clean_text(raw.get("name"))
    if not name:
        raise RecordError(gettext_noop("the contact has no name; add one in Odoo"))
    is_company = _parse(parsing.parse_bool, raw, "is_company")
    if is_company:
        first_name, last_name, company = name, "", name
    else:
        first_name, last_name = parsing.split_name(name)
        company = parsing.many2one_name(raw.get("company"))
    phone = parsing.clean_text(raw.get("phone")) or parsing.clean_text(raw.get("mobile"))
    return Partner(
        odoo_id=odoo_id,
        name=name,
        first_name=_check_length(first_name, "first_name", gettext_noop("first name")),
        last_name=_check_length(last_name, "last_name", gettext_noop("last name")),
        email=_prepare_email(raw.get("email")),
        phone=_check_length(phone, "phone", gettext_noop("phone number")),
        company=_check_length(company, "company", gettext_noop("company")),
        state=_parse(parsing.parse_state, raw, "membership_state"),
        membership_start=_parse(parsing.parse_date, raw, "membership_start"),
        free=_parse(parsing.parse_bool, raw, "free_member"),
        associate_id=parsing.parse_record_id(raw.get("associate_member"), "res_partner"),
        membership_type=parsing.clean_text(raw.get("membership_type")),
        start_date=_parse(parsing.parse_date, raw, "start_date"),
        access_key=parsing.clean_text(raw.get("access_key")),
    )


def _prepare_partners(data: OdooData, report: ImportReport) -> tuple[dict, set]:
    """Return the importable partners by id, and the ids of partners left out."""
    partners: dict[int, Partner] = {}
    left_out: set = set()
    for raw in data.partners:
        where = _where(raw, "partner", "res_partner")
        try:
            partner = _prepare_partner(raw)
        except RecordError as error:
            report.add("member", "conflict", where, error.message)
            left_out.add(parsing.parse_record_id(raw.get("id"), "res_partner"))
            continue
        if partner.odoo_id in partners:
            report.add(
                "member",
                "conflict",
                partner.ref,
                Message(gettext_noop("the contact appears twice in the source")),
            )
            continue
        partners[partner.odoo_id] = partner

    by_email = defaultdict(list)
    for partner in partners.values():
        by_email[partner.email.lower()].append(partner)
    for email, sharing in by_email.items():
        if len(sharing) < 2:
            continue
        ids = ", ".join(str(partner.odoo_id) for partner in sharing)
        for partner in sharing:
            report.add(
                "member",
                "conflict",
                partner.ref,
                Message(
                    gettext_noop(
                        "partners %(ids)s share the email %(email)s; merge them in Odoo or give "
                        "each its own email"
                    ),
                    ids=ids,
                    email=email,
                ),
            )
            del partners[partner.odoo_id]
            left_out.add(partner.odoo_id)
    return partners, left_out


# --- Membership lines ---------------------------------------------------------------------


def _find_product(raw: dict, products: dict) -> Product | None:
    """Find the line's product by id, else by name, with or without its internal reference."""
    key = parsing.parse_record_id(raw.get("product"), "product_product")
    if key in products:
        return products[key]
    name = parsing.product_name(parsing.many2one_name(raw.get("product_name"))).lower()
    if name:
        named = [
            product
            for product in products.values()
            if parsing.product_name(product.name).lower() == name
        ]
        if len(named) == 1:
            return named[0]
    return None


def _prepare_line(raw: dict, odoo_id: int, partner_id: int, product: Product) -> Line:
    state = _parse(parsing.parse_state, raw, "state")
    date_from = _parse(parsing.parse_date, raw, "date_from")
    joined = _parse(parsing.parse_date, raw, "date")
    last_day = _parse(parsing.parse_date, raw, "date_to")
    cancel_date = _parse(parsing.parse_date, raw, "date_cancel")
    price = _parse(parsing.parse_money, raw, "member_price")
    start = date_from or joined
    if start is None:
        raise RecordError(
            gettext_noop("the line has no start date (date_from or date); set one in Odoo")
        )
    if last_day is not None and last_day < start:
        raise RecordError(
            gettext_noop("the line ends on %(end)s, before it starts on %(start)s"),
            end=last_day,
            start=start,
        )
    if price is None:
        raise RecordError(gettext_noop("the line has no membership fee (member_price)"))
    if price < 0 or price > MAX_PRICE:
        raise RecordError(
            gettext_noop("the membership fee %(price)s is not between 0 and %(maximum)s"),
            price=price,
            maximum=MAX_PRICE,
        )
    return Line(
        odoo_id=odoo_id,
        partner_id=partner_id,
        product=product,
        state=state,
        start=start,
        last_day=last_day,
        cancel_date=cancel_date,
        price=price,
    )


def _attach_lines(
    data: OdooData,
    products: dict,
    products_left_out: set,
    partners: dict,
    partners_left_out: set,
    report: ImportReport,
) -> None:
    seen: set[int] = set()
    for raw in data.lines:
        odoo_id = parsing.parse_record_id(raw.get("id"), "membership_membership_line")
        where = _where(raw, "line", "membership_membership_line")
        if not isinstance(odoo_id, int):
            report.add(
                "membership",
                "conflict",
                where,
                Message(
                    gettext_noop(
                        "the line id %(id)r contains no database id; export the ID column "
                        "(or an import-compatible export) from Odoo"
                    ),
                    id=raw.get("id"),
                ),
            )
            continue
        if odoo_id in seen:
            report.add(
                "membership",
                "conflict",
                where,
                Message(gettext_noop("the line appears twice in the source")),
            )
            continue
        seen.add(odoo_id)

        partner_id = parsing.parse_record_id(raw.get("partner"), "res_partner")
        if partner_id is None:
            report.add(
                "membership", "conflict", where, Message(gettext_noop("the line has no partner"))
            )
            continue
        if partner_id in partners_left_out:
            report.add(
                "membership",
                "skipped",
                where,
                Message(
                    gettext_noop(
                        "its partner %(id)s is not imported (see the conflict on that partner)"
                    ),
                    id=partner_id,
                ),
            )
            continue
        if partner_id not in partners:
            report.add(
                "membership",
                "conflict",
                where,
                Message(
                    gettext_noop("its partner %(id)s is not among the contacts read from Odoo"),
                    id=partner_id,
                ),
            )
            continue

        product = _find_product(raw, products)
        if product is None:
            product_key = parsing.parse_record_id(raw.get("product"), "product_product")
            name = parsing.many2one_name(raw.get("product_name"))
            described = f"{product_key} ({name})" if name else f"{product_key}"
            if product_key is not None and product_key in products_left_out:
                reason = Message(
                    gettext_noop(
                        "its product %(product)s is not imported (see the conflict on it)"
                    ),
                    product=described,
                )
                report.add("membership", "skipped", where, reason)
            else:
                reason = Message(
                    gettext_noop(
                        "its product %(product)s is not a membership product read from Odoo"
                    ),
                    product=described,
                )
                report.add("membership", "conflict", where, reason)
            partners[partner_id].left_out_lines.append(where)
            continue

        try:
            line = _prepare_line(raw, odoo_id, partner_id, product)
        except RecordError as error:
            report.add("membership", "conflict", where, error.message)
            partners[partner_id].left_out_lines.append(where)
            continue
        partners[partner_id].lines.append(line)


def prepare(data: OdooData, report: ImportReport) -> Prepared:
    """Parse and link the source's records, reporting every record that cannot be used."""
    products, products_left_out = _prepare_products(data, report)
    partners, partners_left_out = _prepare_partners(data, report)
    _attach_lines(data, products, products_left_out, partners, partners_left_out, report)
    for partner in partners.values():
        partner.lines.sort(key=lambda line: (line.start, line.odoo_id))
    return Prepared(
        products=list(products.values()),
        partners=sorted(partners.values(), key=lambda partner: partner.odoo_id),
    )
