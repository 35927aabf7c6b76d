"""Errors of the billing domain; `billing.services` re-exports them."""

from decimal import Decimal


class BillingError(Exception):
    """A billing rule was broken. The message names the rule and what to do."""


class InsufficientCreditError(BillingError):
    """A spend or a negative adjustment asked for more credit than the member has."""

    def __init__(self, message: str, *, balance: Decimal, amount: Decimal):
        super().__init__(message)
        self.balance = balance
        self.amount = amount
