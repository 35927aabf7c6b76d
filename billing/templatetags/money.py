"""Template filter for dollar amounts: `{% load money %}` then `{{ amount|usd }}`."""

from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(value):
    """Format a Decimal as "$1,250.00" (see `billing.money.format_usd`)."""
    return format_usd(value)
