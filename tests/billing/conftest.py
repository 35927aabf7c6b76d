"""Fixtures of the billing tests.

- `clock`: the portal's "today" (`members.services.local_today`), set and moved by tests.
- `stub_gateway`: PAYMENT_GATEWAY set to tests.billing.stub_gateway.StubGateway; returns the
  gateway, whose `calls` lists what the domain asked of it.
- `hot_desk_membership`: a pending membership on a $250 plan with $150 of credit a
  period and a 12-month contract, starting on the clock's today.
"""

import datetime
from decimal import Decimal

import pytest

from billing.gateways import get_gateway
from tests.factories import MembershipFactory, PlanFactory


class Clock:
    """A settable replacement for `members.services.local_today`."""

    def __init__(self, today: datetime.date):
        self.today = today

    def __call__(self) -> datetime.date:
        return self.today

    def set(self, day: datetime.date) -> None:
        self.today = day

    def advance(self, days: int) -> datetime.date:
        self.today += datetime.timedelta(days=days)
        return self.today


@pytest.fixture
def clock(monkeypatch):
    """Freeze "today" at 15 January 2025 until the test moves it."""
    from members import services as members_services

    fake = Clock(datetime.date(2025, 1, 15))
    monkeypatch.setattr(members_services, "local_today", fake)
    return fake


@pytest.fixture
def stub_gateway(settings):
    settings.PAYMENT_GATEWAY = "tests.billing.stub_gateway.StubGateway"
    gateway = get_gateway()
    gateway.calls.clear()
    return gateway


@pytest.fixture
def hot_desk_membership(db, clock):
    plan = PlanFactory(
        monthly_price=Decimal("250.00"), included_credit=Decimal("150.00"), contract_months=12
    )
    return MembershipFactory(plan=plan, start_date=clock.today)
