"""Running the import again: what changed in Odoo comes over, what changed in the portal stays."""

import datetime
from decimal import Decimal

import pytest

from access import services as access_services
from access.models import AccessKey
from billing import services as billing_services
from billing.models import Payment
from members import services as members_services
from members.models import Member, Membership
from tests.factories import UserFactory

from .helpers import counts_of, snapshot, summary

pytestmark = pytest.mark.django_db

State = Membership.State
D = datetime.date
LINE = "membership.membership_line"


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


def paid_member(dataset, name="Pedro Paid", email="pedro@example.com", key="FOB0001"):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner(name, email, phone="787-555-0100", access_key=key)
    line = dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 12, 31), price=3000)
    return partner, line


def cancel_in_portal(portal, staff, membership):
    """Cancel `membership` at once, as staff do in the back office."""
    with portal():
        members_services.cancel_membership(
            membership=membership, actor=staff, reason="moved away", immediately=True
        )


def test_rerun_keeps_portal_cancellation(odoo, dataset, import_odoo, hot_desk, portal, staff):
    partner, line = paid_member(dataset)
    odoo.load(dataset)
    import_odoo()
    membership = Membership.objects.get()
    cancel_in_portal(portal, staff, membership)
    key = AccessKey.objects.get()
    assert key.status == AccessKey.Status.REVOKED

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.end_date is not None
    key.refresh_from_db()
    assert (key.status, key.wanted_state) == (AccessKey.Status.REVOKED, AccessKey.Wanted.REVOKED)
    assert "→ active" not in out
    assert counts_of(out, "membership") == (0, 0, 1, 0, 0)
    assert counts_of(out, "key")[:2] == (0, 0)


def test_rerun_odoo_change_keeps_portal_state(odoo, dataset, import_odoo, hot_desk, portal, staff):
    """Odoo changes the fee of a line that staff cancelled: the fee comes, the state stays."""
    partner, line = paid_member(dataset)
    odoo.load(dataset)
    import_odoo()
    membership = Membership.objects.get()
    cancel_in_portal(portal, staff, membership)
    odoo.update(LINE, line["id"], member_price=3600.0, date_cancel="2025-06-30")

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.monthly_price == Decimal("300.00")
    assert membership.cancel_at is None  # set with the state, which the portal changed
    assert f"update   membership line {line['id']}" in out
    assert "kept portal change: cancel_at" in out


def test_state_machine_refuses_cancelled_to_active(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Ana Vélez", "ana@example.com", access_key="FOB-2")
    line = dataset.line(partner, product, "canceled", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    import_odoo()
    membership = Membership.objects.get()
    assert membership.state == State.CANCELLED
    odoo.update(LINE, line["id"], state="paid")

    status, out, _err = import_odoo()

    assert status == 0
    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert "the portal does not move a cancelled membership to active" in out
    assert counts_of(out, "membership") == (0, 0, 0, 1, 0)
    assert not AccessKey.objects.exists()


def test_rerun_keeps_manual_payment(odoo, dataset, import_odoo, hot_desk, portal, staff, clock):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com", access_key="FOB-3")
    dataset.line(partner, product, "invoiced", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    import_odoo()
    membership = Membership.objects.get()
    assert membership.state == State.PAST_DUE
    with portal():
        billing_services.record_manual_payment(
            membership=membership,
            amount=Decimal("250.00"),
            method=Payment.Method.CASH,
            reference="",
            received_at=clock.today,
            actor=staff,
        )
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    assert "→ past_due" not in out
    assert AccessKey.objects.get().wanted_state == AccessKey.Wanted.ACTIVE


def test_rerun_keeps_portal_edits_of_member(odoo, dataset, import_odoo, hot_desk, staff):
    partner, _line = paid_member(dataset, name="Paid Person")
    odoo.load(dataset)
    import_odoo()
    member = Member.objects.get()
    member.first_name = "Pedro"
    member.save()
    members_services.update_member_profile(
        member=member,
        actor=None,
        phone="787-555-0111",
        company="",
        bio="",
        directory_opt_in=False,
    )

    status, out, _err = import_odoo()
    assert status == 0
    member.refresh_from_db()
    assert (member.first_name, member.phone) == ("Pedro", "787-555-0111")
    assert counts_of(out, "member") == (0, 0, 1, 0, 0)

    # Odoo changes the name and the company: the company comes over, the name stays.
    odoo.update("res.partner", partner["id"], name="Pablo Person", company_name="Acme")
    _status, dry_out, _err = import_odoo("--dry-run")
    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    member.refresh_from_db()
    assert (member.first_name, member.phone, member.company) == ("Pedro", "787-555-0111", "Acme")
    assert "kept portal change: first_name Pedro (Odoo now Pablo)" in out
    assert counts_of(out, "member") == (0, 1, 0, 0, 0)
    assert summary(dry_out) == summary(out)

    before = snapshot()
    status, out, _err = import_odoo()
    assert snapshot() == before
    assert counts_of(out, "member") == (0, 0, 0, 1, 0)  # the kept name, reported again


def test_import_does_not_reactivate_revoked_key(
    odoo, dataset, import_odoo, hot_desk, portal, staff
):
    partner, line = paid_member(dataset)
    odoo.load(dataset)
    import_odoo()
    cancel_in_portal(portal, staff, Membership.objects.get())
    # A new line in Odoo gives the member a new current membership.
    odoo.update(LINE, line["id"], date_to="2025-01-14", state="old")
    renewal = dataset.line(partner, dataset.products[0], "paid", D(2025, 1, 15), D(2025, 2, 14))
    odoo.load(dataset)

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    current = Membership.objects.get(odoo_ref__endswith=f",{renewal['id']}")
    assert current.state == State.ACTIVE
    key = AccessKey.objects.get()
    assert key.status == AccessKey.Status.REVOKED
    assert "key FOB0001: kept portal change: the portal made it revoked" in out


def test_import_key_follows_membership_it_made(odoo, dataset, import_odoo, hot_desk, clock):
    """A key the import recorded as suspended (pending) opens once Odoo marks the line paid."""
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Luis Soto", "luis@example.com", access_key="FOB-4")
    line = dataset.line(partner, product, "waiting", D(2025, 2, 1), D(2025, 2, 28))
    odoo.load(dataset)
    import_odoo()
    key = AccessKey.objects.get()
    assert key.wanted_state == AccessKey.Wanted.SUSPENDED
    clock.today = D(2025, 2, 1)
    odoo.update(LINE, line["id"], state="paid")

    status, out, _err = import_odoo()

    assert status == 0
    assert Membership.objects.get().state == State.ACTIVE
    key.refresh_from_db()
    assert (key.status, key.wanted_state) == (AccessKey.Status.ACTIVE, AccessKey.Wanted.ACTIVE)
    assert key.sync_status == AccessKey.Sync.PENDING


def test_portal_suspended_key_stays(odoo, dataset, import_odoo, hot_desk, portal, staff, clock):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Luis Soto", "luis@example.com", access_key="FOB-5")
    line = dataset.line(partner, product, "invoiced", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    import_odoo()
    key = AccessKey.objects.get()
    with portal():
        access_services.suspend_key(key=key, actor=staff, reason="lost badge reported")
    odoo.update(LINE, line["id"], state="paid")

    status, _out, _err = import_odoo()

    assert status == 0
    assert Membership.objects.get().state == State.ACTIVE
    key.refresh_from_db()
    assert key.status == AccessKey.Status.SUSPENDED
    assert key.staff_hold
