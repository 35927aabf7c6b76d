"""Billing on the member portal: next payment, invoices, pay and card buttons, credit."""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import selectors
from billing.gateways import get_gateway
from billing.models import CreditEntry, GatewayCustomer, Invoice
from billing.money import format_usd
from members.models import Membership, Plan
from members.periods import billing_period
from tests.factories import MembershipFactory, MemberWithUserFactory, PlanFactory

pytestmark = pytest.mark.django_db

State = Membership.State
Kind = CreditEntry.Kind

DASHBOARD_URL = reverse("members:portal_dashboard")
# Far enough ahead that every date below is in the future whenever the suite runs.
START = datetime.date(2030, 1, 31)
TODAY = datetime.date(2030, 2, 10)


@pytest.fixture
def member():
    return MemberWithUserFactory(first_name="Ana", last_name="Rivera", email="ana@example.com")


@pytest.fixture
def other_member():
    """A second member whose billing must never appear on the first member's pages."""
    return MemberWithUserFactory(first_name="Benito", last_name="Ortiz", email="ben@example.com")


@pytest.fixture
def member_client(client, member):
    client.force_login(member.user)
    return client


def make_membership(member, state=State.ACTIVE, **fields) -> Membership:
    fields.setdefault("start_date", START)
    return MembershipFactory(member=member, state=state, **fields)


def make_invoice(membership, number, *, status=Invoice.Status.PAID, **fields) -> Invoice:
    period = billing_period(membership.start_date, number)
    fields.setdefault("amount", membership.monthly_price)
    return Invoice.objects.create(
        membership=membership,
        kind=Invoice.Kind.PERIOD,
        period_number=number,
        period_start=period.start,
        period_end=period.end,
        status=status,
        **fields,
    )


def grant(
    member, amount="150.00", *, expires_on=datetime.date(2030, 3, 1), period_start=None
) -> CreditEntry:
    """Grant a lot for a period that has started, unless `period_start` is given."""
    return CreditEntry.objects.create(
        member=member,
        kind=Kind.GRANT,
        amount=Decimal(amount),
        period_start=period_start or timezone.localdate(),
        expires_on=expires_on,
    )


def spend(lot, amount, reference="booking:1") -> CreditEntry:
    return CreditEntry.objects.create(
        member=lot.member, kind=Kind.SPEND, amount=-Decimal(amount), lot=lot, reference=reference
    )


def page_text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def section(text: str, section_id: str) -> str:
    """Return the words of the dashboard section with `section_id`, without tags."""
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', text, re.S)
    assert match is not None, f"no section {section_id!r} on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(0)))


def state_label(text: str) -> str:
    match = re.search(r'class="state-label">([^<]*)<', text)
    assert match is not None, "the page shows no membership state"
    return match.group(1)


def form_actions(text: str) -> list[str]:
    return re.findall(r'<form method="post" action="([^"]+)"', text)


# --- format_usd ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1250"), "$1,250.00"),
        (Decimal("150.5"), "$150.50"),
        (Decimal("-40.00"), "-$40.00"),
        (Decimal("0.005"), "$0.01"),
        (1234567, "$1,234,567.00"),
        (None, ""),
    ],
)
def test_format_usd(value, expected):
    assert format_usd(value) == expected


def test_format_usd_rejects_float():
    with pytest.raises(TypeError, match="float"):
        format_usd(250.0)


# --- Next payment --------------------------------------------------------------------------


def test_next_payment_first_period_when_unpaid(member):
    membership = make_membership(member, State.PENDING)

    upcoming = selectors.next_payment(membership)

    assert upcoming.due_on == START
    assert upcoming.amount == Decimal("250.00")


def test_next_payment_after_paid_periods(member):
    membership = make_membership(member)
    make_invoice(membership, 1)
    make_invoice(membership, 2)

    upcoming = selectors.next_payment(membership)

    assert upcoming.due_on == datetime.date(2030, 3, 31)
    assert upcoming.invoice is None


