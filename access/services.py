"""State changes of door access keys, and their reconciliation with the lock system.

Each function takes keyword arguments and returns the changed key. Key changes run in one
transaction, record an `AccessEvent`, and queue a reconcile task once the transaction
commits. A broken rule raises `AccessError` with a message staff can act on, and changes
nothing.

A key's wanted state follows the member's current membership (see `wanted_state_for`).
`reconcile_key` moves the backend toward that state and is the only code that calls the
backend.
"""

import datetime
import logging
import unicodedata
from collections.abc import Collection

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from members import services as members_services
from members.models import Member, Membership

from . import emails
from .backends import get_backend
from .backends.base import AccessBackendError
from .models import AccessEvent, AccessKey

logger = logging.getLogger(__name__)

Status = AccessKey.Status
Wanted = AccessKey.Wanted
Sync = AccessKey.Sync
Cause = AccessEvent.Cause
MembershipState = Membership.State

# Statuses that release a key's number for reuse. A key in any other status keeps its number.
NUMBER_RELEASED_STATUSES = (Status.RETURNED,)
# Statuses staff set by hand that no membership change undoes.
FINAL_STATUSES = (Status.LOST, Status.RETURNED)


class AccessError(Exception):
    """A rule of the access domain was broken. The message names the rule and what to do."""


# --- Wanted state ----------------------------------------------------------------------


def current_membership(member_id: int) -> Membership | None:
    """Return the member's pending, active, past-due or suspended membership, if any."""
    return (
        Membership.objects.filter(member_id=member_id, state__in=Membership.CURRENT_STATES)
        .order_by("-pk")
        .first()
    )


def membership_wanted_state(membership: Membership | None, today: datetime.date) -> tuple[str, str]:
    """Return the wanted door state for a membership, and the reason in words.

    Active, or past due up to and including its `grace_until` day, opens the doors. A
    past-due membership without a grace date (set by hand) keeps access until staff act.
    A pending membership is not paid yet, so its keys stay suspended until it activates.
    """
    if membership is None:
        return Wanted.REVOKED, "member has no current membership"
    state = membership.state
    label = f"membership {membership.pk} is {state}"
    last_event = membership.events.order_by("-created_at", "-pk").first()
    if last_event is not None and last_event.to_state == state and last_event.cause:
        label = f"{label} ({last_event.cause})"
    if state == MembershipState.ACTIVE:
        return Wanted.ACTIVE, label
    if state == MembershipState.PAST_DUE:
        if membership.grace_until is None or today <= membership.grace_until:
            return Wanted.ACTIVE, f"{label}, within grace until {membership.grace_until}"
        return Wanted.SUSPENDED, f"{label}, grace period ended {membership.grace_until}"
    if state in (MembershipState.SUSPENDED, MembershipState.PENDING):
        return Wanted.SUSPENDED, label
    return Wanted.REVOKED, label


def wanted_state_for(
    key: AccessKey, membership: Membership | None, today: datetime.date
) -> tuple[str, str, str]:
    """Return the key's (status, wanted state, reason) for the member's current membership.

    Lost and returned keys stay revoked. A staff hold keeps a key suspended unless the
    membership revokes it.
    """
    if key.status in FINAL_STATUSES:
        return key.status, Wanted.REVOKED, f"key is {key.status}"
    wanted, reason = membership_wanted_state(membership, today)
    if key.staff_hold and wanted != Wanted.REVOKED:
        reason = f"suspended by staff: {key.staff_hold_reason} ({reason})"
        return Status.SUSPENDED, Wanted.SUSPENDED, reason
    return wanted, wanted, reason


# --- Recording changes -------------------------------------------------------------------


def queue_reconcile(key_id: int) -> None:
    """Queue `reconcile_key_task` for the key once the current transaction commits.

    A broker that cannot take the task loses nothing: the key stays pending and the
    periodic `reconcile_all_task` picks it up. So the error is logged, not raised into the
    code that changed the key.
    """

    def send():
        from .tasks import reconcile_key_task

        try:
            reconcile_key_task.delay(key_id)
        except Exception:
            logger.exception("Queueing the reconcile of access key %s failed", key_id)

    transaction.on_commit(send)


