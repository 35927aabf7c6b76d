"""The sign-in page keeps the `next` page once in its links."""

import re
from html import unescape

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_code_link_keeps_next_once(client):
    response = client.get(reverse("account_login") + "?next=/portal/bookings/")

    links = re.findall(r'href="([^"]*/accounts/login/code/[^"]*)"', response.content.decode())
    assert len(links) == 1
    link = unescape(links[0])
    assert link.count("next=") == 1
    assert link.endswith("?next=%2Fportal%2Fbookings%2F")