def test_next_payment_clamps_month_end(member):
    membership = make_membership(member)
    make_invoice(membership, 1)

    upcoming = selectors.next_payment(membership)

    assert upcoming.due_on == datetime.date(2030, 2, 28)
    assert upcoming.period_end == datetime.date(2030, 3, 31)


def test_next_payment_oldest_open_invoice(member):
    membership = make_membership(member, State.PAST_DUE)
    make_invoice(membership, 1)
    second = make_invoice(membership, 2, status=Invoice.Status.OPEN, amount=Decimal("275.00"))
    make_invoice(membership, 3, status=Invoice.Status.OPEN)

    upcoming = selectors.next_payment(membership)

    assert upcoming.invoice == second
    assert upcoming.amount == Decimal("275.00")
    assert upcoming.due_on == datetime.date(2030, 2, 28)


def test_next_payment_skips_void_period(member):
    membership = make_membership(member)
    make_invoice(membership, 1)
    make_invoice(membership, 2, status=Invoice.Status.VOID)

    upcoming = selectors.next_payment(membership)

    assert upcoming.due_on == datetime.date(2030, 3, 31)


def test_next_payment_none_after_cancellation(member):
    membership = make_membership(member, cancel_at=datetime.date(2030, 2, 28))
    make_invoice(membership, 1)

    assert selectors.next_payment(membership) is None


def test_next_payment_none_after_term_without_renewal(member):
    plan = PlanFactory(contract_months=1, renewal_policy=Plan.RenewalPolicy.END)
    membership = make_membership(member, plan=plan)
    make_invoice(membership, 1)

    assert selectors.next_payment(membership) is None


def test_next_payment_none_when_not_current(member):
    membership = make_membership(member, State.ENDED, end_date=datetime.date(2031, 1, 31))

    assert selectors.next_payment(membership) is None


def test_dashboard_shows_next_payment(member_client, member):
    membership = make_membership(member, monthly_price=Decimal("1250.00"))
    make_invoice(membership, 1)

    text = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "Next payment: $1,250.00 on Feb. 28, 2030" in text


def test_dashboard_next_payment_uses_open_invoice(member_client, member):
    membership = make_membership(member, State.PAST_DUE)
    make_invoice(membership, 1)
    make_invoice(membership, 2, status=Invoice.Status.OPEN, amount=Decimal("275.00"))

    text = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "$275.00 for the period from Feb. 28, 2030" in text


def test_dashboard_payment_due_wording(member_client, member):
    make_membership(member, State.ACTIVE, start_date=datetime.date(2020, 1, 15))

    text = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "Payment due: $250.00, due since Jan. 15, 2020" in text


@pytest.mark.parametrize("state", [State.PAST_DUE, State.SUSPENDED])
def test_dashboard_overdue_wording(member_client, member, state):
    # A failed renewal can be for a period that has not started yet; it is still overdue.
    membership = make_membership(member, state)
    make_invoice(membership, 1, status=Invoice.Status.OPEN)

    text = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "Overdue payment: $250.00 for the period from Jan. 31, 2030" in text
    assert "Next payment" not in text


def test_dashboard_no_next_payment_after_cancel(member_client, member):
    membership = make_membership(member, cancel_at=datetime.date(2030, 2, 28))
    make_invoice(membership, 1)

    text = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "No further payment is scheduled" in text
    assert "Next payment" not in text


# --- Pay now and update card ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (State.PENDING, True),
        (State.PAST_DUE, True),
        (State.ACTIVE, False),
        (State.SUSPENDED, True),
    ],
)
def test_pay_now_when_money_is_due(member_client, member, state, shown):
    make_membership(member, state)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert (reverse("billing:pay") in form_actions(text)) is shown
    assert ("Pay now</button>" in text) is shown


def test_pay_now_hidden_without_membership(member_client):
    text = page_text(member_client.get(DASHBOARD_URL))

    assert reverse("billing:pay") not in form_actions(text)


