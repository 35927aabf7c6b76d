"""Read-side queries for door access keys that the back office and the member portal share.

Each function builds one queryset, so a page that lists many members or keys issues the
same number of queries whatever the row count.
"""

from django.db.models import Prefetch, QuerySet

from .models import AccessKey

Status = AccessKey.Status

# Keys the member still has in hand: the member list shows these as the member's current
# key. A revoked key counts because staff still have to collect it.
HELD_STATUSES = (Status.ACTIVE, Status.SUSPENDED, Status.REVOKED)

# Keys shown to the member on the portal. A lost key stays listed so that the member
# can check that staff recorded the loss. Returned keys are history only.
PORTAL_STATUSES = (*HELD_STATUSES, Status.LOST)


def keys_newest_first(statuses) -> QuerySet[AccessKey]:
    return AccessKey.objects.filter(status__in=statuses).order_by("-issued_at", "-id")


def held_keys_prefetch(to_attr: str) -> Prefetch:
    """Return a prefetch of each member's held keys, newest first, into `to_attr`."""
    return Prefetch("access_keys", queryset=keys_newest_first(HELD_STATUSES), to_attr=to_attr)


def portal_keys_prefetch(to_attr: str) -> Prefetch:
    """Return a prefetch of the keys shown to a member on the portal, newest first."""
    return Prefetch("access_keys", queryset=keys_newest_first(PORTAL_STATUSES), to_attr=to_attr)


def admin_keys(queryset: QuerySet[AccessKey]) -> QuerySet[AccessKey]:
    """Join each key to its member, which every row of the key list shows."""
    return queryset.select_related("member")
