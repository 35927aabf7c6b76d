"""The meeting-room credit ledger: spends, refunds, adjustments, expiry, balance and history."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import CreditEntry
from billing.services import (
    BillingError,
    InsufficientCreditError,
    adjust_credit,
    apply_gateway_event,
    expire_credit,
    refund_credit,
    spend_credit,
)
from members.models import Member, Membership
from tests.factories import MemberFactory
from tests.factories.billing import CreditLotFactory, payment_succeeded

Kind = CreditEntry.Kind
JAN_15 = datetime.date(2025, 1, 15)


def balance(member, today=JAN_15):
    return CreditEntry.objects.balance(member=member, today=today)


@pytest.fixture
def member(db, clock):
    return MemberFactory()


def lot(member, amount, expires_on=None):
    return CreditLotFactory(member=member, amount=Decimal(amount), expires_on=expires_on)


# --- Spending ----------------------------------------------------------------------------------


def test_spend_draws_oldest_expiring_first(member):
    later = lot(member, "100.00", datetime.date(2025, 3, 1))
    sooner = lot(member, "100.00", datetime.date(2025, 2, 1))

    entries = spend_credit(member=member, amount=Decimal("30.00"), reference="booking:1")

    assert [(entry.lot_id, entry.amount) for entry in entries] == [(sooner.pk, Decimal("-30.00"))]
    assert later.draws.count() == 0


def test_spend_across_lots_one_entry_each(member):
    first = lot(member, "20.00", datetime.date(2025, 2, 1))
    second = lot(member, "100.00", datetime.date(2025, 3, 1))

    entries = spend_credit(member=member, amount=Decimal("50.00"), reference="booking:1")

    assert [(entry.lot_id, entry.amount) for entry in entries] == [
        (first.pk, Decimal("-20.00")),
        (second.pk, Decimal("-30.00")),
    ]
    assert all(entry.kind == Kind.SPEND for entry in entries)
    assert all(entry.reference == "booking:1" for entry in entries)


def test_spend_uses_never_expiring_last(member):
    forever = lot(member, "100.00")
    dated = lot(member, "100.00", datetime.date(2025, 6, 1))

    entries = spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")

    assert entries[0].lot_id == dated.pk
    assert forever.draws.count() == 0


def test_spend_skips_lot_on_expiry_day(member, clock):
    lot(member, "100.00", clock.today)  # expires today, so no longer usable
    live = lot(member, "100.00", datetime.date(2025, 2, 1))

    entries = spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")

    assert entries[0].lot_id == live.pk


def test_spend_lowers_balance(member):
    lot(member, "150.00", datetime.date(2025, 2, 15))

    spend_credit(member=member, amount=Decimal("25.50"), reference="booking:1")

    assert balance(member) == Decimal("124.50")


def test_spend_short_raises_with_amounts(member):
    lot(member, "20.00", datetime.date(2025, 2, 1))

    with pytest.raises(InsufficientCreditError) as caught:
        spend_credit(member=member, amount=Decimal("25.00"), reference="booking:1")

    assert caught.value.balance == Decimal("20.00")
    assert caught.value.amount == Decimal("25.00")
    assert "$20.00" in str(caught.value)
    assert "$25.00" in str(caught.value)
    assert CreditEntry.objects.filter(kind=Kind.SPEND).count() == 0


def test_spend_ignores_expired_credit(member, clock):
    lot(member, "100.00", datetime.date(2025, 1, 10))

    with pytest.raises(InsufficientCreditError):
        spend_credit(member=member, amount=Decimal("1.00"), reference="booking:1")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-5.00"), Decimal("1.005"), 1.5, None])
def test_spend_rejects_bad_amount(member, amount):
    lot(member, "100.00")

    with pytest.raises(BillingError):
        spend_credit(member=member, amount=amount, reference="booking:1")


def test_spend_accepts_string_amount(member):
    lot(member, "100.00")

    entries = spend_credit(member=member, amount="12.5", reference="booking:1")

    assert entries[0].amount == Decimal("-12.50")


def test_spend_needs_reference(member):
    lot(member, "100.00")

    with pytest.raises(BillingError, match="reference"):
        spend_credit(member=member, amount=Decimal("1.00"), reference="  ")


def test_spend_same_reference_twice_rejected(member):
    lot(member, "100.00")
    spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")

    with pytest.raises(BillingError, match="booking:1"):
        spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")

    assert balance(member) == Decimal("90.00")


def test_spend_again_after_refund(member):
    lot(member, "100.00")
    spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")
    refund_credit(member=member, reference="booking:1")

    spend_credit(member=member, amount=Decimal("15.00"), reference="booking:1")

    assert balance(member) == Decimal("85.00")


def test_spend_records_actor(member, staff_user):
    lot(member, "100.00")

    entries = spend_credit(
        member=member, amount=Decimal("1.00"), reference="booking:1", actor=staff_user
    )

    assert entries[0].created_by == staff_user


# --- Refunds --------------------------------------------------------------------------------


def test_refund_returns_to_same_lots(member):
    first = lot(member, "20.00", datetime.date(2025, 2, 1))
    second = lot(member, "100.00", datetime.date(2025, 3, 1))
    spend_credit(member=member, amount=Decimal("50.00"), reference="booking:1")

    refunds = refund_credit(member=member, reference="booking:1")

    assert sorted((entry.lot_id, entry.amount) for entry in refunds) == [
        (first.pk, Decimal("20.00")),
        (second.pk, Decimal("30.00")),
    ]
    assert all(entry.kind == Kind.REFUND for entry in refunds)
    assert balance(member) == Decimal("120.00")


def test_refund_twice_returns_nothing(member):
    lot(member, "100.00")
    spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")
    refund_credit(member=member, reference="booking:1")

    assert refund_credit(member=member, reference="booking:1") == []
    assert balance(member) == Decimal("100.00")


def test_refund_unknown_reference_empty(member):
    assert refund_credit(member=member, reference="booking:404") == []


def test_refund_leaves_other_references(member):
    lot(member, "100.00")
    spend_credit(member=member, amount=Decimal("10.00"), reference="booking:1")
    spend_credit(member=member, amount=Decimal("20.00"), reference="booking:2")

    refund_credit(member=member, reference="booking:1")

    assert balance(member) == Decimal("80.00")


def test_refund_into_expired_lot_expires(member, clock):
    expiring = lot(member, "100.00", datetime.date(2025, 2, 1))
    spend_credit(member=member, amount=Decimal("40.00"), reference="booking:1")
    clock.set(datetime.date(2025, 2, 3))

    refunds = refund_credit(member=member, reference="booking:1")

    assert refunds[0].lot_id == expiring.pk
    assert refunds[0].amount == Decimal("40.00")
    expiry = CreditEntry.objects.get(kind=Kind.EXPIRE, reference="booking:1")
    assert expiry.lot_id == expiring.pk
    assert expiry.amount == Decimal("-40.00")


def test_refund_after_expiry_task(member, clock):
    expiring = lot(member, "100.00", datetime.date(2025, 2, 1))
    spend_credit(member=member, amount=Decimal("40.00"), reference="booking:1")
    clock.set(datetime.date(2025, 2, 3))
    assert expire_credit() == 1

    refund_credit(member=member, reference="booking:1")

    assert expire_credit() == 0
    total = sum(entry.amount for entry in CreditEntry.objects.filter(member=member))
    assert total == Decimal("0.00")
    assert expiring.draws.filter(kind=Kind.EXPIRE).count() == 2


def test_refund_before_expiry_task(member, clock):
    lot(member, "100.00", datetime.date(2025, 2, 1))
    spend_credit(member=member, amount=Decimal("40.00"), reference="booking:1")
    clock.set(datetime.date(2025, 2, 3))

    refund_credit(member=member, reference="booking:1")
    expire_credit()

    total = sum(entry.amount for entry in CreditEntry.objects.filter(member=member))
    assert total == Decimal("0.00")


def test_refund_needs_reference(member):
    with pytest.raises(BillingError, match="reference"):
        refund_credit(member=member, reference="")


# --- Adjustments --------------------------------------------------------------------------------


def test_adjust_positive_adds_lot(member, staff_user):
    entries = adjust_credit(
        member=member,
        amount=Decimal("30.00"),
        reason="goodwill",
        actor=staff_user,
        expires_on=datetime.date(2025, 3, 1),
    )

    assert len(entries) == 1
    assert entries[0].kind == Kind.ADJUST
    assert entries[0].lot_id is None
    assert entries[0].expires_on == datetime.date(2025, 3, 1)
    assert entries[0].reason == "goodwill"
    assert entries[0].created_by == staff_user
    assert balance(member) == Decimal("30.00")


def test_adjust_negative_draws_lots(member, staff_user):
    source = lot(member, "100.00", datetime.date(2025, 3, 1))

    entries = adjust_credit(
        member=member, amount=Decimal("-30.00"), reason="correction", actor=staff_user
    )

    assert [(entry.kind, entry.lot_id, entry.amount) for entry in entries] == [
        (Kind.ADJUST, source.pk, Decimal("-30.00"))
    ]
    assert balance(member) == Decimal("70.00")


def test_adjust_negative_short_raises(member, staff_user):
    lot(member, "10.00")

    with pytest.raises(InsufficientCreditError, match=r"\$10\.00"):
        adjust_credit(member=member, amount=Decimal("-30.00"), reason="x", actor=staff_user)


def test_adjust_needs_reason(member, staff_user):
    with pytest.raises(BillingError, match="reason"):
        adjust_credit(member=member, amount=Decimal("5.00"), reason=" ", actor=staff_user)


def test_adjust_rejects_zero(member, staff_user):
    with pytest.raises(BillingError, match="non-zero"):
        adjust_credit(member=member, amount=Decimal("0"), reason="x", actor=staff_user)


def test_adjust_rejects_past_expiry(member, clock, staff_user):
    with pytest.raises(BillingError, match="not after today"):
        adjust_credit(
            member=member,
            amount=Decimal("5.00"),
            reason="x",
            actor=staff_user,
            expires_on=clock.today,
        )


# --- Expiry -----------------------------------------------------------------------------------


def test_expire_writes_remaining(member, clock):
    expiring = lot(member, "150.00", datetime.date(2025, 2, 1))
    spend_credit(member=member, amount=Decimal("50.00"), reference="booking:1")
    clock.set(datetime.date(2025, 2, 1))

    assert expire_credit() == 1

    expiry = expiring.draws.get(kind=Kind.EXPIRE)
    assert expiry.amount == Decimal("-100.00")
    assert expiry.reference == ""


def test_expire_twice_writes_once(member, clock):
    lot(member, "150.00", datetime.date(2025, 2, 1))
    expire_credit(today=datetime.date(2025, 2, 1))

    assert expire_credit(today=datetime.date(2025, 2, 2)) == 0
    assert CreditEntry.objects.filter(kind=Kind.EXPIRE).count() == 1


def test_expire_skips_spent_lot(member):
    lot(member, "50.00", datetime.date(2025, 2, 1))
    spend_credit(member=member, amount=Decimal("50.00"), reference="booking:1")

    assert expire_credit(today=datetime.date(2025, 2, 1)) == 0


def test_expire_skips_live_and_forever_lots(member):
    lot(member, "50.00", datetime.date(2025, 2, 2))
    lot(member, "50.00")

    assert expire_credit(today=datetime.date(2025, 2, 1)) == 0


def test_expire_counts_every_member(db):
    for _ in range(3):
        lot(MemberFactory(), "10.00", datetime.date(2025, 2, 1))

    assert expire_credit(today=datetime.date(2025, 2, 1)) == 3


def test_balance_drops_on_expiry_day(member):
    lot(member, "150.00", datetime.date(2025, 2, 1))

    assert balance(member, datetime.date(2025, 1, 31)) == Decimal("150.00")
    assert balance(member, datetime.date(2025, 2, 1)) == Decimal("0.00")


def test_balance_same_after_expire_entry(member):
    lot(member, "150.00", datetime.date(2025, 2, 1))
    lot(member, "20.00")
    expire_credit(today=datetime.date(2025, 2, 1))

    assert balance(member, datetime.date(2025, 2, 1)) == Decimal("20.00")


# --- Month ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "last_usable", "expired_on"),
    [
        (datetime.date(2025, 1, 31), datetime.date(2025, 2, 27), datetime.date(2025, 2, 28)),
        (datetime.date(2024, 1, 31), datetime.date(2024, 2, 28), datetime.date(2024, 2, 29)),
        (datetime.date(2024, 2, 29), datetime.date(2024, 3, 28), datetime.date(2024, 3, 29)),
    ],
)
def test_period_credit_expires_at_month_end(
    hot_desk_membership, clock, start, last_usable, expired_on
):
    clock.set(start)
    Membership.objects.filter(pk=hot_desk_membership.pk).update(
        start_date=start, commitment_end=start + datetime.timedelta(days=366)
    )
    membership = Membership.objects.get(pk=hot_desk_membership.pk)
    apply_gateway_event(event=payment_succeeded(membership), gateway="stub")
    member = membership.member

    clock.set(last_usable)
    spend_credit(member=member, amount=Decimal("50.00"), reference="booking:1")
    assert balance(member, last_usable) == Decimal("100.00")

    clock.set(expired_on)
    assert balance(member, expired_on) == Decimal("0.00")
    assert expire_credit() == 1
    assert CreditEntry.objects.get(member=member, kind=Kind.EXPIRE).amount == Decimal("-100.00")


# --- Constant number of queries ---------------------------------------------------------------


def fill_ledger(member, lots):
    for number in range(lots):
        lot(member, "10.00", datetime.date(2025, 2, 1) + datetime.timedelta(days=number))
        lot(member, "5.00")
    for number in range(lots // 2):
        spend_credit(member=member, amount=Decimal("3.00"), reference=f"booking:{number}")


def count_queries(function):
    with CaptureQueriesContext(connection) as context:
        function()
    return len(context.captured_queries)


def read_balance_and_history(member):
    CreditEntry.objects.balance(member=member, today=JAN_15)
    list(CreditEntry.objects.filter(member=member).select_related("lot", "invoice"))
    list(CreditEntry.objects.filter(member=member).lots().live(JAN_15))


def test_balance_and_history_constant_queries(db, clock):
    small, large = MemberFactory(), MemberFactory()
    fill_ledger(small, 5)
    fill_ledger(large, 100)

    assert count_queries(lambda: read_balance_and_history(small)) == 3
    assert count_queries(lambda: read_balance_and_history(large)) == 3


def test_balance_one_query(member, django_assert_num_queries):
    lot(member, "10.00")

    with django_assert_num_queries(1):
        balance(member)


# --- Concurrent spends (PostgreSQL) -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_spends_never_overdraw(clock):
    member = MemberFactory()
    lot(member, "100.00", datetime.date(2025, 2, 1))
    lot(member, "50.00", datetime.date(2025, 3, 1))
    amount = Decimal("40.00")
    threads_count = 20
    barrier = threading.Barrier(threads_count)
    outcomes = []

    def spend(number):
        try:
            barrier.wait()
            spend_credit(member=Member(pk=member.pk), amount=amount, reference=f"booking:{number}")
            outcomes.append("spent")
        except InsufficientCreditError:
            outcomes.append("short")
        except Exception as error:  # noqa: BLE001 - reported by the assert below
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(outcomes)) == ["short", "spent"]
    assert outcomes.count("spent") == 3  # floor(150 / 40)
    assert balance(member) == Decimal("30.00")
    for lot_entry in CreditEntry.objects.lots().with_remaining():
        assert lot_entry.remaining >= 0