def _apply(
    *,
    key: AccessKey,
    status: str,
    wanted: str,
    cause: str,
    actor: AbstractBaseUser | None,
    reason: str,
    extra_fields: dict | None = None,
    queue_sync: bool = True,
) -> AccessEvent | None:
    """Save the key's new status and wanted state with an event, and return that event.

    Returns None, and records nothing, when nothing changed. Must run inside the caller's
    transaction, on a key locked with select_for_update. With `queue_sync=False` no
    reconcile is queued: the key stays pending until the periodic reconcile or "Sync now"
    pushes it.
    """
    extra_fields = extra_fields or {}
    changed = (
        key.status != status
        or key.wanted_state != wanted
        or any(getattr(key, name) != value for name, value in extra_fields.items())
    )
    if not changed:
        return None

    event = AccessEvent(
        key=key,
        cause=cause,
        actor=actor,
        from_status=key.status,
        to_status=status,
        from_wanted=key.wanted_state,
        to_wanted=wanted,
        reason=reason,
    )
    fields = ["status", "wanted_state", "updated_at", *extra_fields]
    key.status = status
    for name, value in extra_fields.items():
        setattr(key, name, value)
    if key.wanted_state != wanted or key.backend_state != wanted:
        # A new target for the backend: earlier failures were about another target.
        key.wanted_state = wanted
        key.sync_status = Sync.PENDING
        key.sync_attempts = 0
        key.last_error = ""
        fields += ["sync_status", "sync_attempts", "last_error"]
    key.save(update_fields=fields)
    event.save()
    if queue_sync:
        queue_reconcile(key.pk)
    logger.info(
        "Access key %s of member %s: %s/%s -> %s/%s (%s by user %s): %s",
        key.pk,
        key.member_id,
        event.from_status,
        event.from_wanted,
        status,
        wanted,
        cause,
        getattr(actor, "pk", None),
        reason,
    )
    return event


def _lock(key: AccessKey) -> AccessKey:
    return AccessKey.objects.select_for_update().get(pk=key.pk)


def _require_not_final(key: AccessKey, verb: str) -> None:
    if key.status in FINAL_STATUSES:
        raise AccessError(
            _(
                "Cannot %(verb)s key %(number)s: it is %(status)s. Issue a new key to the "
                "member instead."
            )
            % {"verb": verb, "number": key.number, "status": key.get_status_display()}
        )


# --- Staff actions -----------------------------------------------------------------------


def normalize_key_number(number: str) -> str:
    """Drop spaces and invisible characters, so "1234 5678" and "12345678" are one number."""
    return "".join(
        character
        for character in number
        if not character.isspace() and unicodedata.category(character) != "Cf"
    )


def issue_key(
    *,
    member: Member,
    number: str,
    kind: str,
    actor: AbstractBaseUser | None,
    event_note: str = "issued",
    queue_sync: bool = True,
) -> AccessKey:
    """Issue a key with `number` to a member who has a current membership, and email them.

    Raises AccessError when the number is empty, when another key that was not returned
    has the same number (ignoring case), or when the member has no current membership.
    `event_note` starts the reason of the key's first event. With `queue_sync=False` the
    key is only recorded, as an import does: it stays pending, no reconcile is queued (the
    lock system is not called until the periodic reconcile or "Sync now" pushes it), and
    the member gets no email.
    """
    number = normalize_key_number(number)
    if not number:
        raise AccessError(_("Enter the credential number printed on the key."))
    if kind not in AccessKey.Kind.values:
        raise AccessError(
            _("“%(kind)s” is not a key kind; use one of %(kinds)s.")
            % {"kind": kind, "kinds": ", ".join(AccessKey.Kind.values)}
        )
    in_use_message = _(
        "The number %(number)s belongs to another key that was not returned. Mark that key "
        "returned first, or check the number on the key."
    ) % {"number": number}

    with transaction.atomic():
        membership = current_membership(member.pk)
        if membership is None:
            raise AccessError(
                _(
                    "Member %(member)s has no current membership, so no key can be issued. "
                    "Approve an application or start a membership first."
                )
                % {"member": member}
            )
        if (
            AccessKey.objects.filter(number__iexact=number)
            .exclude(status__in=NUMBER_RELEASED_STATUSES)
            .exists()
        ):
            raise AccessError(in_use_message)

        key = AccessKey(member=member, number=number, kind=kind, issued_at=timezone.now())
        status, wanted, reason = wanted_state_for(key, membership, members_services.local_today())
        key.status = status
        key.wanted_state = wanted
        key.sync_status = Sync.PENDING
        try:
            with transaction.atomic():
                key.save()
        except IntegrityError as error:
            # Another issue of the same number committed after the check above.
            logger.info("Issuing key number to member %s rejected: %s", member.pk, error)
            raise AccessError(in_use_message) from error
        AccessEvent.objects.create(
            key=key,
            cause=Cause.STAFF,
            actor=actor,
            to_status=status,
            to_wanted=wanted,
            reason=f"{event_note}; {reason}",
        )
        if queue_sync:
            queue_reconcile(key.pk)
            emails.queue_key_issued(key)

    logger.info(
        "Access key %s (%s) issued to member %s by user %s, wanted %s",
        key.pk,
        kind,
        member.pk,
        getattr(actor, "pk", None),
        wanted,
    )
    return key


