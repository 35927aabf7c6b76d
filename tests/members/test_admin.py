"""The staff back office: decisions on applications, membership actions, list queries."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.contrib.messages import ERROR, SUCCESS, get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from members.models import Member, Membership, MembershipApplication, MembershipEvent, Plan
from members.services import MembersError, cancel_membership
from tests.factories import (
    ApplicationFactory,
    MemberFactory,
    MembershipFactory,
    PlanFactory,
    UserFactory,
    enable_totp,
)

pytestmark = pytest.mark.django_db

Status = MembershipApplication.Status
State = Membership.State

CHANGE_FORM_ACTION = "CHANGE_FORM-action"


def admin_url(model, view, *args):
    return reverse(f"admin:members_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> list[tuple[int, str]]:
    return [
        (message.level, str(message.message)) for message in get_messages(response.wsgi_request)
    ]


def far_start() -> datetime.date:
    """Return a desired start date in the future that no month-end rule can shift."""
    return datetime.date(timezone.localdate().year + 1, 1, 31)


def run_action(client, model, action, pks, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": "0"}
    data.update(extra)
    return client.post(admin_url(model, "changelist"), data)


def confirm_action(client, model, action, pks, **extra):
    """Post the second step of an action that asked for a reason on its own page."""
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "_reason_step": "1"}
    data.update(extra)
    return client.post(admin_url(model, "changelist"), data)


# --- Approving ------------------------------------------------------------------------


def assert_hot_desk_membership(application, hot_desk, staff_user):
    application.refresh_from_db()
    membership = application.membership
    assert application.status == Status.APPROVED
    assert application.decided_by == staff_user
    assert membership.plan == hot_desk
    assert membership.state == State.PENDING
    assert membership.monthly_price == Decimal("250.00")
    assert membership.included_credit == Decimal("150.00")
    assert membership.start_date == far_start()
    assert membership.commitment_end == datetime.date(far_start().year + 1, 1, 31)
    assert membership.member.email == application.email
    assert MembershipEvent.objects.get(membership=membership).actor == staff_user


def test_approve_action_creates_pending_membership(staff_client, staff_user, hot_desk):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())

    response = run_action(staff_client, MembershipApplication, "approve_selected", [application.pk])

    assert response.status_code == 302
    assert_hot_desk_membership(application, hot_desk, staff_user)


def test_approve_action_reports_membership(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())

    response = run_action(staff_client, MembershipApplication, "approve_selected", [application.pk])

    membership = Membership.objects.get(application=application)
    [(level, text)] = messages_of(response)
    assert level == SUCCESS
    assert f"Membership {membership.pk}" in text
    assert admin_url(Membership, "change", membership.pk) in text
    assert "Hot Desk" in text


def test_approve_button_creates_pending_membership(staff_client, staff_user, hot_desk):
    application = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())

    response = staff_client.post(admin_url(MembershipApplication, "approve", application.pk))

    assert response.status_code == 302
    assert response.url == admin_url(MembershipApplication, "change", application.pk)
    assert_hot_desk_membership(application, hot_desk, staff_user)


def test_approve_url_get_changes_nothing(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = staff_client.get(admin_url(MembershipApplication, "approve", application.pk))

    application.refresh_from_db()
    assert response.status_code == 405
    assert application.status == Status.SUBMITTED
    assert not Membership.objects.exists()


def test_approve_url_requires_csrf_token(staff_user, hot_desk):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    application = ApplicationFactory(plan=hot_desk)

    response = client.post(admin_url(MembershipApplication, "approve", application.pk))

    application.refresh_from_db()
    assert response.status_code == 403
    assert application.status == Status.SUBMITTED


def test_approve_button_decided_reports_error(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, status=Status.REJECTED)

    response = staff_client.post(admin_url(MembershipApplication, "approve", application.pk))

    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "already Rejected" in text
    assert not Membership.objects.exists()


def test_approve_button_unknown_application(staff_client):
    response = staff_client.post(admin_url(MembershipApplication, "approve", 999999))

    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_bulk_approve_reports_each_row(staff_client, hot_desk):
    good = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())
    rejected = ApplicationFactory(plan=hot_desk, status=Status.REJECTED)
    member = MemberFactory(email="taken@example.com")
    MembershipFactory(member=member, plan=hot_desk, state=State.ACTIVE)
    duplicate = ApplicationFactory(plan=hot_desk, email="Taken@Example.com")

    response = run_action(
        staff_client,
        MembershipApplication,
        "approve_selected",
        [good.pk, rejected.pk, duplicate.pk],
    )

    good_message, rejected_message, duplicate_message = messages_of(response)
    assert good_message[0] == SUCCESS
    assert f"Application {good.pk} " in good_message[1]
    assert rejected_message[0] == ERROR
    assert (
        f"Cannot approve application {rejected.pk}: it is already Rejected" in (rejected_message[1])
    )
    assert duplicate_message[0] == ERROR
    assert "already has a current membership" in duplicate_message[1]


def test_bulk_approve_changes_approvable_only(staff_client, hot_desk):
    good = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())
    rejected = ApplicationFactory(plan=hot_desk, status=Status.REJECTED)
    member = MemberFactory(email="taken@example.com")
    MembershipFactory(member=member, plan=hot_desk, state=State.ACTIVE)
    duplicate = ApplicationFactory(plan=hot_desk, email="taken@example.com")

    run_action(
        staff_client,
        MembershipApplication,
        "approve_selected",
        [good.pk, rejected.pk, duplicate.pk],
    )

    rejected.refresh_from_db()
    duplicate.refresh_from_db()
    assert Membership.objects.filter(application=good).exists()
    assert rejected.status == Status.REJECTED
    assert duplicate.status == Status.SUBMITTED
    assert member.memberships.count() == 1


# --- Rejecting ------------------------------------------------------------------------


def test_reject_action_asks_for_reason(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = run_action(staff_client, MembershipApplication, "reject_selected", [application.pk])

    application.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].fields
    assert application.status == Status.SUBMITTED


def test_reject_action_stores_reason(staff_client, staff_user, hot_desk):
    applications = ApplicationFactory.create_batch(2, plan=hot_desk)

    response = confirm_action(
        staff_client,
        MembershipApplication,
        "reject_selected",
        [application.pk for application in applications],
        reason="  No desks left in March.  ",
    )

    assert response.status_code == 302
    assert [level for level, _text in messages_of(response)] == [SUCCESS, SUCCESS]
    for application in applications:
        application.refresh_from_db()
        assert application.status == Status.REJECTED
        assert application.decision_reason == "No desks left in March."
        assert application.decided_by == staff_user


def test_reject_action_missing_reason_changes_nothing(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = confirm_action(
        staff_client, MembershipApplication, "reject_selected", [application.pk], reason="   "
    )

    application.refresh_from_db()
    assert response.status_code == 200
    assert response.context["form"].errors["reason"] == [
        "Give a reason for rejecting. It is kept on the application."
    ]
    assert application.status == Status.SUBMITTED
    assert application.decision_reason == ""


def test_reject_action_reports_decided_row(staff_client, hot_desk):
    submitted = ApplicationFactory(plan=hot_desk)
    withdrawn = ApplicationFactory(plan=hot_desk, status=Status.WITHDRAWN)

    response = confirm_action(
        staff_client,
        MembershipApplication,
        "reject_selected",
        [submitted.pk, withdrawn.pk],
        reason="Duplicate of another application.",
    )

    withdrawn.refresh_from_db()
    submitted_message, withdrawn_message = messages_of(response)
    assert submitted_message[0] == SUCCESS
    assert withdrawn_message[0] == ERROR
    assert "already Withdrawn" in withdrawn_message[1]
    assert withdrawn.status == Status.WITHDRAWN


def test_reject_button_shows_reason_form(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = staff_client.get(admin_url(MembershipApplication, "reject", application.pk))

    assert response.status_code == 200
    assert "reason" in response.context["form"].fields


def test_reject_button_stores_reason(staff_client, staff_user, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = staff_client.post(
        admin_url(MembershipApplication, "reject", application.pk),
        {"_reason_step": "1", "reason": "Applied for a plan we no longer offer."},
    )

    application.refresh_from_db()
    assert response.status_code == 302
    assert application.status == Status.REJECTED
    assert application.decision_reason == "Applied for a plan we no longer offer."
    assert application.decided_by == staff_user


def test_reject_button_missing_reason_changes_nothing(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = staff_client.post(
        admin_url(MembershipApplication, "reject", application.pk),
        {"_reason_step": "1", "reason": ""},
    )

    application.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert application.status == Status.SUBMITTED


def test_reject_button_decided_redirects(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, status=Status.APPROVED)

    response = staff_client.get(admin_url(MembershipApplication, "reject", application.pk))

    [(level, text)] = messages_of(response)
    assert response.status_code == 302
    assert "already Approved" in text


# --- Application pages and permissions --------------------------------------------------


def test_decision_buttons_shown_when_submitted(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)

    response = staff_client.get(admin_url(MembershipApplication, "change", application.pk))

    assert admin_url(MembershipApplication, "approve", application.pk) in response.text
    assert admin_url(MembershipApplication, "reject", application.pk) in response.text


def test_decision_buttons_hidden_when_decided(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, status=Status.REJECTED)

    response = staff_client.get(admin_url(MembershipApplication, "change", application.pk))

    assert response.status_code == 200
    assert admin_url(MembershipApplication, "approve", application.pk) not in response.text


def test_change_form_cannot_set_status(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk)
    data = {
        "first_name": application.first_name,
        "last_name": application.last_name,
        "email": application.email,
        "phone": "",
        "company": "Tostones & Code LLC",
        "plan": hot_desk.pk,
        "desired_start_date": "",
        "referral_source": "",
        "message": "",
        "status": Status.APPROVED,
        "decision_reason": "forged",
        "_save": "Save",
    }

    response = staff_client.post(admin_url(MembershipApplication, "change", application.pk), data)

    application.refresh_from_db()
    assert response.status_code == 302
    assert application.company == "Tostones & Code LLC"
    assert application.status == Status.SUBMITTED
    assert application.decision_reason == ""


def test_decided_application_is_view_only(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, status=Status.REJECTED, company="Before")

    response = staff_client.post(
        admin_url(MembershipApplication, "change", application.pk),
        {"company": "After", "_save": "Save"},
    )

    application.refresh_from_db()
    assert response.status_code == 403
    assert application.company == "Before"


def test_application_add_page_forbidden(staff_client):
    response = staff_client.get(admin_url(MembershipApplication, "add"))

    assert response.status_code == 403


def test_approved_application_cannot_be_deleted(staff_client, hot_desk):
    application = ApplicationFactory(plan=hot_desk, status=Status.APPROVED)

    response = staff_client.post(
        admin_url(MembershipApplication, "delete", application.pk), {"post": "yes"}
    )

    assert response.status_code == 403
    assert MembershipApplication.objects.filter(pk=application.pk).exists()


def test_non_staff_redirected_to_login(client, hot_desk):
    client.force_login(UserFactory())
    application = ApplicationFactory(plan=hot_desk)

    response = client.post(admin_url(MembershipApplication, "approve", application.pk))

    application.refresh_from_db()
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert application.status == Status.SUBMITTED


def staff_without_permissions():
    """A staff login with a second factor but no model permissions."""
    user = UserFactory(is_staff=True)
    enable_totp(user)
    return user


def test_anonymous_redirected_to_login(client):
    response = client.get(admin_url(MembershipApplication, "changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_permission_gets_403(client, hot_desk):
    client.force_login(staff_without_permissions())
    application = ApplicationFactory(plan=hot_desk)

    approve = client.post(admin_url(MembershipApplication, "approve", application.pk))
    reject = client.get(admin_url(MembershipApplication, "reject", application.pk))
    changelist = client.get(admin_url(Membership, "changelist"))

    application.refresh_from_db()
    assert approve.status_code == 403
    assert reject.status_code == 403
    assert changelist.status_code == 403
    assert application.status == Status.SUBMITTED


def test_staff_with_change_permission_can_approve(client, hot_desk):
    user = staff_without_permissions()
    user.user_permissions.add(
        Permission.objects.get(codename="change_membershipapplication"),
        Permission.objects.get(codename="view_membershipapplication"),
    )
    client.force_login(user)
    application = ApplicationFactory(plan=hot_desk, desired_start_date=far_start())

    response = client.post(admin_url(MembershipApplication, "approve", application.pk))

    application.refresh_from_db()
    assert response.status_code == 302
    assert application.status == Status.APPROVED
    assert application.decided_by == user


def test_actions_need_change_permission(client, hot_desk):
    client.force_login(staff_without_permissions())
    membership = MembershipFactory(plan=hot_desk)

    response = run_action(client, Membership, "activate_selected", [membership.pk])

    membership.refresh_from_db()
    assert response.status_code == 403
    assert membership.state == State.PENDING


# --- Membership actions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_state", "action", "end_state"),
    [
        (State.PENDING, "activate_selected", State.ACTIVE),
        (State.ACTIVE, "mark_past_due_selected", State.PAST_DUE),
        (State.PAST_DUE, "suspend_selected", State.SUSPENDED),
        (State.SUSPENDED, "reinstate_selected", State.ACTIVE),
        (State.PAST_DUE, "reinstate_selected", State.ACTIVE),
        (State.ACTIVE, "end_selected", State.ENDED),
        (State.PENDING, "cancel_selected", State.CANCELLED),
    ],
)
def test_membership_action_moves_state(
    staff_client, staff_user, hot_desk, start_state, action, end_state
):
    # A membership can end without a reason only once its commitment is over.
    start = timezone.localdate() - datetime.timedelta(days=400)
    membership = MembershipFactory(plan=hot_desk, state=start_state, start_date=start)

    response = run_action(staff_client, Membership, action, [membership.pk])

    membership.refresh_from_db()
    event = MembershipEvent.objects.get(membership=membership)
    [(level, text)] = messages_of(response)
    assert membership.state == end_state
    assert event.from_state == start_state
    assert event.to_state == end_state
    assert event.actor == staff_user
    assert level == SUCCESS
    assert f"Membership {membership.pk} " in text


def test_end_action_refused_before_commitment_end(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = run_action(staff_client, Membership, "end_selected", [membership.pk])

    membership.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "without a reason" in text
    assert membership.state == State.ACTIVE


def test_illegal_membership_action_names_both_states(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.PENDING)

    response = run_action(staff_client, Membership, "suspend_selected", [membership.pk])

    membership.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "from Pending first payment to Suspended" in text
    assert membership.state == State.PENDING
    assert not MembershipEvent.objects.exists()


def test_membership_actions_report_each_row(staff_client, hot_desk):
    pending = MembershipFactory(plan=hot_desk, state=State.PENDING)
    ended = MembershipFactory(plan=hot_desk, state=State.ENDED)

    response = run_action(staff_client, Membership, "activate_selected", [pending.pk, ended.pk])

    pending.refresh_from_db()
    ended.refresh_from_db()
    pending_message, ended_message = messages_of(response)
    assert pending_message[0] == SUCCESS
    assert ended_message[0] == ERROR
    assert "from Ended to Active" in ended_message[1]
    assert pending.state == State.ACTIVE
    assert ended.state == State.ENDED


def test_cancel_action_schedules_under_plan_policy(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = run_action(staff_client, Membership, "cancel_selected", [membership.pk])

    membership.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert membership.state == State.ACTIVE
    assert membership.cancel_at == membership.commitment_end
    assert level == SUCCESS
    assert "cancellation scheduled" in text


def test_cancel_action_immediate_plan_cancels_now(staff_client):
    plan = PlanFactory(cancellation_policy=Plan.CancellationPolicy.IMMEDIATE)
    membership = MembershipFactory(plan=plan, state=State.ACTIVE)

    run_action(staff_client, Membership, "cancel_selected", [membership.pk])

    membership.refresh_from_db()
    assert membership.state == State.CANCELLED
    assert membership.end_date == timezone.localdate()


def test_withdraw_cancellation_action(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)
    membership.cancel_at = membership.commitment_end
    membership.save()

    response = run_action(
        staff_client, Membership, "withdraw_cancellation_selected", [membership.pk]
    )

    membership.refresh_from_db()
    [(level, _text)] = messages_of(response)
    assert level == SUCCESS
    assert membership.cancel_at is None
    assert membership.state == State.ACTIVE


def test_withdraw_unscheduled_cancellation_errors(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = run_action(
        staff_client, Membership, "withdraw_cancellation_selected", [membership.pk]
    )

    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "no scheduled cancellation" in text


def test_withdraw_cancellation_after_cancel_errors(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.CANCELLED)
    membership.cancel_at = membership.commitment_end
    membership.save()

    response = run_action(
        staff_client, Membership, "withdraw_cancellation_selected", [membership.pk]
    )

    membership.refresh_from_db()
    [(level, text)] = messages_of(response)
    assert level == ERROR
    assert "already Cancelled" in text
    assert membership.cancel_at == membership.commitment_end
    assert not MembershipEvent.objects.exists()


def test_cancel_stale_membership_changes_nothing(staff_user, hot_desk):
    """Rows read before the lock may be stale, and a changed state must not be scheduled."""
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)
    Membership.objects.filter(pk=membership.pk).update(state=State.CANCELLED)

    with pytest.raises(MembersError, match="from Cancelled to Cancelled"):
        cancel_membership(membership=membership, actor=staff_user)

    membership.refresh_from_db()
    assert membership.cancel_at is None
    assert not MembershipEvent.objects.exists()


def test_cancel_stale_pending_copy_schedules(staff_user, hot_desk):
    """A caller's copy that still reads pending must not cancel an active membership now."""
    membership = MembershipFactory(plan=hot_desk, state=State.PENDING)
    Membership.objects.filter(pk=membership.pk).update(state=State.ACTIVE)

    result = cancel_membership(membership=membership, actor=staff_user)

    result.refresh_from_db()
    assert result.state == State.ACTIVE
    assert result.cancel_at == result.commitment_end


