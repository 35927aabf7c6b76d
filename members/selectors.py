"""Read-side queries of the members domain that pages share.

Each function returns a queryset (or reads one that was built here) so that a page
listing many rows issues the same number of queries whatever the row count.
"""

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from .models import Member, Membership

# Attribute that `with_current_membership` fills on each member with a list of at most
# one membership, because the partial unique constraint allows one current membership.
CURRENT_MEMBERSHIPS_ATTR = "current_memberships"

# Query-string value of the member filters that selects members with no current membership.
NO_CURRENT_MEMBERSHIP = "none"


def with_current_membership(queryset: QuerySet[Member]) -> QuerySet[Member]:
    """Prefetch each member's current membership and its plan in one extra query."""
    current = Membership.objects.filter(state__in=Membership.CURRENT_STATES).select_related("plan")
    return queryset.prefetch_related(
        Prefetch("memberships", queryset=current, to_attr=CURRENT_MEMBERSHIPS_ATTR)
    )


def current_membership(member: Member) -> Membership | None:
    """Return the member's pending, active, past-due or suspended membership, if any.

    Reads the list prefetched by `with_current_membership` when it is there. Otherwise
    it issues one query, which in a loop over members is an N+1.
    """
    prefetched = getattr(member, CURRENT_MEMBERSHIPS_ATTR, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        member.memberships.filter(state__in=Membership.CURRENT_STATES)
        .select_related("plan")
        .first()
    )


def filter_members_by_current_state(queryset: QuerySet[Member], state: str) -> QuerySet[Member]:
    """Keep members whose current membership is in `state`.

    `state` is one of `Membership.CURRENT_STATES`, or `NO_CURRENT_MEMBERSHIP` for members
    without a current membership (never had one, or only cancelled and ended ones).
    """
    if state == NO_CURRENT_MEMBERSHIP:
        current = Membership.objects.filter(
            member=OuterRef("pk"), state__in=Membership.CURRENT_STATES
        )
        return queryset.filter(~Exists(current))
    if state not in Membership.CURRENT_STATES:
        raise ValueError(
            f"{state!r} is not a current membership state. Use one of "
            f"{', '.join(Membership.CURRENT_STATES)} or {NO_CURRENT_MEMBERSHIP!r}."
        )
    return queryset.filter(Exists(Membership.objects.filter(member=OuterRef("pk"), state=state)))


def filter_members_by_current_plan(queryset: QuerySet[Member], plan_id: int) -> QuerySet[Member]:
    """Keep members whose current membership is on the plan with primary key `plan_id`."""
    current_on_plan = Membership.objects.filter(
        member=OuterRef("pk"), plan_id=plan_id, state__in=Membership.CURRENT_STATES
    )
    return queryset.filter(Exists(current_on_plan))
