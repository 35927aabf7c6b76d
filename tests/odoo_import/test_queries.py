"""The import's queries grow with the partners at a constant rate, on first and later runs.

The import reads each batch's members and imported memberships in a few queries before
writing, so a partner costs about as many queries as it writes rows, plus its savepoint.
The same budget per partner holds for a data set and for one twice as large.
"""

import pytest

from .dataset import build_large_space

PER_KIND = 6
BATCH_SIZE = "40"
# The queries of the run that do not depend on the partners (plans, batches' reads).
FIXED = 50
# A first import of the data set's mix: the savepoint, the member, its memberships with
# their events, and the key with its checks and event.
FIRST_RUN_PER_PARTNER = 7
# Running it again: the member's current membership and keys are read, nothing is written.
RERUN_PER_PARTNER = 3.5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("per_kind", [PER_KIND, 2 * PER_KIND])
def test_queries_per_partner_stay_constant(
    per_kind, odoo, dataset, import_odoo, hot_desk, django_assert_max_num_queries
):
    build_large_space(dataset, per_kind=per_kind)
    odoo.load(dataset)
    partners = len(dataset.partners)

    with django_assert_max_num_queries(FIXED + FIRST_RUN_PER_PARTNER * partners):
        status, _out, err = import_odoo("--batch-size", BATCH_SIZE)
    assert status == 2, err  # the data set has conflicts on purpose

    with django_assert_max_num_queries(int(FIXED + RERUN_PER_PARTNER * partners)):
        status, _out, err = import_odoo("--batch-size", BATCH_SIZE)
    assert status == 2, err
