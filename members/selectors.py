"""Read-side queries of the members domain that pages share.

Each function returns a queryset (or reads one that was built here) so that a page
listing many rows issues the same number of queries whatever the row count.
"""

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from access import selectors as access_selectors

from .models import Member, Membership, MembershipApplication, MembershipEvent

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


# Attribute that `with_current_keys` fills on each member with the keys in the member's
# hands (active, suspended or revoked), newest first.
CURRENT_KEYS_ATTR = "current_keys"


def with_current_keys(queryset: QuerySet[Member]) -> QuerySet[Member]:
    """Prefetch each member's access keys in hand, in one extra query."""
    return queryset.prefetch_related(access_selectors.held_keys_prefetch(CURRENT_KEYS_ATTR))


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


# --- Member portal -----------------------------------------------------------------------

# Attribute that `portal_member_with_history` fills with all of the member's memberships,
# newest first, each with its plan.
PORTAL_MEMBERSHIPS_ATTR = "portal_memberships"

# Attribute that `portal_member_with_history` fills with the member's access keys that the
# portal shows (every status but returned), newest first.
PORTAL_ACCESS_KEYS_ATTR = "portal_access_keys"


def portal_member(user) -> Member | None:
    """Return the member whose login is `user`, or None for anonymous users and non-members.

    The portal looks the member up only through the signed-in login, never by an id taken
    from the request, so one member can never load another's row.
    """
    if not user.is_authenticated:
        return None
    return Member.objects.filter(user=user).first()


def portal_member_with_history(user) -> Member | None:
    """Return `portal_member(user)` with every membership and its plan, and its keys.

    Three queries whatever the member's history: the member, the memberships joined to
    their plans (on the `PORTAL_MEMBERSHIPS_ATTR` attribute), and the access keys (on the
    `PORTAL_ACCESS_KEYS_ATTR` attribute).
    """
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("plan").order_by("-start_date", "-id")
    return (
        Member.objects.filter(user=user)
        .prefetch_related(
            Prefetch("memberships", queryset=memberships, to_attr=PORTAL_MEMBERSHIPS_ATTR),
            access_selectors.portal_keys_prefetch(PORTAL_ACCESS_KEYS_ATTR),
        )
        .first()
    )


def portal_membership(member: Member, pk: int) -> Membership | None:
    """Return the member's own membership `pk` with its plan and events, or None.

    A `pk` that belongs to another member gives None, exactly like one that does not exist.
    """
    events = MembershipEvent.objects.order_by("created_at", "id")
    return (
        Membership.objects.filter(member=member, pk=pk)
        .select_related("plan")
        .prefetch_related(Prefetch("events", queryset=events))
        .first()
    )


def open_application_for_user(user) -> MembershipApplication | None:
    """Return the application under review that `user` submitted while signed in, if any."""
    if not user.is_authenticated:
        return None
    return (
        MembershipApplication.objects.filter(
            user=user, status=MembershipApplication.Status.SUBMITTED
        )
        .select_related("plan")
        .first()
    )