def mark_key_lost(*, key: AccessKey, actor: AbstractBaseUser | None, reason: str = "") -> AccessKey:
    """Mark a key lost: it is revoked at the door and its member can get a new key."""
    with transaction.atomic():
        key = _lock(key)
        _require_not_final(key, _("mark lost"))
        _apply(
            key=key,
            status=Status.LOST,
            wanted=Wanted.REVOKED,
            cause=Cause.STAFF,
            actor=actor,
            reason=f"lost; {reason.strip()}" if reason.strip() else "lost",
        )
    return key


def mark_key_returned(*, key: AccessKey, actor: AbstractBaseUser | None) -> AccessKey:
    """Mark a key handed back: it is revoked and its number can be issued again."""
    with transaction.atomic():
        key = _lock(key)
        if key.status == Status.RETURNED:
            raise AccessError(
                _("Key %(number)s is already marked returned.") % {"number": key.number}
            )
        _apply(
            key=key,
            status=Status.RETURNED,
            wanted=Wanted.REVOKED,
            cause=Cause.STAFF,
            actor=actor,
            reason="returned",
            extra_fields={"returned_at": timezone.now(), "staff_hold": False},
        )
    return key


def suspend_key(*, key: AccessKey, actor: AbstractBaseUser | None, reason: str) -> AccessKey:
    """Suspend a key by staff decision; it stays suspended until `restore_key`, whatever
    the payments do. `reason` is required and shown in the key's history. The member is
    sent an email that the key is suspended, without the reason."""
    reason = reason.strip()
    if not reason:
        raise AccessError(_("Give a reason for suspending the key."))
    with transaction.atomic():
        key = _lock(key)
        _require_not_final(key, _("suspend"))
        if key.staff_hold:
            raise AccessError(
                _("Key %(number)s is already suspended by staff: %(reason)s")
                % {"number": key.number, "reason": key.staff_hold_reason}
            )
        key.staff_hold = True
        key.staff_hold_reason = reason
        status, wanted, computed_reason = wanted_state_for(
            key, current_membership(key.member_id), members_services.local_today()
        )
        key.staff_hold = False  # reset so that _apply detects the change
        event = _apply(
            key=key,
            status=status,
            wanted=wanted,
            cause=Cause.STAFF,
            actor=actor,
            reason=computed_reason,
            extra_fields={"staff_hold": True, "staff_hold_reason": reason},
        )
        emails.queue_key_suspended(key, event)
    return key


def restore_key(*, key: AccessKey, actor: AbstractBaseUser | None, reason: str = "") -> AccessKey:
    """Lift a staff suspension; the key then follows the membership again."""
    with transaction.atomic():
        key = _lock(key)
        _require_not_final(key, _("restore"))
        if not key.staff_hold:
            raise AccessError(
                _("Key %(number)s is not suspended by staff, so there is nothing to restore.")
                % {"number": key.number}
            )
        key.staff_hold = False
        status, wanted, computed_reason = wanted_state_for(
            key, current_membership(key.member_id), members_services.local_today()
        )
        key.staff_hold = True
        note = (
            f"staff suspension lifted; {reason.strip()}"
            if reason.strip()
            else ("staff suspension lifted")
        )
        _apply(
            key=key,
            status=status,
            wanted=wanted,
            cause=Cause.STAFF,
            actor=actor,
            reason=f"{note}; {computed_reason}",
            extra_fields={"staff_hold": False, "staff_hold_reason": ""},
        )
    return key


