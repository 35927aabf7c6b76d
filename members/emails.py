"""Emails of the members domain, queued in the outbox within the caller's transaction.

Each function names the event that causes its email in the dedupe key, so a service
that runs twice for the same event queues one email. Membership emails are keyed by
the `MembershipEvent` that recorded the change.
"""

from django.conf import settings

from outbox.services import queue_email

from .languages import address_language, member_language
from .models import Membership, MembershipApplication, MembershipEvent, Plan


def queue_application_received(application: MembershipApplication) -> None:
    """Confirm the application to the applicant, and tell each staff address about it."""
    queue_email(
        recipient=application.email,
        template="application_received",
        context={
            "application_id": application.pk,
            "first_name": application.first_name,
            "plan_name": application.plan.name,
            "desired_start_date": application.desired_start_date,
        },
        dedupe_key=f"application_received:application:{application.pk}",
        language=application.language,
    )
    notice = {
        "application_id": application.pk,
        "full_name": application.full_name,
        "email": application.email,
        "phone": application.phone,
        "company": application.company,
        "plan_name": application.plan.name,
        "desired_start_date": application.desired_start_date,
        "message": application.message,
    }
    for address in settings.CPR_STAFF_NOTIFY_EMAILS:
        queue_email(
            recipient=address,
            template="application_staff_notice",
            context=notice,
            dedupe_key=f"application_staff_notice:application:{application.pk}:{address.lower()}",
            language=address_language(address),
        )


def queue_application_approved(application: MembershipApplication, membership: Membership) -> None:
    """Tell the applicant the membership is approved, and how to sign in and pay."""
    queue_email(
        recipient=membership.member.email,
        template="application_approved",
        context={
            "application_id": application.pk,
            "membership_id": membership.pk,
            "first_name": membership.member.first_name,
            "email": membership.member.email,
            "plan_name": membership.plan.name,
            "start_date": membership.start_date,
            "commitment_end": membership.commitment_end,
            "monthly_price": membership.monthly_price,
        },
        dedupe_key=f"application_approved:application:{application.pk}",
        language=application.language,
    )


def queue_application_rejected(application: MembershipApplication) -> None:
    """Tell the applicant the application is declined. The staff's reason stays internal."""
    queue_email(
        recipient=application.email,
        template="application_rejected",
        context={
            "application_id": application.pk,
            "first_name": application.first_name,
            "plan_name": application.plan.name,
        },
        dedupe_key=f"application_rejected:application:{application.pk}",
        language=application.language,
    )


def queue_membership_email(membership: Membership, template: str, **extra) -> None:
    """Queue `template` to the member, keyed by the membership's latest event."""
    event_id = (
        MembershipEvent.objects.filter(membership_id=membership.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    member = membership.member
    queue_email(
        recipient=member.email,
        template=template,
        context={
            "membership_id": membership.pk,
            "first_name": member.first_name,
            "plan_name": membership.plan.name,
            **extra,
        },
        dedupe_key=f"{template}:membership_event:{event_id}",
        language=member_language(member),
    )


def queue_cancellation_confirmed(membership: Membership, *, scheduled: bool) -> None:
    """Confirm a cancellation: one scheduled for the commitment end, or one in effect now."""
    end_date = membership.cancel_at if scheduled else membership.end_date
    queue_membership_email(
        membership, "cancellation_confirmed", scheduled=scheduled, end_date=end_date
    )


def commitment_outcome(membership: Membership) -> str:
    """Return what happens at the commitment end: renews, ends, month_to_month or cancelled."""
    if membership.cancel_at is not None:
        return "cancelled"
    return {
        Plan.RenewalPolicy.END: "ends",
        Plan.RenewalPolicy.MONTH_TO_MONTH: "month_to_month",
    }.get(membership.plan.renewal_policy, "renews")


def commitment_ending_key(membership: Membership) -> str:
    """Return the dedupe key of the reminder for the membership's current commitment end."""
    return f"commitment_ending:membership:{membership.pk}:{membership.commitment_end.isoformat()}"


def queue_commitment_ending(membership: Membership) -> None:
    """Remind the member of the commitment end, once per membership and commitment end."""
    member = membership.member
    queue_email(
        recipient=member.email,
        template="commitment_ending",
        context={
            "membership_id": membership.pk,
            "first_name": member.first_name,
            "plan_name": membership.plan.name,
            "commitment_end": membership.commitment_end,
            "contract_months": membership.contract_months,
            "outcome": commitment_outcome(membership),
        },
        dedupe_key=commitment_ending_key(membership),
        language=member_language(member),
    )