def test_update_card_needs_gateway_customer(member_client, member):
    make_membership(member)

    without = page_text(member_client.get(DASHBOARD_URL))
    GatewayCustomer.objects.create(member=member, gateway=get_gateway().name, reference="cus_1")
    with_customer = page_text(member_client.get(DASHBOARD_URL))

    assert reverse("billing:manage") not in form_actions(without)
    assert reverse("billing:manage") in form_actions(with_customer)


def test_update_card_ignores_other_gateway(member_client, member):
    make_membership(member)
    GatewayCustomer.objects.create(member=member, gateway="retired", reference="cus_old")

    text = page_text(member_client.get(DASHBOARD_URL))

    assert reverse("billing:manage") not in form_actions(text)


def test_past_due_shows_grace_date(member_client, member):
    make_membership(member, State.PAST_DUE, grace_until=datetime.date(2030, 3, 12))

    text = page_text(member_client.get(DASHBOARD_URL))

    assert state_label(text) == "Payment overdue — access continues until March 12, 2030"


def test_past_due_without_grace_date(member_client, member):
    make_membership(member, State.PAST_DUE)

    text = page_text(member_client.get(DASHBOARD_URL))

    assert state_label(text) == "Payment overdue"


# --- Invoices ------------------------------------------------------------------------------


def test_invoices_listed_with_status_and_link(member_client, member):
    membership = make_membership(member)
    make_invoice(membership, 1, hosted_url="https://invoice.example.com/i/1")
    make_invoice(membership, 2, status=Invoice.Status.OPEN)

    text = page_text(member_client.get(DASHBOARD_URL))
    words = section(text, "payments")

    assert "Jan. 31, 2030 to Feb. 27, 2030" in words
    assert "Feb. 28, 2030 to March 30, 2030" in words
    assert "Paid" in words
    assert "Open" in words
    assert 'href="https://invoice.example.com/i/1"' in text


def test_invoices_newest_first(member_client, member):
    membership = make_membership(member)
    make_invoice(membership, 1)
    make_invoice(membership, 2)

    words = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert words.index("Feb. 28, 2030 to") < words.index("Jan. 31, 2030 to")


def test_invoice_unsafe_link_not_rendered(member_client, member):
    membership = make_membership(member)
    make_invoice(membership, 1, hosted_url="javascript:alert(1)")

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "javascript:" not in text


def test_invoices_empty_state(member_client, member):
    make_membership(member, State.ACTIVE)

    words = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "You have no invoices yet." in words
    assert "not available yet" not in words


def test_invoices_of_past_memberships_listed(member_client, member):
    old = make_membership(member, State.ENDED, start_date=datetime.date(2028, 1, 10))
    make_invoice(old, 1, amount=Decimal("199.00"))

    words = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert "$199.00" in words


def test_invoices_of_other_member_hidden(member_client, member, other_member):
    make_membership(member)
    theirs = make_membership(other_member)
    make_invoice(
        theirs,
        1,
        amount=Decimal("987.65"),
        hosted_url="https://invoice.example.com/theirs",
        gateway="fake",
        gateway_reference="in_theirs",
    )
    GatewayCustomer.objects.create(member=other_member, gateway=get_gateway().name, reference="c")

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "987.65" not in text
    assert "invoice.example.com/theirs" not in text
    assert reverse("billing:manage") not in form_actions(text)


def test_invoices_limited_with_note(member_client, member):
    membership = make_membership(member)
    for number in range(1, selectors.PORTAL_INVOICE_LIMIT + 2):
        make_invoice(membership, number)

    words = section(page_text(member_client.get(DASHBOARD_URL)), "payments")

    assert f"Showing your {selectors.PORTAL_INVOICE_LIMIT} most recent invoices." in words
    assert "Jan. 31, 2030 to" not in words


# --- Credit --------------------------------------------------------------------------------


def test_credit_balance_and_expiry(member_client, member):
    make_membership(member)
    grant(member, "150.00", expires_on=datetime.date(2030, 3, 1))

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "Balance: $150.00" in words
    assert "$150.00 valid until Feb. 28, 2030" in words


