"""Choosing the language: browser first, the switch on every page, the stored choice."""

import pytest
from django.conf import settings
from django.urls import reverse

from members import services
from members.models import LanguagePreference
from tests.accounts.helpers import sign_in_with_code
from tests.factories import ApplicationFactory, MemberWithUserFactory

pytestmark = pytest.mark.django_db

SWITCH = f'action="{reverse("set_language")}"'


def html_lang(response) -> str:
    page = response.content.decode()
    start = page.index("<html lang=") + len('<html lang="')
    return page[start : page.index('"', start)]


def test_browser_preference_first_visit(client, hot_desk):
    response = client.get(reverse("members:home"), HTTP_ACCEPT_LANGUAGE="es-PR,es;q=0.9")

    assert html_lang(response) == "es"


def test_switch_on_every_kind_of_page(client, staff_user, hot_desk):
    public = [reverse("members:home"), reverse("members:apply"), reverse("account_login")]
    for url in public:
        assert SWITCH in client.get(url).content.decode(), url

    client.force_login(staff_user)
    for url in (reverse("members:portal_dashboard"), reverse("admin:index")):
        assert SWITCH in client.get(url).content.decode(), url


def test_switch_returns_to_same_page(client, hot_desk):
    page = reverse("members:plan_detail", args=[hot_desk.slug]) + "?ref=flyer&x=1"

    response = client.post(reverse("set_language"), {"language": "es", "next": page})

    assert response.status_code == 302
    assert response["Location"] == page
    assert html_lang(client.get(response["Location"])) == "es"


def test_switch_form_posts_current_path_and_query(client, hot_desk):
    page = reverse("members:plan_detail", args=[hot_desk.slug]) + "?ref=flyer"

    content = client.get(page).content.decode()

    assert f'name="next" value="{page}"' in content


def test_switch_stores_member_choice(client, hot_desk):
    member = MemberWithUserFactory(language="en")
    client.force_login(member.user)

    client.post(reverse("set_language"), {"language": "es", "next": "/"})

    member.refresh_from_db()
    assert member.language == "es"


def test_switch_stores_staff_choice(client, staff_user):
    client.force_login(staff_user)

    response = client.post(reverse("set_language"), {"language": "es", "next": "/admin/"})

    assert response["Location"] == "/admin/"
    assert LanguagePreference.objects.get(user=staff_user).language == "es"
    assert html_lang(client.get("/admin/")) == "es"


def test_switch_anonymous_stores_nothing(client, db):
    client.post(reverse("set_language"), {"language": "es", "next": "/"})

    assert not LanguagePreference.objects.exists()


def test_switch_unknown_language_ignored(client, staff_user):
    client.force_login(staff_user)

    client.post(reverse("set_language"), {"language": "fr", "next": "/"})

    assert not LanguagePreference.objects.exists()


def test_stored_choice_wins_after_sign_in(client, hot_desk):
    member = MemberWithUserFactory(language="es", email="ana@example.com")
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert html_lang(client.get(reverse("members:home"))) == "en"

    sign_in_with_code(client, member.email)

    response = client.get(reverse("members:portal_dashboard"))
    assert html_lang(response) == "es"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "es"
    # After signing out the language cookie keeps the choice.
    client.post(reverse("account_logout"))
    assert html_lang(client.get(reverse("members:home"))) == "es"


def test_staff_stored_choice_wins_after_sign_in(client, staff_user):
    LanguagePreference.objects.create(user=staff_user, language="es")

    client.force_login(staff_user)

    assert html_lang(client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")) == "es"


def test_no_stored_choice_keeps_browser(client, hot_desk):
    member = MemberWithUserFactory(language="")
    client.force_login(member.user)

    response = client.get(reverse("members:portal_dashboard"), HTTP_ACCEPT_LANGUAGE="es")

    assert html_lang(response) == "es"


def test_profile_form_changes_language(client, hot_desk):
    member = MemberWithUserFactory(language="en")
    client.force_login(member.user)
    data = {"phone": "", "company": "", "bio": "", "language": "es"}

    response = client.post(reverse("members:portal_profile"), data, follow=True)

    member.refresh_from_db()
    assert member.language == "es"
    assert html_lang(response) == "es"
    # The confirmation is already in the new language.
    assert "Se guardó su perfil." in response.content.decode()


def test_profile_rejects_unknown_language(client, hot_desk):
    member = MemberWithUserFactory(language="en")
    client.force_login(member.user)

    response = client.post(reverse("members:portal_profile"), {"language": "fr"})

    assert response.status_code == 200
    assert "language" in response.context["form"].errors
    member.refresh_from_db()
    assert member.language == "en"


def test_approval_copies_application_language(staff_user, hot_desk):
    application = ApplicationFactory(plan=hot_desk, language="es")

    membership = services.approve_application(application=application, actor=staff_user)

    assert membership.member.language == "es"


def test_set_preferred_language_rejects_unknown(staff_user):
    with pytest.raises(services.MembersError, match="“fr”"):
        services.set_preferred_language(user=staff_user, language="fr")
