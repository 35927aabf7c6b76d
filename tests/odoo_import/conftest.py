"""Fixtures of the Odoo import tests.

- `odoo`: a `FakeOdoo` XML-RPC server on 127.0.0.1, with ODOO_URL, ODOO_DB, ODOO_USERNAME
  and ODOO_PASSWORD pointing at it.
- `dataset`: an empty `Dataset` whose "today" is the clock's.
- `import_odoo`: runs the command and returns (exit status, stdout, stderr).
- `no_side_effects` (used by every test here): an access backend and a payment gateway
  that fail the test when called, a receiver that fails it when a membership change is
  announced, and a check that no email was sent.
- `portal`: a context manager for a test that acts in the portal between two imports,
  such as a cancellation or a payment. The action runs with its after-commit work (key
  sync, emails), and those effects are then forgotten, so that only the import's count.
"""

import io
from contextlib import contextmanager

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from access.backends import get_backend
from access.backends.base import AccessBackend
from billing.gateways import get_gateway
from billing.gateways.base import PaymentGateway
from members.events import membership_changed
from tests.billing.conftest import clock  # noqa: F401

from .dataset import Dataset
from .fake_odoo import FakeOdoo


class ForbiddenBackend(AccessBackend):
    """An access backend that records, and rejects, every call: the import must make none."""

    name = "forbidden"
    calls: list = []

    def _reject(self, method, **kwargs):
        self.calls.append((method, kwargs))
        raise AssertionError(f"the Odoo import called the access backend: {method}({kwargs})")

    def ensure_user(self, **kwargs):
        self._reject("ensure_user", **kwargs)

    def grant_access(self, **kwargs):
        self._reject("grant_access", **kwargs)

    def remove_access(self, **kwargs):
        self._reject("remove_access", **kwargs)

    def assign_credential(self, **kwargs):
        self._reject("assign_credential", **kwargs)

    def cancel_credential(self, **kwargs):
        self._reject("cancel_credential", **kwargs)

    def suspend(self, **kwargs):
        self._reject("suspend", **kwargs)

    def restore(self, **kwargs):
        self._reject("restore", **kwargs)

    def list_users(self):
        self._reject("list_users")

    def health_check(self):
        self._reject("health_check")


class ForbiddenGateway(PaymentGateway):
    """A payment gateway that records, and rejects, every call: the import must make none."""

    name = "forbidden"
    calls: list = []

    def _reject(self, method, **kwargs):
        self.calls.append((method, kwargs))
        raise AssertionError(f"the Odoo import called the payment gateway: {method}")

    def ensure_customer(self, **kwargs):
        self._reject("ensure_customer", **kwargs)

    def start_payment(self, **kwargs):
        self._reject("start_payment", **kwargs)

    def open_self_service(self, **kwargs):
        self._reject("open_self_service", **kwargs)

    def schedule_cancellation(self, **kwargs):
        self._reject("schedule_cancellation", **kwargs)

    def add_invoice_item(self, **kwargs):
        self._reject("add_invoice_item", **kwargs)

    def remove_invoice_item(self, **kwargs):
        self._reject("remove_invoice_item", **kwargs)

    def verify_webhook(self, **kwargs):
        self._reject("verify_webhook", **kwargs)

    def normalize_event(self, **kwargs):
        self._reject("normalize_event", **kwargs)


class SideEffects:
    """What the outside world saw: backend and gateway calls, announcements, emails."""

    def __init__(self, backend, gateway):
        self.backend = backend
        self.gateway = gateway
        self.announced: list[int] = []

    def record(self, sender, membership_id, **kwargs):
        self.announced.append(membership_id)

    def reset(self) -> None:
        self.backend.calls.clear()
        self.gateway.calls.clear()
        self.announced.clear()
        mail.outbox.clear()


@pytest.fixture(autouse=True)
def no_side_effects(settings):
    settings.ACCESS_BACKEND = "tests.odoo_import.conftest.ForbiddenBackend"
    settings.PAYMENT_GATEWAY = "tests.odoo_import.conftest.ForbiddenGateway"
    effects = SideEffects(get_backend(), get_gateway())
    effects.reset()
    membership_changed.connect(effects.record, dispatch_uid="odoo-import-tests")
    yield effects
    membership_changed.disconnect(dispatch_uid="odoo-import-tests")
    assert effects.backend.calls == []
    assert effects.gateway.calls == []
    assert effects.announced == []
    assert mail.outbox == []


@pytest.fixture
def portal(no_side_effects, django_capture_on_commit_callbacks):
    @contextmanager
    def act():
        with django_capture_on_commit_callbacks(execute=True):
            yield
        no_side_effects.reset()

    return act


@pytest.fixture
def odoo(monkeypatch):
    server = FakeOdoo()
    url = server.start()
    monkeypatch.setenv("ODOO_URL", url)
    monkeypatch.setenv("ODOO_DB", server.database)
    monkeypatch.setenv("ODOO_USERNAME", server.login)
    monkeypatch.setenv("ODOO_PASSWORD", server.password)
    yield server
    server.stop()


@pytest.fixture
def dataset(clock):  # noqa: F811
    return Dataset(today=clock.today)


@pytest.fixture
def import_odoo():
    """Return a function that runs import_odoo and returns (exit status, stdout, stderr)."""

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("import_odoo", *args, stdout=out, stderr=err, no_color=True)
        except CommandError as error:
            err.write(f"CommandError: {error}\n")
            return error.returncode, out.getvalue(), err.getvalue()
        return 0, out.getvalue(), err.getvalue()

    return run
