"""A few hundred contacts of every kind, imported twice on PostgreSQL in several batches."""

import pytest

from access.models import AccessKey
from members.models import Member, Membership, Plan

from .dataset import build_large_space
from .helpers import counts_of, snapshot, summary

PER_KIND = 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_large_import_and_rerun(odoo, dataset, import_odoo, hot_desk):
    expected = build_large_space(dataset, per_kind=PER_KIND)
    odoo.load(dataset)
    assert len(dataset.partners) >= 300

    status, out, err = import_odoo("--batch-size", "40")

    assert status == 2, err
    counts = summary(out)
    for key, value in expected.items():
        if key != "current":
            assert counts[key] == value, key
    conflicts = sum(value for (_entity, verb), value in counts.items() if verb == "conflict")
    assert conflicts > 1
    assert f"{conflicts} conflicts reported above" in err
    assert Member.objects.count() == expected["member", "created"]
    assert Membership.objects.count() == expected["membership", "created"]
    assert AccessKey.objects.count() == expected["key", "created"]
    assert not AccessKey.objects.filter(sync_status=AccessKey.Sync.IN_SYNC).exists()
    assert Plan.objects.filter(is_active=False).count() == 1

    for state, members in expected["current"].items():
        assert Membership.objects.filter(state=state).count() == members, state
    with_current = Member.objects.filter(memberships__state__in=Membership.CURRENT_STATES)
    assert with_current.count() == sum(expected["current"].values())

    before = snapshot()
    second_status, second_out, _err = import_odoo("--batch-size", "40")

    assert second_status == 2
    assert snapshot() == before
    for entity in ("plan", "member", "membership", "key"):
        created, updated, *_rest = counts_of(second_out, entity)
        assert (created, updated) == (0, 0), entity
    second_counts = summary(second_out)
    for (entity, verb), value in counts.items():
        if verb in ("skipped", "conflict"):
            assert second_counts[entity, verb] == value, (entity, verb)
