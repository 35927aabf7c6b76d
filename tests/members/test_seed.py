"""The data migration that seeds the Hot Desk plan."""

import importlib
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from members.models import Plan
from tests.factories import MembershipFactory

seed_migration = importlib.import_module("members.migrations.0002_seed_hot_desk_plan")
# The migration's functions read only the schema editor's connection (the database migrated).
SCHEMA_EDITOR = SimpleNamespace(connection=connection)


def test_hot_desk_price(hot_desk):
    assert isinstance(hot_desk.monthly_price, Decimal)
    assert str(hot_desk.monthly_price) == "250.00"


def test_hot_desk_credit(hot_desk):
    assert isinstance(hot_desk.included_credit, Decimal)
    assert str(hot_desk.included_credit) == "150.00"


def test_hot_desk_terms(hot_desk):
    assert hot_desk.name == "Hot Desk"
    assert hot_desk.contract_months == 12
    assert hot_desk.billing_interval == Plan.BillingInterval.MONTH
    assert hot_desk.renewal_policy == Plan.RenewalPolicy.RENEW_TERM
    assert hot_desk.cancellation_policy == Plan.CancellationPolicy.AT_COMMITMENT_END


def test_hot_desk_open_for_applications(hot_desk):
    assert hot_desk.is_public
    assert hot_desk.is_active


@pytest.mark.django_db
def test_seed_runs_twice():
    seed_migration.seed_hot_desk(apps, SCHEMA_EDITOR)

    assert Plan.objects.filter(slug="hot-desk").count() == 1


def test_seed_keeps_edited_plan(hot_desk):
    hot_desk.monthly_price = Decimal("275.00")
    hot_desk.save()

    seed_migration.seed_hot_desk(apps, SCHEMA_EDITOR)

    hot_desk.refresh_from_db()
    assert hot_desk.monthly_price == Decimal("275.00")


def test_unseed_removes_unused_plan(hot_desk):
    seed_migration.remove_hot_desk(apps, SCHEMA_EDITOR)

    assert not Plan.objects.filter(pk=hot_desk.pk).exists()


def test_unseed_keeps_plan_in_use(hot_desk):
    MembershipFactory(plan=hot_desk)

    seed_migration.remove_hot_desk(apps, SCHEMA_EDITOR)

    assert Plan.objects.filter(pk=hot_desk.pk).exists()
