"""Each service that causes an email queues exactly one outbox row, once per event."""

import datetime
import json
from decimal import Decimal

import pytest

from access.services import AccessError, issue_key, restore_key, suspend_key
from billing import services as billing_services
from billing.models import Payment
from members import services as members_services
from members.models import Membership
from outbox.models import OutboxEmail
from outbox.services import build_message
from tests.billing.conftest import clock, hot_desk_membership, stub_gateway  # noqa: F401
from tests.factories import ApplicationFactory, MembershipFactory, PlanFactory
from tests.factories.billing import payment_failed, payment_succeeded

pytestmark = pytest.mark.django_db

State = Membership.State


def rows(template: str) -> list[OutboxEmail]:
    return list(OutboxEmail.objects.filter(template=template).order_by("pk"))


def pay(membership, number=1):
    billing_services.apply_gateway_event(
        event=payment_succeeded(membership, number=number), gateway="stub"
    )


@pytest.fixture
def active_membership(hot_desk_membership, stub_gateway):  # noqa: F811
    pay(hot_desk_membership)
    hot_desk_membership.refresh_from_db()
    assert hot_desk_membership.state == State.ACTIVE
    OutboxEmail.objects.all().delete()
    return hot_desk_membership


# --- Applications ---------------------------------------------------------------------


def test_submitted_application_emails(hot_desk, settings):
    settings.CPR_STAFF_NOTIFY_EMAILS = ["desk@code-pr.example", "board@code-pr.example"]

    application = members_services.submit_application(
        first_name="Ana",
        last_name="Rivera",
        email="ana@Example.COM",
        plan=hot_desk,
        language="es",
        message="Hola",
    )

    [received] = rows("application_received")
    assert received.recipient == "ana@example.com"
    assert received.language == "es"
    assert received.context["plan_name"] == hot_desk.name
    notices = rows("application_staff_notice")
    assert [row.recipient for row in notices] == ["desk@code-pr.example", "board@code-pr.example"]
    assert notices[0].context["application_id"] == application.pk
    assert notices[0].context["message"] == "Hola"
    assert notices[0].language == settings.LANGUAGE_CODE
    assert OutboxEmail.objects.count() == 3


def test_staff_notice_defaults_to_contact_address(hot_desk, settings):
    members_services.submit_application(
        first_name="Ana", last_name="Rivera", email="ana@example.com", plan=hot_desk
    )

    assert [row.recipient for row in rows("application_staff_notice")] == [
        settings.CPR_CONTACT_EMAIL
    ]


def test_approval_queues_one_email(db):
    application = ApplicationFactory(language="es")

    membership = members_services.approve_application(application=application, actor=None)
    with pytest.raises(members_services.MembersError):
        members_services.approve_application(application=application, actor=None)

    [approved] = rows("application_approved")
    assert approved.recipient == application.email
    assert approved.language == "es"
    assert approved.context["membership_id"] == membership.pk
    assert approved.context["start_date"] == membership.start_date.isoformat()
    assert approved.context["monthly_price"] == str(membership.monthly_price)
    assert OutboxEmail.objects.count() == 1


def test_rejection_keeps_reason_internal(db):
    application = ApplicationFactory()

    members_services.reject_application(
        application=application, actor=None, reason="Applied twice with fake details"
    )

    [rejected] = rows("application_rejected")
    assert rejected.recipient == application.email
    assert "fake details" not in json.dumps(rejected.context)


# --- Payments -----------------------------------------------------------------------------


def test_gateway_payment_receipt_once(hot_desk_membership, stub_gateway):  # noqa: F811
    pay(hot_desk_membership)
    pay(hot_desk_membership)  # the same event delivered again

    [receipt] = rows("payment_received")
    payment = Payment.objects.get()
    assert receipt.recipient == hot_desk_membership.member.email
    assert receipt.dedupe_key == f"payment_received:payment:{payment.pk}"
    assert receipt.context["amount"] == "250.00"
    assert receipt.context["method"] == "Card (online)"
    assert receipt.context["period_start"] == payment.invoice.period_start.isoformat()
    last_day = payment.invoice.period_end - datetime.timedelta(days=1)
    assert receipt.context["period_last_day"] == last_day.isoformat()
    assert OutboxEmail.objects.count() == 1  # activation sends no email of its own


def test_receipt_shows_last_day_of_period(hot_desk_membership, stub_gateway):  # noqa: F811
    pay(hot_desk_membership)  # the first period: 15 January to 15 February (exclusive)

    [receipt] = rows("payment_received")
    text = " ".join(build_message(receipt).body.split())

    assert "Period: Jan. 15, 2025 – Feb. 14, 2025" in text
    assert "Feb. 15, 2025" not in text


def test_manual_payment_receipt(hot_desk_membership, clock, staff_user):  # noqa: F811
    billing_services.record_manual_payment(
        membership=hot_desk_membership,
        amount=Decimal("250.00"),
        method=Payment.Method.ATH_MOVIL,
        reference="ATH-1",
        received_at=clock.today,
        actor=staff_user,
    )

    [receipt] = rows("payment_received")
    assert receipt.context["method"] == "ATH Móvil"
    assert receipt.context["received_on"] == clock.today.isoformat()