def test_credit_paid_in_advance_waits(member_client, member):
    make_membership(member)
    grant(member, "150.00")
    grant(member, "150.00", period_start=datetime.date(2030, 2, 28))

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "Balance: $150.00" in words


def test_credit_balance_after_spend(member_client, member):
    make_membership(member)
    lot = grant(member, "150.00")
    spend(lot, "40.00")

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "Balance: $110.00" in words
    assert "$110.00 valid until" in words
    assert "-$40.00" in words


def test_credit_history_newest_first(member_client, member):
    make_membership(member)
    lot = grant(member, "150.00")
    spend(lot, "25.00")

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert words.index("Spend") < words.index("Grant")


def test_credit_lot_without_expiry(member_client, member):
    make_membership(member)
    grant(member, "30.00", expires_on=None)

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "$30.00 with no expiry date" in words


def test_credit_expired_lot_not_counted(member):
    grant(member, "150.00", expires_on=datetime.date(2030, 3, 1))

    summary = selectors.portal_billing(member, None, today=datetime.date(2030, 3, 1))

    assert summary.credit_balance == Decimal("0.00")
    assert summary.credit_lots == []


def test_credit_lots_soonest_expiry_first(member):
    later = grant(member, "20.00", expires_on=datetime.date(2030, 6, 1))
    never = grant(member, "10.00", expires_on=None)
    sooner = grant(member, "30.00", expires_on=datetime.date(2030, 3, 1))

    lots = selectors.live_credit_lots(member, today=TODAY)

    assert [lot.entry for lot in lots] == [sooner, later, never]


def test_credit_empty_state(member_client, member):
    make_membership(member)

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "You have no meeting-room credit yet." in words
    assert not re.search(r"\d", words)


def test_credit_reason_hidden_from_member(member_client, member):
    make_membership(member)
    CreditEntry.objects.create(
        member=member, kind=Kind.ADJUST, amount=Decimal("5.00"), reason="Complained loudly"
    )

    text = page_text(member_client.get(DASHBOARD_URL))

    assert "$5.00" in section(text, "credit")
    assert "Complained loudly" not in text


def test_credit_of_other_member_hidden(member_client, member, other_member):
    make_membership(member)
    grant(member, "150.00")
    grant(other_member, "777.00")

    words = section(page_text(member_client.get(DASHBOARD_URL)), "credit")

    assert "777" not in words
    assert "Balance: $150.00" in words


# --- Query counts --------------------------------------------------------------------------


def add_history(member, membership, count: int) -> None:
    """Give the member `count` paid invoices and `count` credit entries beyond what exists."""
    first = membership.invoices.count() + 1
    for number in range(first, first + count):
        make_invoice(membership, number, hosted_url=f"https://invoice.example.com/{number}")
        lot = grant(member, "150.00", expires_on=datetime.date(2040, 1, 1))
        spend(lot, "10.00", reference=f"booking:{number}")


def dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(DASHBOARD_URL)
    assert response.status_code == 200
    return len(queries)


def test_dashboard_queries_constant_with_history(member_client, member):
    membership = make_membership(member)
    GatewayCustomer.objects.create(member=member, gateway=get_gateway().name, reference="cus_1")
    add_history(member, membership, 1)
    dashboard_queries(member_client)

    few = dashboard_queries(member_client)
    add_history(member, membership, 29)
    many = dashboard_queries(member_client)

    assert many == few


def test_portal_billing_queries_constant(member, django_assert_num_queries):
    membership = make_membership(member)
    add_history(member, membership, 1)
    with CaptureQueriesContext(connection) as few:
        selectors.portal_billing(member, membership, today=TODAY)

    add_history(member, membership, 29)
    with django_assert_num_queries(len(few)):
        summary = selectors.portal_billing(member, membership, today=TODAY)

    assert len(summary.invoices) == selectors.PORTAL_INVOICE_LIMIT
    assert summary.more_invoices
    assert summary.credit_balance == Decimal("4200.00")
