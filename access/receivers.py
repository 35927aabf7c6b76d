"""Keeps door keys in step with memberships: every membership change recomputes the keys."""

import logging

from django.dispatch import receiver

from members.events import membership_changed
from members.models import Membership, MembershipEvent

logger = logging.getLogger(__name__)

# Membership event causes written by billing's scheduled jobs rather than by a payment.
SCHEDULED_CAUSES = frozenset(
    {"grace period over", "term ended", "paid and start date reached", "scheduled cancellation"}
)


def cause_of_change(membership_id: int) -> str:
    """Return the AccessEvent cause for the membership's latest change.

    A change made by a staff user is "staff", one made by a scheduled job is "schedule",
    and any other (a payment, a failed payment, a gateway cancellation) is "payment".
    """
    event = (
        MembershipEvent.objects.filter(membership_id=membership_id)
        .order_by("-created_at", "-pk")
        .only("actor_id", "cause")
        .first()
    )
    if event is None:
        return "payment"
    if event.actor_id is not None:
        return "staff"
    if event.cause in SCHEDULED_CAUSES:
        return "schedule"
    return "payment"


@receiver(membership_changed, dispatch_uid="access.refresh_keys_on_membership_change")
def refresh_keys_on_membership_change(sender, membership_id, cause=None, **kwargs):
    """Recompute the wanted state of the member's keys after a membership change.

    `cause` may be sent with the signal; without it, it is read from the membership's
    latest event. The signal is sent after the membership's transaction committed, so an
    error here cannot undo that change: it is logged instead of raised, and the keys are
    recomputed at the next membership change.
    """
    from . import services

    member_id = None
    try:
        member_id = (
            Membership.objects.filter(pk=membership_id).values_list("member_id", flat=True).first()
        )
        if member_id is None:
            logger.warning(
                "Membership %s changed but no longer exists; its keys are unchanged",
                membership_id,
            )
            return
        services.refresh_member_keys(
            member_id=member_id, cause=cause or cause_of_change(membership_id)
        )
    except Exception:
        logger.exception(
            "Refreshing the access keys of member %s after membership %s changed failed",
            member_id,
            membership_id,
        )
