"""Display of US dollar amounts: "$1,250.00", with the sign in front ("-$150.00")."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def format_usd(value: Decimal | int | None) -> str:
    """Return `value` as dollars with two places and comma thousands separators.

    Puerto Rico writes dollar amounts this way in English and in Spanish, so the format
    does not follow the active language. None gives an empty string. Floats raise
    TypeError because money in this project is never a float.
    """
    if value is None:
        return ""
    if isinstance(value, float):
        raise TypeError(f"Money must be a Decimal or an int, not the float {value!r}.")
    amount = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"