# --- Membership changes ----------------------------------------------------------------


def refresh_member_keys(
    *,
    member_id: int,
    cause: str,
    queue_sync: bool = True,
    reason_prefix: str = "",
    key_ids: Collection[int] | None = None,
) -> list[AccessKey]:
    """Recompute the wanted state of the member's keys from their current membership.

    `cause` is an `AccessEvent.Cause` value (payment, schedule, staff). Returns the keys
    whose status or wanted state changed; each gets an event naming the membership state,
    after `reason_prefix` when one is given. With `queue_sync=False` the changed keys are
    left pending and no reconcile is queued, so the lock system is not called. With
    `key_ids`, only those keys of the member are recomputed.
    """
    if cause not in Cause.values:
        raise AccessError(
            _("“%(cause)s” is not an access event cause; use one of %(causes)s.")
            % {"cause": cause, "causes": ", ".join(Cause.values)}
        )
    changed = []
    with transaction.atomic():
        membership = current_membership(member_id)
        today = members_services.local_today()
        keys = AccessKey.objects.select_for_update().filter(member_id=member_id).order_by("pk")
        if key_ids is not None:
            keys = keys.filter(pk__in=key_ids)
        for key in keys:
            status, wanted, reason = wanted_state_for(key, membership, today)
            if _apply(
                key=key,
                status=status,
                wanted=wanted,
                cause=cause,
                actor=None,
                reason=f"{reason_prefix}{reason}",
                queue_sync=queue_sync,
            ):
                changed.append(key)
    return changed


# --- Reconciliation with the backend ---------------------------------------------------


def _member_has_other_key_wanting(key: AccessKey, states: tuple[str, ...]) -> bool:
    return (
        AccessKey.objects.filter(member_id=key.member_id, wanted_state__in=states)
        .exclude(pk=key.pk)
        .exists()
    )


def _push(backend, key: AccessKey, wanted: str) -> None:
    """Make the backend calls that move `key` from its last known state to `wanted`.

    Grant, remove, suspend and restore act on the member, so they are skipped when they
    would cut off another key of the same member that should open doors. A suspended key
    always loses its credential, so no member-level grant can reopen it.
    """
    member = key.member
    member_id = member.pk
    if wanted == Wanted.ACTIVE:
        backend.ensure_user(member_id=member_id, name=member.full_name, email=member.email)
        backend.assign_credential(member_id=member_id, number=key.number, kind=key.kind)
        if key.backend_state == Wanted.SUSPENDED:
            backend.restore(member_id=member_id)
        else:
            backend.grant_access(member_id=member_id)
    elif wanted == Wanted.SUSPENDED:
        if not key.backend_state:
            backend.ensure_user(member_id=member_id, name=member.full_name, email=member.email)
        # The credential is cancelled, not only the member's access: access is per member,
        # so a later grant for another key, or a payment, would otherwise reopen the doors
        # to a key that staff suspended. Restoring assigns the credential again.
        backend.cancel_credential(member_id=member_id, number=key.number)
        if not _member_has_other_key_wanting(key, (Wanted.ACTIVE,)):
            backend.suspend(member_id=member_id)
    elif key.backend_state:
        # Revoked. A key the backend never received needs no calls.
        if not _member_has_other_key_wanting(key, (Wanted.ACTIVE, Wanted.SUSPENDED)):
            backend.remove_access(member_id=member_id)
        backend.cancel_credential(member_id=member_id, number=key.number)


# How long one push may hold its key's lease: longer than the backend calls of one key take.
RECONCILE_LEASE_SECONDS = 300


class ReconcileBusyError(AccessBackendError):
    """Another worker is pushing the same key; the task retries later."""


