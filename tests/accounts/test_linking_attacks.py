"""Account linking and sign-in attacks: one address, one login, and staff kept apart."""

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from members import services
from members.models import Member
from tests.accounts.helpers import (
    GoogleIdentity,
    last_login_code,
    request_login_code,
    sign_in_with_code,
    signed_in_user_id,
)
from tests.factories import (
    MemberFactory,
    MemberWithUserFactory,
    StaffUserFactory,
    enable_totp,
)

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "correct horse battery staple"


# 1. Staff reached through Google by an address that is not User.email --------------------


def test_staff_secondary_verified_email_google_signs_in_staff(google, client):
    staff = StaffUserFactory(email="rosa@example.com")
    EmailAddress.objects.create(user=staff, email="rosa.personal@example.com", verified=True)

    response = google.sign_in(GoogleIdentity(sub="9001", email="rosa.personal@example.com"))

    # Expected: refused like any staff email (staff link Google only while signed in).
    assert response.status_code == 403, (response.status_code, response.get("Location"))


def test_staff_unverified_secondary_email_google_wipes_password(google, client):
    staff = StaffUserFactory(email="rosa@example.com")
    enable_totp(staff)
    # e.g. typed into /accounts/email/ and never confirmed (a typo someone else owns).
    EmailAddress.objects.create(user=staff, email="rosa.typo@example.com", verified=False)

    google.sign_in(GoogleIdentity(sub="9002", email="rosa.typo@example.com"))

    staff.refresh_from_db()
    assert staff.has_usable_password(), "staff password wiped by a stranger's Google login"
    assert not SocialAccount.objects.filter(user=staff).exists()


def test_staff_without_mfa_unverified_secondary_google_signs_in(google, client):
    staff = StaffUserFactory(email="rosa@example.com")
    EmailAddress.objects.create(user=staff, email="rosa.typo@example.com", verified=False)

    google.sign_in(GoogleIdentity(sub="9003", email="rosa.typo@example.com"))

    assert signed_in_user_id(client) != staff.pk, "stranger signed in as staff (no MFA yet)"


# 2. Member's pending (unverified) new address lets its owner in ---------------------------


def test_member_pending_email_change_lets_google_owner_in(google, client):
    member = MemberWithUserFactory(email="ana@example.com")
    other = Client()
    sign_in_with_code(other, "ana@example.com")
    # Ana adds a new address with a typo; it waits, unverified, for confirmation.
    other.post(reverse("account_email"), {"action_add": "", "email": "ana.typo@example.com"})
    assert EmailAddress.objects.filter(email="ana.typo@example.com", verified=False).exists()

    google.sign_in(GoogleIdentity(sub="9004", email="ana.typo@example.com"))

    # The spec links only by the Member's email, verified by Google.
    assert signed_in_user_id(client) != member.user_id, "typo owner signed into Ana's portal"


# 3. Two logins end up holding one address ------------------------------------------------


def test_claiming_applicant_address_refused(plan):
    MemberWithUserFactory(email="mallory@example.com")
    mallory = Client()
    sign_in_with_code(mallory, "mallory@example.com")
    services.submit_application(
        first_name="Vic", last_name="Tim", email="victim@example.com", plan=plan
    )

    response = mallory.post(
        reverse("account_email"), {"action_add": "", "email": "victim@example.com"}
    )

    assert "already belongs to another account" in response.content.decode()
    assert not EmailAddress.objects.filter(email__iexact="victim@example.com").exists()


def test_approval_removes_unverified_claim(plan, staff_user):
    # A claim made before the person applied, when nothing reserved the address yet.
    mallory = MemberWithUserFactory(email="mallory@example.com")
    EmailAddress.objects.create(user=mallory.user, email="victim@example.com", verified=False)
    application = services.submit_application(
        first_name="Vic", last_name="Tim", email="victim@example.com", plan=plan
    )

    services.approve_application(application=application, actor=staff_user)

    victim = Member.objects.get(email="victim@example.com")
    owners = set(
        EmailAddress.objects.filter(email="victim@example.com").values_list("user", flat=True)
    )
    assert owners == {victim.user_id}


def test_approval_stops_at_verified_claim(plan, staff_user):
    other = MemberWithUserFactory(email="other@example.com")
    EmailAddress.objects.create(user=other.user, email="victim@example.com", verified=True)
    application = services.submit_application(
        first_name="Vic", last_name="Tim", email="victim@example.com", plan=plan
    )

    with pytest.raises(services.MembersError, match="confirmed address"):
        services.approve_application(application=application, actor=staff_user)

    application.refresh_from_db()
    assert application.status == "submitted"
    assert not Member.objects.filter(email="victim@example.com").exists()


def test_unverified_claim_then_approval_victim_lands_in_mallory(google, client, plan, staff_user):
    mallory = MemberWithUserFactory(email="mallory@example.com")
    mallory_client = Client()
    sign_in_with_code(mallory_client, "mallory@example.com")
    application = services.submit_application(
        first_name="Vic", last_name="Tim", email="victim@example.com", plan=plan
    )
    mallory_client.post(reverse("account_email"), {"action_add": "", "email": "victim@example.com"})
    services.approve_application(application=application, actor=staff_user)
    victim = Member.objects.get(email="victim@example.com")

    google.sign_in(GoogleIdentity(sub="victim-google", email="victim@example.com"))
    assert signed_in_user_id(client) == victim.user_id, (
        f"victim's Google signed into user {signed_in_user_id(client)} (Mallory is "
        f"{mallory.user_id}, victim is {victim.user_id})"
    )


