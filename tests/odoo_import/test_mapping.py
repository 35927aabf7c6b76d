"""How Odoo lines map to memberships over time: old debts, prepaid renewals, plans."""

import datetime
from decimal import Decimal

import pytest

from access.models import AccessKey
from billing import services as billing_services
from members.models import Membership, Plan

from .helpers import counts_of, snapshot

pytestmark = pytest.mark.django_db

State = Membership.State
D = datetime.date


@pytest.mark.parametrize("state", ["invoiced", "waiting"])
def test_old_unpaid_line_is_history(odoo, dataset, import_odoo, hot_desk, state):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Deuda Vieja", "debt@example.com", access_key="DEBT1")
    dataset.line(partner, product, state, D(2023, 1, 1), D(2023, 12, 31), price=3000)
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 0
    membership = Membership.objects.get()
    assert membership.state == State.CANCELLED
    assert membership.end_date == D(2023, 12, 31)
    assert not AccessKey.objects.exists()
    assert "key DEBT1: the member has no current membership" in out


def test_current_unpaid_line_gets_grace_then_suspension(
    odoo, dataset, import_odoo, hot_desk, clock, settings
):
    settings.CPR_GRACE_PERIOD_DAYS = 3
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Deuda Nueva", "late@example.com", access_key="LATE1")
    dataset.line(partner, product, "invoiced", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    import_odoo()

    membership = Membership.objects.get()
    assert membership.state == State.PAST_DUE
    assert membership.grace_until == D(2025, 1, 18)
    assert AccessKey.objects.get().wanted_state == AccessKey.Wanted.ACTIVE
    # The portal's own suspension job takes it from there.
    assert billing_services.suspend_overdue_memberships(today=D(2025, 1, 18)) == []
    suspended = billing_services.suspend_overdue_memberships(today=D(2025, 1, 19))
    assert [row.pk for row in suspended] == [membership.pk]


@pytest.mark.parametrize("state", ["paid", "free"])
def test_future_line_is_pending_until_it_starts(odoo, dataset, import_odoo, hot_desk, clock, state):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Futura Paga", "future@example.com", access_key="K-FUT")
    dataset.line(partner, product, state, D(2025, 3, 1), D(2026, 2, 28), price=3000)
    odoo.load(dataset)

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    membership = Membership.objects.get()
    assert membership.state == State.PENDING
    assert "it starts on 2025-03-01, so it is pending until then" in out
    key = AccessKey.objects.get()
    assert key.wanted_state == AccessKey.Wanted.SUSPENDED

    clock.today = D(2025, 3, 1)
    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    membership.refresh_from_db()
    assert membership.state == State.ACTIVE
    key.refresh_from_db()
    assert key.wanted_state == AccessKey.Wanted.ACTIVE
    assert "state pending → active" in out


def test_prepaid_renewal_extends_current(odoo, dataset, import_odoo, hot_desk, clock):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Dos Años", "two@example.com", access_key="K-TWO")
    this_year = dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 12, 31), price=3000)
    next_year = dataset.line(partner, product, "paid", D(2026, 1, 1), D(2026, 12, 31), price=3000)
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 0
    membership = Membership.objects.get()
    assert membership.odoo_ref.endswith(f",{this_year['id']}")
    assert membership.state == State.ACTIVE
    assert (membership.start_date, membership.commitment_end) == (D(2025, 1, 1), D(2027, 1, 1))
    assert f"skip     membership line {next_year['id']}" in out
    assert "recorded as the next term" in out
    assert not Membership.objects.filter(end_date__gt=clock.today).exists()
    assert AccessKey.objects.get().wanted_state == AccessKey.Wanted.ACTIVE

    before = snapshot()
    status, second, _err = import_odoo()
    assert snapshot() == before
    assert counts_of(second, "member") == (0, 0, 1, 0, 0)
    assert counts_of(second, "membership") == (0, 0, 1, 1, 0)
    assert counts_of(second, "key") == (0, 0, 1, 0, 0)

    # In 2026 the renewal is the current line: it comes in, the 2025 line ends.
    clock.today = D(2026, 1, 5)
    status, out, _err = import_odoo()
    assert status == 0
    ended = Membership.objects.get(odoo_ref__endswith=f",{this_year['id']}")
    assert (ended.state, ended.end_date, ended.commitment_end) == (
        State.ENDED,
        D(2025, 12, 31),
        D(2026, 1, 1),
    )
    current = Membership.objects.get(state__in=Membership.CURRENT_STATES)
    assert current.odoo_ref.endswith(f",{next_year['id']}")
    assert current.state == State.ACTIVE


def test_upcoming_line_on_other_plan_waits(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    desk = dataset.product("Dedicated Desk", 400)
    partner = dataset.partner("Cambia Plan", "change@example.com")
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    upgrade = dataset.line(partner, desk, "paid", D(2025, 2, 1), D(2025, 2, 28))
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 0
    assert Membership.objects.get().plan == hot_desk
    assert f"skip     membership line {upgrade['id']}" in out
    assert "run the import again once it starts" in out


def test_renamed_plan_keeps_its_product(odoo, dataset, import_odoo, hot_desk):
    hot = dataset.product("Hot Desk", 250)
    desk = dataset.product("Dedicated Desk", 4200, "2025-01-01", "2025-12-31")
    for number in range(3):
        partner = dataset.partner(f"Persona {number}", f"p{number}@example.com")
        dataset.line(partner, desk, "paid", D(2025, 1, 1), D(2025, 12, 31))
    odoo.load(dataset)
    import_odoo()
    plan = Plan.objects.get(name="Dedicated Desk")
    assert plan.odoo_product_id == desk["id"]
    assert Plan.objects.get(pk=hot_desk.pk).odoo_product_id == hot["id"]
    plan.name = "Dedicated Desk 24/7"
    plan.is_active = True
    plan.save()

    status, out, _err = import_odoo()

    assert status == 0
    assert Plan.objects.count() == 2
    assert set(Membership.objects.values_list("plan", flat=True)) == {plan.pk}
    assert counts_of(out, "plan") == (0, 0, 2, 0, 0)
    assert counts_of(out, "membership") == (0, 0, 3, 0, 0)


def test_free_member_commitment_is_ahead(odoo, dataset, import_odoo, hot_desk, clock):
    dataset.product("Hot Desk", 250)
    dataset.partner(
        "Libre Socia", "free@example.com", free_member=True, membership_type="Hot Desk",
        start_date=D(2023, 3, 1),
    )  # fmt: skip
    odoo.load(dataset)

    import_odoo()

    membership = Membership.objects.get()
    assert membership.state == State.ACTIVE
    assert membership.monthly_price == Decimal("0.00")
    assert membership.commitment_end == D(2025, 3, 1)


def test_line_without_end_is_monthly_fee(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Sin Fin", "open@example.com")
    dataset.line(partner, product, "paid", D(2025, 1, 1), False, price=250)
    odoo.load(dataset)

    import_odoo()

    membership = Membership.objects.get()
    assert membership.state == State.ACTIVE
    assert membership.monthly_price == Decimal("250.00")
    assert membership.contract_months == hot_desk.contract_months
