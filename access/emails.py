"""Emails of door access, queued in the outbox within the caller's transaction."""

from django.utils import translation

from members.languages import member_language
from outbox.services import queue_email

from .models import AccessEvent, AccessKey


def _key_context(key: AccessKey) -> dict:
    with translation.override(member_language(key.member)):
        # The label in the language of the email.
        kind = str(AccessKey.Kind(key.kind).label)
    return {
        "key_id": key.pk,
        "first_name": key.member.first_name,
        "key_kind": kind,
        "key_last_digits": key.last_digits,
    }


def queue_key_issued(key: AccessKey) -> None:
    """Tell the member a key is registered to them, and whether it opens the doors yet."""
    queue_email(
        recipient=key.member.email,
        template="key_issued",
        context={**_key_context(key), "opens_doors": key.wanted_state == AccessKey.Wanted.ACTIVE},
        dedupe_key=f"key_issued:key:{key.pk}",
        language=member_language(key.member),
    )


def queue_key_suspended(key: AccessKey, event: AccessEvent) -> None:
    """Tell the member staff suspended their key. The staff's reason stays internal."""
    queue_email(
        recipient=key.member.email,
        template="key_suspended",
        context=_key_context(key),
        dedupe_key=f"key_suspended:access_event:{event.pk}",
        language=member_language(key.member),
    )