def test_unverified_claim_then_approval_code_reaches_victim(plan, staff_user):
    mallory = MemberWithUserFactory(email="mallory@example.com")
    mallory_client = Client()
    sign_in_with_code(mallory_client, "mallory@example.com")
    application = services.submit_application(
        first_name="Vic", last_name="Tim", email="victim@example.com", plan=plan
    )
    mallory_client.post(reverse("account_email"), {"action_add": "", "email": "victim@example.com"})
    services.approve_application(application=application, actor=staff_user)
    victim = Member.objects.get(email="victim@example.com")

    victim_client = Client()
    sign_in_with_code(victim_client, "victim@example.com")

    mallory.user.refresh_from_db()
    assert signed_in_user_id(victim_client) == victim.user_id, (
        f"victim's code signed into user {signed_in_user_id(victim_client)}; Mallory's "
        f"login email is now {mallory.user.email}"
    )


# 4. Disconnect Google ----------------------------------------------------------------------


def test_member_disconnect_refusal_shown(google, client):
    MemberFactory(email="ana@example.com")
    google.sign_in(GoogleIdentity(sub="9005", email="ana@example.com"))
    account = SocialAccount.objects.get()

    response = client.post(reverse("socialaccount_connections"), {"account": account.pk})

    # allauth keeps the last provider of a login without a password, and shows the member why.
    assert response.status_code == 200
    assert "no password set up" in response.content.decode()
    assert SocialAccount.objects.filter(pk=account.pk).exists()


# 5. createsuperuser with a capitalised address ---------------------------------------------


def test_createsuperuser_mixed_case_can_sign_in(client, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command(
        "createsuperuser", interactive=False, username="boss", email="Ana.Boss@Code.PR", verbosity=0
    )

    response = client.post(
        reverse("account_login"), {"login": "ana.boss@code.pr", "password": PASSWORD}
    )

    assert response.status_code == 302, "staff made by createsuperuser cannot sign in"


# 6. Session key changes at each sign-in ---------------------------------------------------


def test_session_rotated_on_code_sign_in(client):
    MemberWithUserFactory(email="ana@example.com")
    request_login_code(client, "ana@example.com")
    before = client.session.session_key
    client.post(reverse("account_confirm_login_code"), {"code": last_login_code("ana@example.com")})
    assert signed_in_user_id(client) is not None
    assert client.session.session_key != before


def test_session_rotated_on_google_sign_in(google, client):
    MemberFactory(email="ana@example.com")
    state = google.start()
    before = client.session.session_key
    google.callback(GoogleIdentity(sub="9006", email="ana@example.com"), state)
    assert signed_in_user_id(client) is not None
    assert client.session.session_key != before


# 8. Email management edge cases --------------------------------------------------------------


def test_email_add_mixed_case_staff_address_rejected(client):
    StaffUserFactory(email="Rosa.Admin@code.pr")  # as createsuperuser stores it
    MemberWithUserFactory(email="ana@example.com")
    sign_in_with_code(client, "ana@example.com")

    member = Member.objects.get(email="ana@example.com")

    client.post(reverse("account_email"), {"action_add": "", "email": "rosa.admin@code.pr"})

    assert not EmailAddress.objects.filter(
        user=member.user, email__iexact="rosa.admin@code.pr"
    ).exists()


def test_remove_primary_email_refused(client):
    member = MemberWithUserFactory(email="ana@example.com")
    sign_in_with_code(client, "ana@example.com")

    client.post(reverse("account_email"), {"action_remove": "", "email": "ana@example.com"})

    assert EmailAddress.objects.filter(user=member.user, email="ana@example.com").exists()


def test_staff_edits_member_email_code_still_works(client):
    member = MemberWithUserFactory(email="ana@example.com")
    staff = StaffUserFactory()
    # What the member admin does when staff change the email.
    services.change_member_email(
        member=member, email="ana.new@example.com", actor=staff, sync_login=True
    )

    sign_in_with_code(client, "ana.new@example.com")

    assert signed_in_user_id(client) == member.user_id


# 9. Staff link Google from their account page -------------------------------------------------


def test_staff_can_connect_own_google_while_signed_in(google, client):
    from urllib.parse import parse_qs, urlsplit

    from tests.factories import current_totp_code

    staff = StaffUserFactory(email="rosa@example.com")
    enable_totp(staff)
    client.post(reverse("account_login"), {"login": "rosa@example.com", "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": current_totp_code()})
    assert signed_in_user_id(client) == staff.pk

    start = client.post(reverse("google_login") + "?process=connect")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = google.callback(GoogleIdentity(sub="rosa-g", email="rosa@example.com"), state)

    # The adapter's comment states that staff link Google "signed in, from their account page".
    assert SocialAccount.objects.filter(user=staff).exists(), response.status_code
