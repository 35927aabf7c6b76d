"""A stand-in for Odoo's external XML-RPC API, served by Python's xmlrpc.server on 127.0.0.1.

It serves the calls of Odoo 16/17 that the import makes, at the same paths:

- `/xmlrpc/2/common`: `version()` and `authenticate(db, login, password, user_agent_env)`,
  which returns the user id, or False for a wrong login;
- `/xmlrpc/2/object`: `execute_kw(db, uid, password, model, method, args, kwargs)` with
  `search_read` (domain, fields, offset, limit, order, context), `search_count` and
  `fields_get` (with each field's type, and a selection field's options).

Records are stored as Odoo returns them: a many2one is `[id, "display name"]`, an empty
value is `False`, one2many fields are lists of ids. Domains support `&`, `|`, `!` and the
operators `=`, `!=`, `in` and `not in`; archived records are left out unless the context
has `active_test: False`. Every `execute_kw` call is recorded in `calls`.
"""

import threading
import xmlrpc.client
from xmlrpc.server import MultiPathXMLRPCServer, SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

COMMON_PATH = "/xmlrpc/2/common"
OBJECT_PATH = "/xmlrpc/2/object"

# Field types of the models the import reads, as Odoo 16/17 with the membership module
# (and the old custom module's x_ fields) reports them in fields_get.
MODEL_FIELDS = {
    "res.partner": {
        "name": "char",
        "email": "char",
        "phone": "char",
        "mobile": "char",
        "is_company": "boolean",
        "parent_id": "many2one",
        "company_name": "char",
        "membership_state": "selection",
        "membership_start": "date",
        "membership_stop": "date",
        "membership_cancel": "date",
        "free_member": "boolean",
        "associate_member": "many2one",
        "member_lines": "one2many",
        "active": "boolean",
        "x_membership_type": "char",
        "x_start_date": "date",
        "x_access_key": "char",
    },
    "membership.membership_line": {
        "partner": "many2one",
        "membership_id": "many2one",
        "date": "date",
        "date_from": "date",
        "date_to": "date",
        "date_cancel": "date",
        "state": "selection",
        "member_price": "float",
        "account_invoice_id": "many2one",
        "company_id": "many2one",
    },
    "product.product": {
        "name": "char",
        "list_price": "float",
        "membership": "boolean",
        "membership_date_from": "date",
        "membership_date_to": "date",
        "active": "boolean",
        "detailed_type": "selection",
    },
}

# one2many fields: (model, field) -> (model of the lines, many2one field back to the record)
ONE2MANY = {("res.partner", "member_lines"): ("membership.membership_line", "partner")}


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = (COMMON_PATH, OBJECT_PATH)


def _fault(message: str) -> xmlrpc.client.Fault:
    """Return a fault shaped like Odoo's: a traceback whose last line contains the error."""
    return xmlrpc.client.Fault(
        1, f'Traceback (most recent call last):\n  File "odoo/http.py"\n{message}\n'
    )


