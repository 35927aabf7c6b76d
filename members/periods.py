"""Billing period arithmetic anchored on a membership's start date.

Every period boundary is the anchor plus n months, with the day clamped to the last
day of a shorter month, so an anchor of 31 January gives 28 (or 29) February, then
31 March, then 30 April. Boundaries are always computed from the anchor, never by
adding a month to the previous boundary, which would drift to the 28th for good.
A period covers the days from its start up to, but not including, its end.
"""

import calendar
import datetime
from dataclasses import dataclass


def add_months(anchor: datetime.date, months: int) -> datetime.date:
    """Return `anchor` moved by `months` months, clamping the day to the month's end."""
    month_index = anchor.month - 1 + months
    year = anchor.year + month_index // 12
    month = month_index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    return datetime.date(year, month, min(anchor.day, last_day))


@dataclass(frozen=True)
class BillingPeriod:
    """One billing period. `number` counts from 1, and `end` is the next period's start."""

    number: int
    start: datetime.date
    end: datetime.date

    @property
    def last_day(self) -> datetime.date:
        """The last day the period covers, which pages and emails show as its end."""
        return self.end - datetime.timedelta(days=1)


def billing_period(anchor: datetime.date, number: int) -> BillingPeriod:
    """Return period `number` (1 is the first) of a membership anchored on `anchor`."""
    if number < 1:
        raise ValueError(f"Billing period numbers start at 1, got {number}.")
    return BillingPeriod(
        number=number,
        start=add_months(anchor, number - 1),
        end=add_months(anchor, number),
    )


def billing_periods(anchor: datetime.date, count: int) -> list[BillingPeriod]:
    """Return the first `count` billing periods of a membership anchored on `anchor`."""
    return [billing_period(anchor, number) for number in range(1, count + 1)]


def period_containing(anchor: datetime.date, day: datetime.date) -> BillingPeriod:
    """Return the billing period that contains `day`; `day` must not precede `anchor`."""
    if day < anchor:
        raise ValueError(f"{day} is before the membership's anchor date {anchor}.")
    months = (day.year - anchor.year) * 12 + (day.month - anchor.month)
    number = max(months, 0) + 1
    # The estimate is off by one when `day` falls before the clamped boundary of its month.
    while add_months(anchor, number - 1) > day:
        number -= 1
    while add_months(anchor, number) <= day:
        number += 1
    return billing_period(anchor, number)
