"""The back office's big lists issue as many queries for many rows as for a few.

Each list is requested with a search and a filter, the way staff use it, first with a
few matching members and then with many more.
"""

import pytest

from access.models import AccessKey
from billing.models import Invoice
from members.admin.base import LIST_PER_PAGE
from members.models import Membership
from tests.factories import MemberFactory, MembershipFactory
from tests.factories.access import AccessKeyFactory
from tests.factories.billing import InvoiceFactory

SEARCH = "Rivera"
INVOICES_PER_MEMBER = 3

# (list, path, query string, queries, matching rows per member). The queries are the
# session, the login, the staff member's TOTP check, the filtered count and the rows, plus
# what each list prefetches or shows in its filters. No list counts the whole table.
CHANGELISTS = [
    (
        "members",
        "/admin/members/member/",
        {"q": SEARCH, "current_state": "active"},
        8,
        1,
    ),
    (
        "memberships",
        "/admin/members/membership/",
        {"q": SEARCH, "state__exact": "active"},
        6,
        1,
    ),
    (
        "invoices",
        "/admin/billing/invoice/",
        {"q": SEARCH, "status__exact": "paid"},
        5,
        INVOICES_PER_MEMBER,
    ),
    (
        "keys",
        "/admin/access/accesskey/",
        {"q": SEARCH, "status__exact": "active"},
        5,
        1,
    ),
]


def add_members(plan, count: int, *, last_name: str = SEARCH) -> None:
    """Create members with an active membership, paid invoices and an active key."""
    for _ in range(count):
        member = MemberFactory(last_name=last_name)
        membership = MembershipFactory(member=member, plan=plan, state=Membership.State.ACTIVE)
        for number in range(1, INVOICES_PER_MEMBER + 1):
            InvoiceFactory(membership=membership, period_number=number, status=Invoice.Status.PAID)
        AccessKeyFactory(member=member, status=AccessKey.Status.ACTIVE)


@pytest.mark.parametrize(
    ("path", "params", "queries", "rows_per_member"),
    [pytest.param(*case[1:], id=case[0]) for case in CHANGELISTS],
)
def test_changelist_queries_constant(
    staff_client, hot_desk, django_assert_num_queries, path, params, queries, rows_per_member
):
    add_members(hot_desk, 2)
    # Rows that the search must leave out, so that the filter and search do real work.
    add_members(hot_desk, 3, last_name="Santiago")

    with django_assert_num_queries(queries):
        response = staff_client.get(path, params)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 2 * rows_per_member

    add_members(hot_desk, 40)
    add_members(hot_desk, 20, last_name="Santiago")

    with django_assert_num_queries(queries):
        response = staff_client.get(path, params)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 42 * rows_per_member
    assert len(response.context["cl"].result_list) == min(42 * rows_per_member, LIST_PER_PAGE)


def test_related_search_needs_every_word(staff_client, hot_desk):
    add_members(hot_desk, 1)
    ana = MemberFactory(first_name="Ana", last_name=SEARCH)
    membership = MembershipFactory(member=ana, plan=hot_desk, state=Membership.State.ACTIVE)
    invoice = InvoiceFactory(membership=membership, gateway_reference="in_1QxAna")

    both_words = staff_client.get("/admin/billing/invoice/", {"q": f"ana {SEARCH.lower()}"})
    reference = staff_client.get("/admin/billing/invoice/", {"q": "IN_1QXANA"})
    phrase = staff_client.get("/admin/billing/invoice/", {"q": f'"ana {SEARCH}"'})

    assert list(both_words.context["cl"].result_list) == [invoice]
    assert list(reference.context["cl"].result_list) == [invoice]
    # No single field contains the phrase "ana rivera", so the quoted search finds nothing.
    assert list(phrase.context["cl"].result_list) == []