def test_failed_payment_email_once(active_membership, clock, settings):  # noqa: F811
    event = payment_failed(active_membership, number=2)

    billing_services.apply_gateway_event(event=event, gateway="stub")
    billing_services.apply_gateway_event(event=event, gateway="stub")
    billing_services.apply_gateway_event(
        event=payment_failed(active_membership, number=2), gateway="stub"
    )

    [failed] = rows("payment_failed")
    grace = clock.today + datetime.timedelta(days=settings.CPR_GRACE_PERIOD_DAYS)
    assert failed.context["grace_until"] == grace.isoformat()
    assert failed.context["amount"] == "250.00"
    assert failed.context["pay_url"] == event.hosted_url
    assert OutboxEmail.objects.count() == 1
    text = " ".join(build_message(failed).body.split())
    assert "period Feb. 15, 2025 to March 14, 2025." in text


def test_failed_payment_unsafe_link_dropped(active_membership, clock):  # noqa: F811
    event = payment_failed(active_membership, number=2, hosted_url="javascript:alert(1)")

    billing_services.apply_gateway_event(event=event, gateway="stub")

    [failed] = rows("payment_failed")
    assert failed.context["pay_url"] == ""


def test_suspension_and_reinstatement(active_membership, clock, settings):  # noqa: F811
    billing_services.apply_gateway_event(
        event=payment_failed(active_membership, number=2), gateway="stub"
    )
    clock.advance(settings.CPR_GRACE_PERIOD_DAYS + 1)

    billing_services.suspend_overdue_memberships()
    billing_services.suspend_overdue_memberships()
    pay(active_membership, number=2)

    assert len(rows("membership_suspended")) == 1
    assert len(rows("membership_reinstated")) == 1
    assert len(rows("payment_received")) == 1


# --- Cancellation and the commitment end --------------------------------------------------


def test_scheduled_cancellation_confirmed(active_membership, clock):  # noqa: F811
    members_services.cancel_membership(membership=active_membership, reason="moving")

    [confirmed] = rows("cancellation_confirmed")
    assert confirmed.context["scheduled"] is True
    assert confirmed.context["end_date"] == active_membership.commitment_end.isoformat()

    members_services.withdraw_cancellation(membership=active_membership)
    members_services.cancel_membership(membership=active_membership, reason="moving after all")
    assert len(rows("cancellation_confirmed")) == 2


def test_immediate_cancellation_confirmed(active_membership, clock):  # noqa: F811
    billing_services.terminate_membership_early(
        membership=active_membership, actor=None, reason="moving abroad"
    )

    [confirmed] = rows("cancellation_confirmed")
    assert confirmed.context["scheduled"] is False
    assert confirmed.context["end_date"] == clock.today.isoformat()


def test_cancellation_taking_effect_silent(active_membership, clock):  # noqa: F811
    members_services.cancel_membership(membership=active_membership, reason="moving")
    clock.set(active_membership.commitment_end)

    members_services.apply_scheduled_cancellations(today=clock.today)

    assert Membership.objects.get(pk=active_membership.pk).state == State.CANCELLED
    assert len(rows("cancellation_confirmed")) == 1


def test_commitment_reminder_once(clock):  # noqa: F811
    due = MembershipFactory(
        state=State.ACTIVE, start_date=clock.today - datetime.timedelta(days=340)
    )
    later = MembershipFactory(state=State.ACTIVE, start_date=clock.today)
    MembershipFactory(state=State.PENDING, start_date=clock.today - datetime.timedelta(days=340))

    first = billing_services.queue_commitment_reminders(today=clock.today)
    second = billing_services.queue_commitment_reminders(today=clock.today)

    assert [membership.pk for membership in first] == [due.pk]
    assert second == []
    [reminder] = rows("commitment_ending")
    assert reminder.recipient == due.member.email
    assert reminder.context["commitment_end"] == due.commitment_end.isoformat()
    assert reminder.context["outcome"] == "renews"
    assert later.pk not in [membership.pk for membership in first]


def test_commitment_reminder_per_term(clock):  # noqa: F811
    membership = MembershipFactory(
        state=State.ACTIVE,
        plan=PlanFactory(contract_months=1),
        start_date=clock.today - datetime.timedelta(days=10),
    )
    billing_services.queue_commitment_reminders(today=clock.today)
    clock.set(membership.commitment_end)
    billing_services.apply_term_ends(today=clock.today)

    billing_services.queue_commitment_reminders(today=clock.today)

    assert len(rows("commitment_ending")) == 2


# --- Door keys ----------------------------------------------------------------------------


def test_key_issued_once(hot_desk_membership, staff_user):  # noqa: F811
    key = issue_key(
        member=hot_desk_membership.member, number="00004821", kind="fob", actor=staff_user
    )

    [issued] = rows("key_issued")
    assert issued.recipient == hot_desk_membership.member.email
    assert issued.context["key_last_digits"] == key.last_digits
    assert issued.context["key_kind"] == "Key fob"
    assert issued.context["opens_doors"] is False  # the membership is not paid yet
    assert "00004821" not in json.dumps(issued.context)


def test_key_suspended_per_suspension(active_membership, staff_user):
    key = issue_key(member=active_membership.member, number="FOB-9", kind="fob", actor=staff_user)

    suspend_key(key=key, actor=staff_user, reason="lent to a friend")
    with pytest.raises(AccessError):
        suspend_key(key=key, actor=staff_user, reason="again")
    assert len(rows("key_suspended")) == 1
    restore_key(key=key, actor=staff_user)
    suspend_key(key=key, actor=staff_user, reason="lent again")

    suspended = rows("key_suspended")
    assert len(suspended) == 2
    assert "lent" not in json.dumps(suspended[0].context)