def reconcile_key(*, key: AccessKey) -> AccessKey:
    """Move the backend toward the key's wanted state. A key in sync makes no backend calls.

    Backend calls run outside any transaction and row lock, so a slow lock system never
    holds up payments. The result is saved only if the wanted state did not change in the
    meantime; a change queues its own reconcile.

    On AccessBackendError the key is left pending, or failed once its attempts reach
    ACCESS_SYNC_MAX_ATTEMPTS, with the error kept, and the error is raised again so that
    the task retries.
    """
    key = AccessKey.objects.select_related("member").get(pk=key.pk)
    wanted = key.wanted_state
    if key.sync_status == Sync.IN_SYNC and key.backend_state == wanted:
        return key

    # One push per key at a time: two overlapping pushes (a change, "Sync now" and the
    # periodic run) could land out of order and leave the door in the older state. The
    # lease lives in the shared cache and expires by itself if a worker dies mid-push.
    lease = f"access:reconcile:{key.pk}"
    if not cache.add(lease, "held", timeout=RECONCILE_LEASE_SECONDS):
        logger.info("Access key %s is being synced by another worker; retrying later", key.pk)
        raise ReconcileBusyError(
            f"Access key {key.pk} is being synced by another worker; it is retried later."
        )
    backend = get_backend()
    try:
        _push(backend, key, wanted)
    except AccessBackendError as error:
        _record_sync_failure(key=key, wanted=wanted, error=error)
        raise
    finally:
        cache.delete(lease)

    now = timezone.now()
    updated = AccessKey.objects.filter(pk=key.pk, wanted_state=wanted).update(
        backend_state=wanted,
        sync_status=Sync.IN_SYNC,
        sync_attempts=0,
        last_error="",
        last_synced_at=now,
        updated_at=now,
    )
    if updated:
        logger.info(
            "Access key %s of member %s in sync at backend %s: %s",
            key.pk,
            key.member_id,
            backend.name,
            wanted,
        )
        if key.sync_status == Sync.FAILED:
            AccessEvent.objects.create(
                key=key,
                cause=Cause.SYNC,
                from_status=key.status,
                to_status=key.status,
                from_wanted=wanted,
                to_wanted=wanted,
                reason=f"in sync again after {key.sync_attempts} failed attempts",
            )
    else:
        logger.info(
            "Access key %s changed its wanted state while syncing %s; its own reconcile follows",
            key.pk,
            wanted,
        )
    key.refresh_from_db()
    return key


def _record_sync_failure(*, key: AccessKey, wanted: str, error: AccessBackendError) -> None:
    max_attempts = settings.ACCESS_SYNC_MAX_ATTEMPTS
    attempts = key.sync_attempts + 1
    status = Sync.FAILED if attempts >= max_attempts else Sync.PENDING
    with transaction.atomic():
        AccessKey.objects.filter(pk=key.pk, wanted_state=wanted).update(
            sync_status=status,
            sync_attempts=F("sync_attempts") + 1,
            last_error=str(error),
            updated_at=timezone.now(),
        )
        if status == Sync.FAILED and key.sync_status != Sync.FAILED:
            AccessEvent.objects.create(
                key=key,
                cause=Cause.SYNC,
                from_status=key.status,
                to_status=key.status,
                from_wanted=wanted,
                to_wanted=wanted,
                reason=f"sync failed {attempts} times: {error}",
            )
    logger.warning(
        "Access key %s of member %s: sync to %s failed (attempt %s of %s): %s",
        key.pk,
        key.member_id,
        wanted,
        attempts,
        max_attempts,
        error,
    )


def reconcile_all() -> int:
    """Reconcile every key that is not in sync, and return how many are in sync afterwards.

    A key whose backend call fails stays pending or failed for the next run, and the
    remaining keys are still tried.
    """
    key_ids = list(
        AccessKey.objects.exclude(sync_status=Sync.IN_SYNC)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    synced = 0
    for key_id in key_ids:
        try:
            key = reconcile_key(key=AccessKey(pk=key_id))
        except AccessKey.DoesNotExist:
            continue
        except AccessBackendError:
            continue  # recorded on the key (or busy elsewhere) and logged by reconcile_key
        if key.sync_status == Sync.IN_SYNC:
            synced += 1
    if key_ids:
        logger.info("Reconciled %s of %s access keys not in sync", synced, len(key_ids))
    return synced
