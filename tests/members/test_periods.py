"""Month-end arithmetic of billing periods anchored on a membership's start date."""

import datetime

import pytest

from members.periods import add_months, billing_period, billing_periods, period_containing

D = datetime.date


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        (D(2025, 1, 15), 1, D(2025, 2, 15)),
        (D(2025, 1, 31), 1, D(2025, 2, 28)),
        (D(2024, 1, 31), 1, D(2024, 2, 29)),
        (D(2025, 1, 31), 2, D(2025, 3, 31)),
        (D(2025, 1, 31), 3, D(2025, 4, 30)),
        (D(2025, 1, 31), 12, D(2026, 1, 31)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),
        (D(2024, 2, 29), 48, D(2028, 2, 29)),
        (D(2025, 3, 31), 11, D(2026, 2, 28)),
        (D(2025, 8, 31), 1, D(2025, 9, 30)),
        (D(2025, 12, 31), 2, D(2026, 2, 28)),
        (D(2025, 11, 30), 3, D(2026, 2, 28)),
        (D(2025, 5, 31), 0, D(2025, 5, 31)),
        (D(2025, 3, 31), -1, D(2025, 2, 28)),
        (D(2025, 1, 10), 25, D(2027, 2, 10)),
    ],
)
def test_add_months(anchor, months, expected):
    assert add_months(anchor, months) == expected


def test_contract_from_31_january_2025():
    periods = billing_periods(D(2025, 1, 31), 12)

    assert [period.end for period in periods] == [
        D(2025, 2, 28),
        D(2025, 3, 31),
        D(2025, 4, 30),
        D(2025, 5, 31),
        D(2025, 6, 30),
        D(2025, 7, 31),
        D(2025, 8, 31),
        D(2025, 9, 30),
        D(2025, 10, 31),
        D(2025, 11, 30),
        D(2025, 12, 31),
        D(2026, 1, 31),
    ]


def test_contract_from_31_january_2024_leap_year():
    periods = billing_periods(D(2024, 1, 31), 12)

    assert periods[0].end == D(2024, 2, 29)
    assert periods[1].end == D(2024, 3, 31)
    assert periods[-1].end == D(2025, 1, 31)


def test_contract_from_29_february_2024():
    periods = billing_periods(D(2024, 2, 29), 12)

    assert periods[0].end == D(2024, 3, 29)
    assert periods[-1].end == D(2025, 2, 28)


def test_boundaries_follow_anchor_not_previous():
    # Adding one month to 28 February would give 28 March, but the anchor's 31st wins.
    periods = billing_periods(D(2025, 1, 31), 3)

    assert periods[1].start == D(2025, 2, 28)
    assert periods[1].end == D(2025, 3, 31)
    assert periods[2].end == D(2025, 4, 30)


@pytest.mark.parametrize("anchor", [D(2025, 1, 31), D(2024, 2, 29), D(2025, 6, 15)])
def test_periods_are_contiguous(anchor):
    periods = billing_periods(anchor, 24)

    assert periods[0].start == anchor
    assert [period.number for period in periods] == list(range(1, 25))
    for previous, following in zip(periods, periods[1:], strict=False):
        assert following.start == previous.end


def test_billing_period_numbering():
    period = billing_period(D(2025, 1, 31), 2)

    assert period.number == 2
    assert period.start == D(2025, 2, 28)
    assert period.end == D(2025, 3, 31)


@pytest.mark.parametrize("number", [0, -1])
def test_billing_period_number_below_one(number):
    with pytest.raises(ValueError, match=f"got {number}"):
        billing_period(D(2025, 1, 31), number)


@pytest.mark.parametrize(
    ("anchor", "day", "number"),
    [
        (D(2025, 1, 31), D(2025, 1, 31), 1),
        (D(2025, 1, 31), D(2025, 2, 1), 1),
        (D(2025, 1, 31), D(2025, 2, 27), 1),
        # A period's end date is the first day of the next period.
        (D(2025, 1, 31), D(2025, 2, 28), 2),
        (D(2025, 1, 31), D(2025, 3, 30), 2),
        (D(2025, 1, 31), D(2025, 3, 31), 3),
        (D(2025, 1, 31), D(2025, 4, 29), 3),
        (D(2025, 1, 31), D(2025, 4, 30), 4),
        (D(2025, 1, 31), D(2026, 1, 30), 12),
        (D(2025, 1, 31), D(2026, 1, 31), 13),
        (D(2024, 2, 29), D(2024, 3, 28), 1),
        (D(2024, 2, 29), D(2024, 3, 29), 2),
        (D(2024, 2, 29), D(2025, 2, 27), 12),
        (D(2024, 2, 29), D(2025, 2, 28), 13),
        (D(2025, 3, 31), D(2025, 4, 30), 2),
        (D(2025, 3, 31), D(2025, 5, 30), 2),
        (D(2025, 3, 31), D(2025, 5, 31), 3),
    ],
)
def test_period_containing(anchor, day, number):
    assert period_containing(anchor, day) == billing_period(anchor, number)


@pytest.mark.parametrize("anchor", [D(2025, 1, 31), D(2024, 2, 29), D(2025, 8, 30), D(2025, 6, 1)])
def test_period_containing_every_day(anchor):
    # Every day of three years falls in exactly one period, by the half-open rule.
    day = anchor
    while day < anchor + datetime.timedelta(days=3 * 366):
        period = period_containing(anchor, day)
        assert period.start <= day < period.end, day
        assert period == billing_period(anchor, period.number), day
        day += datetime.timedelta(days=1)


def test_period_containing_day_before_anchor():
    with pytest.raises(ValueError, match="2025-01-30 is before"):
        period_containing(D(2025, 1, 31), D(2025, 1, 30))
