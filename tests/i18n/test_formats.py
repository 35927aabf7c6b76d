"""Puerto Rico Spanish formats: Spanish date words, US-style dollar amounts."""

import datetime
from decimal import Decimal

import pytest
from django import forms
from django.conf.locale.es import formats as django_es_formats
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.utils import formats, translation

DAY = datetime.date(2026, 12, 4)
AMOUNT = Decimal("1250.00")


def test_spanish_date_in_words():
    with translation.override("es"):
        assert formats.date_format(DAY) == "4 de diciembre de 2026"
        assert Template("{{ day|date:'DATE_FORMAT' }}").render(Context({"day": DAY})) == (
            "4 de diciembre de 2026"
        )


def test_english_date_unchanged():
    with translation.override("en"):
        assert formats.date_format(DAY) == "Dec. 4, 2026"


def test_spanish_money_us_style():
    with translation.override("es"):
        rendered = Template("{% load money %}{{ amount|usd }}").render(Context({"amount": AMOUNT}))
        assert rendered == "$1,250.00"


def test_spanish_numbers_us_separators():
    with translation.override("es"):
        assert formats.number_format(AMOUNT, 2, force_grouping=True) == "1,250.00"
        assert Template('{{ amount|floatformat:"2g" }}').render(Context({"amount": AMOUNT})) == (
            "1,250.00"
        )


def test_django_spanish_differs():
    # Without our format module Django's "es" writes 1.250,00 (thin space since 5.x).
    assert django_es_formats.DECIMAL_SEPARATOR == ","
    with translation.override("es"):
        assert formats.get_format("DECIMAL_SEPARATOR") == "."
        assert formats.get_format("THOUSAND_SEPARATOR") == ","


def test_spanish_input_month_first():
    field = forms.DateField()
    with translation.override("es"):
        assert field.clean("12/04/2026") == DAY
        assert field.clean("12/04/26") == DAY
        assert field.clean("2026-12-04") == DAY
        assert formats.date_format(DAY, "SHORT_DATE_FORMAT") == "12/04/2026"


def test_spanish_input_day_first_rejected():
    field = forms.DateField()
    with translation.override("es"), pytest.raises(ValidationError):
        field.clean("25/12/2026")