def test_cancel_immediately_asks_for_reason(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = run_action(staff_client, Membership, "cancel_immediately_selected", [membership.pk])

    membership.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].fields
    assert membership.state == State.ACTIVE


def test_cancel_immediately_missing_reason_changes_nothing(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = confirm_action(
        staff_client, Membership, "cancel_immediately_selected", [membership.pk], reason=""
    )

    membership.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert membership.state == State.ACTIVE
    assert not MembershipEvent.objects.exists()


def test_cancel_immediately_cancels_with_reason(staff_client, staff_user, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = confirm_action(
        staff_client,
        Membership,
        "cancel_immediately_selected",
        [membership.pk],
        reason="Moved to Rincón.",
    )

    membership.refresh_from_db()
    event = MembershipEvent.objects.get(membership=membership)
    assert response.status_code == 302
    assert membership.state == State.CANCELLED
    assert membership.end_date == timezone.localdate()
    assert event.reason == "Moved to Rincón."
    assert event.actor == staff_user


def test_action_from_membership_page(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.PENDING)
    url = admin_url(Membership, "change", membership.pk)

    response = staff_client.post(
        url,
        {CHANGE_FORM_ACTION: "activate_selected", ACTION_CHECKBOX_NAME: str(membership.pk)},
    )

    membership.refresh_from_db()
    assert response.status_code == 302
    assert response.url == url
    assert membership.state == State.ACTIVE


def test_cancel_immediately_from_membership_page(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)
    url = admin_url(Membership, "change", membership.pk)
    first_step = {CHANGE_FORM_ACTION: "cancel_immediately_selected"}
    first_step[ACTION_CHECKBOX_NAME] = str(membership.pk)

    page = staff_client.post(url, first_step)
    done = staff_client.post(url, {**first_step, "_reason_step": "1", "reason": "Fraud."})

    membership.refresh_from_db()
    assert page.status_code == 200
    assert f'name="{CHANGE_FORM_ACTION}"' in page.text
    assert done.status_code == 302
    assert membership.state == State.CANCELLED


def test_membership_page_is_view_only(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.PENDING)

    response = staff_client.post(
        admin_url(Membership, "change", membership.pk),
        {"state": State.ACTIVE, "monthly_price": "1.00", "_save": "Save"},
    )

    membership.refresh_from_db()
    assert response.status_code == 403
    assert membership.state == State.PENDING
    assert membership.monthly_price == Decimal("250.00")


def test_membership_page_shows_history(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.PENDING)
    MembershipEvent.objects.create(
        membership=membership, to_state=State.PENDING, cause="application approved"
    )

    response = staff_client.get(admin_url(Membership, "change", membership.pk))

    assert response.status_code == 200
    assert "application approved" in response.text


def test_membership_add_forbidden(staff_client):
    response = staff_client.get(admin_url(Membership, "add"))

    assert response.status_code == 403


def test_membership_delete_forbidden(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk)

    response = staff_client.post(admin_url(Membership, "delete", membership.pk), {"post": "yes"})

    assert response.status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


# --- Members --------------------------------------------------------------------------


def changelist_pks(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_member_list_shows_current_membership(staff_client, hot_desk):
    membership = MembershipFactory(
        plan=hot_desk,
        state=State.ACTIVE,
        start_date=datetime.date(2025, 1, 31),
        commitment_end=datetime.date(2026, 1, 31),
    )

    response = staff_client.get(admin_url(Member, "changelist"))

    assert "Hot Desk" in response.text
    assert admin_url(Membership, "change", membership.pk) in response.text
    assert "Jan. 31, 2025" in response.text
    assert "Jan. 31, 2026" in response.text


def test_member_filter_by_state(staff_client, hot_desk):
    active = MembershipFactory(plan=hot_desk, state=State.ACTIVE).member
    suspended = MembershipFactory(plan=hot_desk, state=State.SUSPENDED).member
    former = MembershipFactory(plan=hot_desk, state=State.ENDED).member
    never = MemberFactory()

    active_only = staff_client.get(admin_url(Member, "changelist"), {"current_state": "active"})
    without = staff_client.get(admin_url(Member, "changelist"), {"current_state": "none"})

    assert changelist_pks(active_only) == {active.pk}
    assert changelist_pks(without) == {former.pk, never.pk}
    assert suspended.pk not in changelist_pks(without)


def test_member_filter_by_plan(staff_client, hot_desk):
    other_plan = PlanFactory(name="Dedicated Desk")
    on_hot_desk = MembershipFactory(plan=hot_desk, state=State.ACTIVE).member
    MembershipFactory(plan=other_plan, state=State.ACTIVE)
    MembershipFactory(plan=hot_desk, state=State.CANCELLED)

    response = staff_client.get(admin_url(Member, "changelist"), {"current_plan": hot_desk.pk})

    assert changelist_pks(response) == {on_hot_desk.pk}


def test_member_filter_invalid_value(staff_client):
    response = staff_client.get(admin_url(Member, "changelist"), {"current_state": "bogus"})

    assert response.status_code == 302
    assert response.url.endswith("?e=1")


@pytest.mark.parametrize(
    ("query", "field", "value"),
    [
        ("Núñez", "last_name", "Núñez"),
        ("tostones", "company", "Tostones & Code LLC"),
        ("jose@", "email", "jose@example.com"),
    ],
)
def test_member_search(staff_client, query, field, value):
    found = MemberFactory(**{field: value})
    MemberFactory(last_name="Rivera", company="Other Co", email="other@example.com")

    response = staff_client.get(admin_url(Member, "changelist"), {"q": query})

    assert changelist_pks(response) == {found.pk}


def test_member_page_lists_memberships_read_only(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)

    response = staff_client.get(admin_url(Member, "change", membership.member.pk))

    [inline] = response.context["inline_admin_formsets"]
    assert admin_url(Membership, "change", membership.pk) in response.text
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission


def test_member_save_leaves_memberships_alone(staff_client, hot_desk):
    membership = MembershipFactory(plan=hot_desk, state=State.ACTIVE)
    member = membership.member
    data = {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "phone": "",
        "company": "Boricua Labs",
        "bio": "",
        "staff_notes": "",
        "user": "",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(membership.pk),
        "memberships-0-member": str(member.pk),
        "memberships-0-state": State.CANCELLED,
        "memberships-0-DELETE": "on",
        "_save": "Save",
    }

    response = staff_client.post(admin_url(Member, "change", member.pk), data)

    member.refresh_from_db()
    membership.refresh_from_db()
    assert response.status_code == 302
    assert member.company == "Boricua Labs"
    assert membership.state == State.ACTIVE


# --- Query counts ---------------------------------------------------------------------


def make_applications(count, plan):
    for index in range(count):
        status = Status.REJECTED if index % 3 == 0 else Status.SUBMITTED
        ApplicationFactory(plan=plan, status=status, company=f"Example {index}")


def make_members(count, plan):
    states = [State.PENDING, State.ACTIVE, State.PAST_DUE, State.SUSPENDED, State.ENDED, None]
    for index in range(count):
        state = states[index % len(states)]
        member = MemberFactory(company=f"Example {index}")
        if state is not None:
            MembershipFactory(member=member, plan=plan, state=state)
        if index % 4 == 0:
            MembershipFactory(member=member, plan=plan, state=State.CANCELLED)


def make_memberships(count, plan):
    states = list(State)
    for index in range(count):
        MembershipFactory(plan=plan, state=states[index % len(states)])


def count_queries(client, url, params) -> tuple[int, int]:
    """Return how many queries a changelist GET issues and how many rows it shows."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(queries), len(response.context["cl"].result_list)


CHANGELIST_CASES = [
    (MembershipApplication, make_applications, {}),
    (MembershipApplication, make_applications, {"q": "example"}),
    (MembershipApplication, make_applications, {"status__exact": "submitted"}),
    (MembershipApplication, make_applications, {"plan__id__exact": "{plan}"}),
    (Member, make_members, {}),
    (Member, make_members, {"q": "example"}),
    (Member, make_members, {"current_state": "active"}),
    (Member, make_members, {"current_state": "none"}),
    (Member, make_members, {"current_plan": "{plan}"}),
    (Membership, make_memberships, {}),
    (Membership, make_memberships, {"q": "example"}),
    (Membership, make_memberships, {"state__exact": "active"}),
    (Membership, make_memberships, {"plan__id__exact": "{plan}"}),
]


@pytest.mark.parametrize(("model", "make_rows", "params"), CHANGELIST_CASES)
def test_changelist_queries_constant(staff_client, hot_desk, model, make_rows, params):
    url = admin_url(model, "changelist")
    # "all" shows every row on one page (up to list_max_show_all, 200 by default).
    params = {key: value.format(plan=hot_desk.pk) for key, value in params.items()}
    params["all"] = ""
    make_rows(10, hot_desk)
    # The first request may fill per-process caches, so counting starts with the second.
    staff_client.get(url, params)

    few_queries, few_rows = count_queries(staff_client, url, params)
    make_rows(190, hot_desk)
    many_queries, many_rows = count_queries(staff_client, url, params)

    assert many_rows > few_rows
    assert many_queries == few_queries


def test_application_edit_to_open_email_refused(staff_client, hot_desk):
    ApplicationFactory(plan=hot_desk, email="taken@example.com")
    application = ApplicationFactory(plan=hot_desk, email="free@example.com")
    data = {
        "first_name": application.first_name,
        "last_name": application.last_name,
        "email": "TAKEN@example.com",
        "phone": "",
        "company": "",
        "plan": str(hot_desk.pk),
        "desired_start_date": application.desired_start_date.isoformat(),
        "referral_source": "",
        "message": "",
    }

    response = staff_client.post(admin_url(MembershipApplication, "change", application.pk), data)

    application.refresh_from_db()
    assert response.status_code == 200
    assert "already waiting for review" in response.content.decode()
    assert application.email == "free@example.com"


def test_plan_negative_price_message(staff_client):
    data = {
        "name": "Broken",
        "slug": "broken",
        "monthly_price": "-1",
        "billing_interval": "month",
        "contract_months": "12",
        "included_credit": "0",
        "renewal_policy": "renew_term",
        "cancellation_policy": "at_commitment_end",
        "sort_order": "0",
    }

    response = staff_client.post(admin_url(Plan, "add"), data)

    assert response.status_code == 200
    assert "The monthly price cannot be negative." in response.content.decode()
    assert not Plan.objects.filter(slug="broken").exists()


def member_form_data(member, **overrides):
    data = {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "phone": "",
        "company": member.company,
        "bio": "",
        "staff_notes": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_member_email_change_moves_login(staff_client):
    from allauth.account.models import EmailAddress

    from tests.factories import MemberWithUserFactory

    member = MemberWithUserFactory(email="ana@example.com")
    data = member_form_data(member, email="Ana.New@Example.com")

    response = staff_client.post(admin_url(Member, "change", member.pk), data)

    member.refresh_from_db()
    member.user.refresh_from_db()
    addresses = list(EmailAddress.objects.filter(user=member.user).values_list("email", flat=True))
    assert response.status_code == 302
    assert member.email == "Ana.New@example.com"
    assert member.user.email == "ana.new@example.com"
    assert addresses == ["ana.new@example.com"]


def test_member_login_not_editable(staff_client):
    from tests.factories import MemberWithUserFactory

    member = MemberWithUserFactory(email="ana@example.com")
    original_user = member.user_id
    intruder = UserFactory()

    staff_client.post(
        admin_url(Member, "change", member.pk), member_form_data(member, user=str(intruder.pk))
    )

    member.refresh_from_db()
    assert member.user_id == original_user