class FakeOdoo:
    def __init__(
        self,
        *,
        database: str = "cpr",
        login: str = "admin@example.com",
        password: str = "correct-password",  # noqa: S107
        uid: int = 2,
        version: str = "17.0",
    ):
        self.database = database
        self.login = login
        self.password = password
        self.uid = uid
        self.version = version
        self.fields = {model: dict(fields) for model, fields in MODEL_FIELDS.items()}
        self.selections: dict[tuple[str, str], list[list[str]]] = {}
        self.records: dict[str, dict[int, dict]] = {model: {} for model in MODEL_FIELDS}
        self.calls: list[tuple[str, str, dict]] = []
        self._server = None
        self._thread = None

    # Data ------------------------------------------------------------------------------

    def load(self, dataset) -> None:
        """Store the records of a `tests.odoo_import.dataset.Dataset`."""
        for model, records in (
            ("product.product", dataset.products),
            ("res.partner", dataset.partners),
            ("membership.membership_line", dataset.lines),
        ):
            for record in records:
                self.records[model][record["id"]] = dict(record)

    def update(self, model: str, record_id: int, **values) -> None:
        self.records[model][record_id].update(values)

    def set_field(self, model: str, name: str, field_type: str, selection=None) -> None:
        """Give a field another type, and a selection field its options as [key, label]."""
        self.fields[model][name] = field_type
        if selection is not None:
            self.selections[model, name] = [list(option) for option in selection]

    def remove_field(self, model: str, name: str) -> None:
        """Make the database lack a field, as one without the custom module does."""
        del self.fields[model][name]
        for record in self.records[model].values():
            record.pop(name, None)

    # Server ----------------------------------------------------------------------------

    def start(self) -> str:
        server = MultiPathXMLRPCServer(
            ("127.0.0.1", 0), requestHandler=_Handler, logRequests=False, allow_none=False
        )
        common = SimpleXMLRPCDispatcher(allow_none=False, encoding=None)
        common.register_function(self._version, "version")
        common.register_function(self._authenticate, "authenticate")
        objects = SimpleXMLRPCDispatcher(allow_none=False, encoding=None)
        objects.register_function(self._execute_kw, "execute_kw")
        server.add_dispatcher(COMMON_PATH, common)
        server.add_dispatcher(OBJECT_PATH, objects)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    # common ----------------------------------------------------------------------------

    def _version(self):
        return {
            "server_version": self.version,
            "server_version_info": [int(self.version.split(".")[0]), 0, 0, "final", 0, ""],
            "server_serie": self.version,
            "protocol_version": 1,
        }

    def _authenticate(self, database, login, password, user_agent_env):
        if database != self.database:
            raise _fault(
                "psycopg2.OperationalError: connection to server failed: "
                f'FATAL:  database "{database}" does not exist'
            )
        if login == self.login and password == self.password:
            return self.uid
        return False

    # object ----------------------------------------------------------------------------

    def _execute_kw(self, database, uid, password, model, method, args, kwargs=None):
        kwargs = kwargs or {}
        if database != self.database or uid != self.uid or password != self.password:
            raise _fault("odoo.exceptions.AccessDenied: Access Denied")
        if model not in self.fields:
            raise _fault(f"KeyError: '{model}'")
        self.calls.append((model, method, {"args": args, **kwargs}))
        if method == "fields_get":
            return self._fields_get(model, kwargs.get("attributes"))
        if method == "search_count":
            domain = args[0] if args else kwargs.get("domain", [])
            return len(self._search(model, domain, kwargs.get("context", {})))
        if method == "search_read":
            return self._search_read(model, args, kwargs)
        raise _fault(f"AttributeError: The method '{model}.{method}' does not exist")

    def _fields_get(self, model, attributes):
        result = {}
        for name, field_type in self.fields[model].items():
            description = {"type": field_type, "string": name.replace("_", " ").title()}
            if (model, name) in self.selections:
                description["selection"] = self.selections[model, name]
            if attributes:
                description = {key: description[key] for key in attributes if key in description}
            result[name] = description
        result["id"] = {"type": "integer"}
        return result

    def _search_read(self, model, args, kwargs):
        domain = args[0] if args else kwargs.get("domain", [])
        fields = kwargs.get("fields") or list(self.fields[model])
        for name in fields:
            self._check_field(model, name)
        records = self._search(model, domain, kwargs.get("context", {}))
        order = kwargs.get("order") or "id"
        if order.split()[0] != "id":
            raise _fault(f"ValueError: this stand-in sorts by id only, not {order!r}")
        records.sort(key=lambda record: record["id"], reverse=order.endswith("desc"))
        offset = kwargs.get("offset", 0)
        limit = kwargs.get("limit")
        page = records[offset : offset + limit] if limit else records[offset:]
        return [
            {"id": record["id"], **{name: self._value(model, record, name) for name in fields}}
            for record in page
        ]

    def _check_field(self, model, name):
        if name != "id" and name not in self.fields[model]:
            raise _fault(f"ValueError: Invalid field '{name}' on model '{model}'")

    def _value(self, model, record, name):
        if (model, name) in ONE2MANY:
            line_model, back = ONE2MANY[model, name]
            return sorted(
                line["id"]
                for line in self.records[line_model].values()
                if isinstance(line.get(back), list) and line[back][0] == record["id"]
            )
        return record.get(name, False)

    def _search(self, model, domain, context):
        records = list(self.records[model].values())
        mentions_active = any(
            isinstance(leaf, list | tuple) and leaf[0] == "active" for leaf in domain
        )
        active_test = context.get("active_test", True)
        if "active" in self.fields[model] and active_test and not mentions_active:
            records = [record for record in records if record.get("active", True)]
        return [record for record in records if self._matches(model, record, list(domain))]

    def _matches(self, model, record, domain) -> bool:
        if not domain:
            return True
        stack = []
        for item in reversed(domain):
            if item == "!":
                stack.append(not stack.pop())
            elif item in ("&", "|"):
                first, second = stack.pop(), stack.pop()
                stack.append(first and second if item == "&" else first or second)
            else:
                stack.append(self._leaf(model, record, item))
        return all(stack)

    def _leaf(self, model, record, leaf) -> bool:
        name, operator, expected = leaf
        if name == "id":
            value = record["id"]
        else:
            self._check_field(model, name)
            value = self._value(model, record, name)
        if isinstance(value, list) and self.fields[model].get(name) == "many2one":
            value = value[0]
        if isinstance(value, list):  # one2many: compare its emptiness with False
            value = value or False
        if operator == "=":
            return value == expected
        if operator == "!=":
            return value != expected
        if operator == "in":
            return value in expected
        if operator == "not in":
            return value not in expected
        raise _fault(f"ValueError: this stand-in has no domain operator {operator!r}")
