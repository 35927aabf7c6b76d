"""State changes of the members domain: applications and the membership lifecycle.

Each function takes keyword arguments, runs in one transaction, records who or what
acted, and returns the changed object. A rule that is broken raises `MembersError`
with a message staff can act on, and changes nothing.
"""

import datetime
import logging

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import emails
from .events import membership_changed
from .models import (
    LanguagePreference,
    Member,
    Membership,
    MembershipApplication,
    MembershipEvent,
    Plan,
)
from .periods import add_months

logger = logging.getLogger(__name__)

State = Membership.State


class MembersError(Exception):
    """A rule of the members domain was broken. The message names the rule and the fix."""


class DuplicateApplicationError(MembersError):
    """The email already has an application under review or a current membership."""


class IllegalTransitionError(MembersError):
    """The membership's state does not allow the requested change."""


# Membership transitions: service name -> (states it may start from, state it leads to).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({State.PENDING}), State.ACTIVE),
    "mark_past_due": (frozenset({State.ACTIVE}), State.PAST_DUE),
    "suspend": (frozenset({State.PAST_DUE}), State.SUSPENDED),
    "reinstate": (frozenset({State.PAST_DUE, State.SUSPENDED}), State.ACTIVE),
    "cancel": (
        frozenset({State.PENDING, State.ACTIVE, State.PAST_DUE, State.SUSPENDED}),
        State.CANCELLED,
    ),
    "end": (frozenset({State.ACTIVE, State.PAST_DUE, State.SUSPENDED}), State.ENDED),
}

APPLICATION_OPEN_MESSAGE = gettext_lazy(
    "An application from %(email)s is already waiting for review. "
    "We will write to you soon; there is no need to apply again."
)
MEMBERSHIP_CURRENT_MESSAGE = gettext_lazy(
    "%(email)s already has a current membership. "
    "Sign in to the member portal or write to us to change your plan."
)


def normalize_email(email: str) -> str:
    """Strip spaces and lowercase the domain, which is case-insensitive; keep the local part.

    Python lowercases every letter, so domains that differ only in non-ASCII case match
    on SQLite too, whose case-insensitive comparisons fold ASCII letters only.
    """
    return BaseUserManager.normalize_email(email.strip())


def local_today() -> datetime.date:
    """Return today's date in the portal's time zone (America/Puerto_Rico)."""
    return timezone.localdate()


# --- Applications -----------------------------------------------------------------


def check_can_apply(*, email: str) -> None:
    """Raise DuplicateApplicationError when `email` has an open application or membership."""
    email = normalize_email(email)
    if MembershipApplication.objects.filter(
        email__iexact=email, status=MembershipApplication.Status.SUBMITTED
    ).exists():
        raise DuplicateApplicationError(APPLICATION_OPEN_MESSAGE % {"email": email})
    if Membership.objects.filter(
        member__email__iexact=email, state__in=Membership.CURRENT_STATES
    ).exists():
        raise DuplicateApplicationError(MEMBERSHIP_CURRENT_MESSAGE % {"email": email})


def submit_application(
    *,
    first_name: str,
    last_name: str,
    email: str,
    plan: Plan,
    phone: str = "",
    company: str = "",
    desired_start_date: datetime.date | None = None,
    referral_source: str = "",
    message: str = "",
    language: str = "en",
    ip_address: str | None = None,
    user: AbstractBaseUser | None = None,
) -> MembershipApplication:
    """Store a membership application from the public form, and email the applicant and staff.

    Raises DuplicateApplicationError when the email has an application under review or
    a current membership, and MembersError when the plan takes no applications.
    """
    email = normalize_email(email)
    if not plan.is_open_for_applications:
        raise MembersError(
            _("The plan “%(plan)s” is not open for applications; choose another plan.")
            % {"plan": plan.name}
        )
    check_can_apply(email=email)

    try:
        with transaction.atomic():
            application = MembershipApplication.objects.create(
                first_name=first_name.strip(),
                last_name=last_name.strip(),
                email=email,
                phone=phone.strip(),
                company=company.strip(),
                plan=plan,
                desired_start_date=desired_start_date,
                referral_source=referral_source,
                message=message.strip(),
                language=language,
                ip_address=ip_address,
                user=user,
            )
            emails.queue_application_received(application)
    except IntegrityError as error:
        # Two submissions raced past the check above; the partial unique index on open
        # applications per email let only one of them in.
        logger.info(
            "Duplicate application for plan %s rejected by the database: %s", plan.pk, error
        )
        raise DuplicateApplicationError(APPLICATION_OPEN_MESSAGE % {"email": email}) from error

    logger.info("Application %s submitted for plan %s", application.pk, plan.pk)
    return application


def _lock_application(application: MembershipApplication) -> MembershipApplication:
    return MembershipApplication.objects.select_for_update().get(pk=application.pk)


def _require_submitted(application: MembershipApplication, verb: str) -> None:
    if application.status != MembershipApplication.Status.SUBMITTED:
        raise MembersError(
            _(
                "Cannot %(verb)s application %(id)s: it is already %(status)s. "
                "Only submitted applications can be decided."
            )
            % {"verb": verb, "id": application.pk, "status": application.get_status_display()}
        )


def approve_application(
    *,
    application: MembershipApplication,
    actor: AbstractBaseUser | None,
    start_date: datetime.date | None = None,
) -> Membership:
    """Approve an application: find or create the member and create a pending membership.

    The member is matched by email, ignoring case. The start date is `start_date` when
    given, otherwise the applicant's desired date, moved to today when it has passed.
    The applicant gets an email saying how to sign in and pay. Returns the new membership.
    """
    with transaction.atomic():
        application = _lock_application(application)
        _require_submitted(application, _("approve"))
        plan = application.plan
        if not plan.is_active:
            raise MembersError(
                _(
                    "Cannot approve application %(id)s: the plan “%(plan)s” is inactive. "
                    "Activate the plan or reject the application."
                )
                % {"id": application.pk, "plan": plan.name}
            )

        today = local_today()
        if start_date is None:
            start_date = application.desired_start_date or today
            start_date = max(start_date, today)

        member = Member.objects.select_for_update().filter(email__iexact=application.email).first()
        if member is None:
            try:
                with transaction.atomic():
                    member = Member.objects.create(
                        first_name=application.first_name,
                        last_name=application.last_name,
                        email=application.email,
                        phone=application.phone,
                        company=application.company,
                        language=_application_language(application),
                    )
            except IntegrityError as error:
                # Another transaction created a member with this email after the lookup.
                logger.warning(
                    "Application %s: member with the same email created concurrently: %s",
                    application.pk,
                    error,
                )
                raise MembersError(
                    _(
                        "Cannot approve application %(id)s: a member with the email %(email)s "
                        "was created at the same moment. Approve the application again."
                    )
                    % {"id": application.pk, "email": application.email}
                ) from error
            logger.info("Member %s created from application %s", member.pk, application.pk)
        elif member.memberships.filter(state__in=Membership.CURRENT_STATES).exists():
            raise MembersError(
                _(
                    "Cannot approve application %(id)s: member %(member)s already has a "
                    "current membership. Reject the application or end that membership first."
                )
                % {"id": application.pk, "member": member}
            )

        now = timezone.now()
        membership = Membership.objects.create(
            member=member,
            plan=plan,
            application=application,
            monthly_price=plan.monthly_price,
            included_credit=plan.included_credit,
            contract_months=plan.contract_months,
            start_date=start_date,
            commitment_end=add_months(start_date, plan.contract_months),
            state=State.PENDING,
            state_changed_at=now,
        )
        MembershipEvent.objects.create(
            membership=membership,
            from_state="",
            to_state=State.PENDING,
            actor=actor,
            cause="application approved",
        )
        changed = []
        if member.member_since is None:
            member.member_since = start_date
            changed.append("member_since")
        # The language the person applied in is their latest choice, also for a
        # returning member.
        if member.language != _application_language(application):
            member.language = _application_language(application)
            changed.append("language")
        if changed:
            member.save(update_fields=[*changed, "updated_at"])
        _link_member_user(member=member, user=application.user)

        application.status = MembershipApplication.Status.APPROVED
        application.decided_by = actor
        application.decided_at = now
        application.member = member
        application.save(
            update_fields=["status", "decided_by", "decided_at", "member", "updated_at"]
        )
        emails.queue_application_approved(application, membership)

    logger.info(
        "Application %s approved by user %s: member %s, membership %s starting %s",
        application.pk,
        getattr(actor, "pk", None),
        member.pk,
        membership.pk,
        start_date,
    )
    return membership


def reject_application(
    *, application: MembershipApplication, actor: AbstractBaseUser | None, reason: str
) -> MembershipApplication:
    """Reject an application and tell the applicant; `reason` is required and kept for staff."""
    reason = reason.strip()
    if not reason:
        raise MembersError(_("Give a reason for rejecting the application."))
    with transaction.atomic():
        application = _lock_application(application)
        _require_submitted(application, _("reject"))
        application.status = MembershipApplication.Status.REJECTED
        application.decided_by = actor
        application.decided_at = timezone.now()
        application.decision_reason = reason
        application.save(
            update_fields=["status", "decided_by", "decided_at", "decision_reason", "updated_at"]
        )
        emails.queue_application_rejected(application)
    logger.info("Application %s rejected by user %s", application.pk, getattr(actor, "pk", None))
    return application


def withdraw_application(
    *, application: MembershipApplication, actor: AbstractBaseUser | None = None, reason: str = ""
) -> MembershipApplication:
    """Withdraw an application at the applicant's request."""
    with transaction.atomic():
        application = _lock_application(application)
        _require_submitted(application, _("withdraw"))
        application.status = MembershipApplication.Status.WITHDRAWN
        application.decided_by = actor
        application.decided_at = timezone.now()
        application.decision_reason = reason.strip()
        application.save(
            update_fields=["status", "decided_by", "decided_at", "decision_reason", "updated_at"]
        )
    logger.info("Application %s withdrawn", application.pk)
    return application


# --- Membership lifecycle ------------------------------------------------------------


def _transition(
    *,
    membership: Membership,
    transition: str,
    actor: AbstractBaseUser | None,
    cause: str,
    reason: str,
    extra_fields: dict | None = None,
    announce: bool = True,
) -> Membership:
    """Move a membership along one edge of the state machine, under a row lock.

    With `announce=False`, `membership_changed` is not sent, so no key sync is queued.
    """
    allowed_from, target = TRANSITIONS[transition]
    with transaction.atomic():
        # The emails that callers queue use the member and plan, so select them too
        # (only the membership row is locked).
        locked = (
            Membership.objects.select_for_update(of=("self",))
            .select_related("member", "plan")
            .get(pk=membership.pk)
        )
        if locked.state not in allowed_from:
            allowed = ", ".join(sorted(str(State(state).label) for state in allowed_from))
            raise IllegalTransitionError(
                _(
                    "Cannot move membership %(id)s from %(current)s to %(target)s: "
                    "that change is allowed only from %(allowed)s."
                )
                % {
                    "id": locked.pk,
                    "current": locked.get_state_display(),
                    "target": State(target).label,
                    "allowed": allowed,
                }
            )
        previous = locked.state
        locked.state = target
        locked.state_changed_at = timezone.now()
        fields = ["state", "state_changed_at", "updated_at"]
        for name, value in (extra_fields or {}).items():
            setattr(locked, name, value)
            fields.append(name)
        locked.save(update_fields=fields)
        MembershipEvent.objects.create(
            membership=locked,
            from_state=previous,
            to_state=target,
            actor=actor,
            cause=cause,
            reason=reason,
        )
        membership_id = locked.pk
        if announce:
            transaction.on_commit(
                lambda: membership_changed.send(sender=Membership, membership_id=membership_id)
            )
    logger.info(
        "Membership %s of member %s moved %s -> %s by user %s (%s)",
        locked.pk,
        locked.member_id,
        previous,
        target,
        getattr(actor, "pk", None),
        cause or "staff",
    )
    return locked


def transition_to(from_state: str, to_state: str) -> str | None:
    """Return the name of the transition from `from_state` to `to_state`, or None if none."""
    for name, (allowed_from, target) in TRANSITIONS.items():
        if target == to_state and from_state in allowed_from:
            return name
    return None


def record_imported_state(
    *,
    membership: Membership,
    state: str,
    cause: str,
    reason: str,
    extra_fields: dict | None = None,
) -> Membership:
    """Move a membership to `state` for a data import, along an edge of the state machine.

    The lock, the check and the event are those of the lifecycle services, but nothing is
    announced and no email is queued: an import recomputes the member's keys itself and
    leaves them for the periodic reconcile. `extra_fields` are saved with the state.
    Raises IllegalTransitionError when no edge leads from the current state to `state`.
    """
    transition = transition_to(membership.state, state)
    if transition is None:
        raise IllegalTransitionError(
            _("Cannot move membership %(id)s from %(current)s to %(target)s.")
            % {
                "id": membership.pk,
                "current": membership.get_state_display(),
                "target": State(state).label,
            }
        )
    return _transition(
        membership=membership,
        transition=transition,
        actor=None,
        cause=cause,
        reason=reason,
        extra_fields=extra_fields,
        announce=False,
    )


def activate_membership(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    cause: str = "",
    reason: str = "",
) -> Membership:
    """Activate a pending membership, normally when its first payment arrives."""
    return _transition(
        membership=membership, transition="activate", actor=actor, cause=cause, reason=reason
    )


def mark_membership_past_due(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    cause: str = "",
    reason: str = "",
    grace_until: datetime.date | None = None,
) -> Membership:
    """Mark an active membership as past due after a failed payment.

    `grace_until` is the last day the member keeps access before suspension.
    """
    return _transition(
        membership=membership,
        transition="mark_past_due",
        actor=actor,
        cause=cause,
        reason=reason,
        extra_fields={"grace_until": grace_until},
    )


def suspend_membership(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    cause: str = "",
    reason: str = "",
) -> Membership:
    """Suspend a past-due membership whose grace period is over, and tell the member."""
    with transaction.atomic():
        suspended = _transition(
            membership=membership, transition="suspend", actor=actor, cause=cause, reason=reason
        )
        emails.queue_membership_email(suspended, "membership_suspended")
    return suspended


def reinstate_membership(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    cause: str = "",
    reason: str = "",
) -> Membership:
    """Return a past-due or suspended membership to active once payment is recorded.

    The member gets an email that the membership is active again.
    """
    with transaction.atomic():
        reinstated = _transition(
            membership=membership,
            transition="reinstate",
            actor=actor,
            cause=cause,
            reason=reason,
            extra_fields={"grace_until": None},
        )
        emails.queue_membership_email(reinstated, "membership_reinstated")
    return reinstated


def end_membership(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    cause: str = "",
    reason: str = "",
    end_date: datetime.date | None = None,
) -> Membership:
    """End a membership at the end of its term (no renewal).

    Ending before the commitment end breaks the contract, so it needs a reason; without
    one, staff cancel instead, which follows the plan's cancellation policy.
    """
    end_date = end_date or local_today()
    # From a state that cannot end, let _transition raise the error naming both states.
    if membership.state in TRANSITIONS["end"][0]:
        _check_end_date(membership, end_date)
        if end_date < membership.commitment_end and not reason.strip():
            raise MembersError(
                _(
                    "Membership %(id)s is committed until %(commitment_end)s, so it cannot end "
                    "on %(end)s without a reason. Cancel it instead, or give a reason."
                )
                % {
                    "id": membership.pk,
                    "commitment_end": date_format(membership.commitment_end),
                    "end": date_format(end_date),
                }
            )
    return _transition(
        membership=membership,
        transition="end",
        actor=actor,
        cause=cause,
        reason=reason,
        extra_fields={"end_date": end_date, "cancel_at": None},
    )


def _check_end_date(membership: Membership, end_date: datetime.date) -> None:
    if end_date < membership.start_date:
        raise MembersError(
            _("The end date %(end)s is before membership %(id)s starts on %(start)s.")
            % {
                "end": date_format(end_date),
                "id": membership.pk,
                "start": date_format(membership.start_date),
            }
        )


def cancel_membership(
    *,
    membership: Membership,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    cause: str = "",
    immediately: bool = False,
) -> Membership:
    """Cancel a membership, or schedule its cancellation, following the plan's policy.

    A pending membership, one past its commitment end, or one on a plan whose policy is
    "immediate" is cancelled today. Otherwise the cancellation is scheduled for the
    commitment end (`cancel_at`) and the state stays as it is until
    `apply_scheduled_cancellations` runs on that date. Staff may override the policy with
    `immediately=True`, which requires a reason. Either way the member gets an email that
    confirms the end date.
    """
    today = local_today()
    if immediately and not reason.strip():
        raise MembersError(
            _("Give a reason for cancelling membership %(id)s before its commitment end (%(end)s).")
            % {"id": membership.pk, "end": date_format(membership.commitment_end)}
        )

    with transaction.atomic():
        # Decide from the locked row, never from the caller's copy, which may be stale.
        locked = Membership.objects.select_for_update().select_related("plan").get(pk=membership.pk)
        allowed_from, _target = TRANSITIONS["cancel"]
        policy_defers = locked.plan.cancellation_policy == Plan.CancellationPolicy.AT_COMMITMENT_END
        takes_effect_now = (
            locked.state not in allowed_from  # _transition raises the standard error
            or immediately
            or locked.state == State.PENDING
            or not policy_defers
            or today >= locked.commitment_end
        )
        if takes_effect_now:
            cancelled = _transition(
                membership=locked,
                transition="cancel",
                actor=actor,
                cause=cause,
                reason=reason,
                extra_fields={"end_date": max(today, locked.start_date), "cancel_at": None},
            )
            emails.queue_cancellation_confirmed(cancelled, scheduled=False)
            return cancelled

        locked.cancel_at = locked.commitment_end
        locked.save(update_fields=["cancel_at", "updated_at"])
        MembershipEvent.objects.create(
            membership=locked,
            from_state=locked.state,
            to_state=locked.state,
            actor=actor,
            cause=cause or "cancellation scheduled",
            reason=reason,
        )
        emails.queue_cancellation_confirmed(locked, scheduled=True)
    logger.info(
        "Membership %s of member %s: cancellation scheduled for %s by user %s",
        locked.pk,
        locked.member_id,
        locked.cancel_at,
        getattr(actor, "pk", None),
    )
    return locked


def withdraw_cancellation(
    *, membership: Membership, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Membership:
    """Clear a scheduled cancellation so the membership continues."""
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.cancel_at is None:
            raise MembersError(
                _("Membership %(id)s has no scheduled cancellation to withdraw.")
                % {"id": locked.pk}
            )
        # A scheduled cancellation that took effect keeps its cancel_at on the cancelled row.
        if not locked.is_current:
            raise MembersError(
                _(
                    "Membership %(id)s is already %(state)s, so its cancellation can no "
                    "longer be withdrawn. Approve a new application to start a new membership."
                )
                % {"id": locked.pk, "state": locked.get_state_display()}
            )
        locked.cancel_at = None
        locked.save(update_fields=["cancel_at", "updated_at"])
        MembershipEvent.objects.create(
            membership=locked,
            from_state=locked.state,
            to_state=locked.state,
            actor=actor,
            cause="cancellation withdrawn",
            reason=reason,
        )
    logger.info("Membership %s: scheduled cancellation withdrawn", locked.pk)
    return locked


def apply_scheduled_cancellations(*, today: datetime.date | None = None) -> list[Membership]:
    """Cancel every current membership whose scheduled cancellation date has come."""
    today = today or local_today()
    due = Membership.objects.filter(
        state__in=Membership.CURRENT_STATES, cancel_at__isnull=False, cancel_at__lte=today
    ).order_by("pk")
    cancelled = []
    for membership in due:
        cancelled.append(
            _transition(
                membership=membership,
                transition="cancel",
                actor=None,
                cause="scheduled cancellation",
                reason="",
                extra_fields={"end_date": max(membership.cancel_at, membership.start_date)},
            )
        )
    return cancelled


# --- Member logins ---------------------------------------------------------------------


def _link_member_user(*, member: Member, user: AbstractBaseUser | None) -> None:
    """Give `member` a login: `user` when given and free, else one found or made by email."""
    if member.user_id is not None:
        if user is not None and user.pk != member.user_id:
            logger.warning(
                "Member %s already has user %s; application login %s left unlinked",
                member.pk,
                member.user_id,
                user.pk,
            )
        return
    if user is not None and Member.objects.filter(user=user).exists():
        logger.warning(
            "User %s already belongs to another member; member %s gets its own login",
            user.pk,
            member.pk,
        )
        user = None
    ensure_member_user(member=member, user=user)


def ensure_member_user(*, member: Member, user: AbstractBaseUser | None = None):
    """Return the member's login, creating or linking one so that they can sign in.

    With `user` given, that login is linked. Otherwise a login whose email matches the
    member's (ignoring case) is linked, or a new one is created with no password: members
    sign in with Google or an emailed code. The login's email address is recorded for
    allauth as primary and unverified until a code or Google proves it.
    """
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    users = get_user_model()
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.user_id is not None:
            return member.user

        email = member.email.strip().lower()
        _release_address(email=email, keep_user=user, member=member)
        if user is None:
            user = (
                users.objects.filter(
                    Q(email__iexact=email)
                    | Q(emailaddress__email__iexact=email, emailaddress__verified=True)
                )
                .order_by("pk")
                .first()
            )
            if user is not None and Member.objects.filter(user=user).exists():
                raise MembersError(
                    _(
                        "Cannot create a login for member %(member)s: the login with the "
                        "email %(email)s already belongs to another member."
                    )
                    % {"member": member.pk, "email": email}
                )
        created = user is None
        if created:
            user = users(
                username=_unique_username(email),
                email=email,
                first_name=member.first_name[:150],
                last_name=member.last_name[:150],
            )
            user.set_unusable_password()
            user.save()

        member.user = user
        member.save(update_fields=["user", "updated_at"])
        login_email = (user.email or email).lower()
        if not EmailAddress.objects.filter(user=user, email__iexact=login_email).exists():
            EmailAddress.objects.create(
                user=user,
                email=login_email,
                primary=not EmailAddress.objects.filter(user=user, primary=True).exists(),
                verified=False,
            )

    logger.info(
        "Member %s linked to user %s (%s)", member.pk, user.pk, "created" if created else "existing"
    )
    return user


def _release_address(*, email: str, keep_user, member: Member) -> None:
    """Make `email` free for the member's login: one address belongs to one login.

    Another login's unverified claim on the address was never proven, so it is removed.
    Left in place, it could let a sign-in by that address reach the claimant instead.
    A verified claim by another login stops the approval, for staff to resolve.
    """
    from allauth.account.models import EmailAddress

    claims = EmailAddress.objects.filter(email__iexact=email).select_related("user")
    if keep_user is not None:
        claims = claims.exclude(user=keep_user)
    for claim in claims:
        owner_is_plain_login = claim.user.email.lower() == email
        if claim.verified or owner_is_plain_login:
            if owner_is_plain_login and not Member.objects.filter(user=claim.user).exists():
                continue  # that login is the member's own, found by its email below
            raise MembersError(
                _(
                    "Cannot give member %(member)s a login: %(email)s is a confirmed address "
                    "of login %(user)s. Remove it from that login first."
                )
                % {"member": member.pk, "email": email, "user": claim.user_id}
            )
        logger.warning(
            "Removed unverified address %s of user %s so that member %s can use it",
            claim.pk,
            claim.user_id,
            member.pk,
        )
        claim.delete()


def _unique_username(email: str) -> str:
    from django.contrib.auth import get_user_model

    users = get_user_model()
    max_length = users._meta.get_field("username").max_length
    base = email[:max_length]
    candidate = base
    suffix = 1
    while users.objects.filter(username__iexact=candidate).exists():
        suffix += 1
        tail = f"-{suffix}"
        candidate = base[: max_length - len(tail)] + tail
    return candidate


def change_member_email(
    *, member: Member, email: str, actor: AbstractBaseUser | None, sync_login: bool = False
) -> Member:
    """Set the member's email.

    allauth calls this after it verified the login's new address. Staff changing it in
    the back office pass `sync_login=True`, which moves the login to the new address as
    its primary, unverified until a code or Google proves it.
    """
    from allauth.account.models import EmailAddress

    email = normalize_email(email)
    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        if member.email.lower() == email.lower():
            return member
        if Member.objects.filter(email__iexact=email).exclude(pk=member.pk).exists():
            raise MembersError(
                _(
                    "Another member already uses %(email)s, so the email of member %(id)s "
                    "is unchanged."
                )
                % {"email": email, "id": member.pk}
            )
        member.email = email
        member.save(update_fields=["email", "updated_at"])
        if sync_login and member.user_id is not None:
            _release_address(email=email.lower(), keep_user=member.user, member=member)
            user = member.user
            user.email = email.lower()
            user.save(update_fields=["email"])
            EmailAddress.objects.filter(user=user).delete()
            EmailAddress.objects.create(
                user=user, email=email.lower(), primary=True, verified=False
            )
    logger.info("Member %s email changed by user %s", member.pk, getattr(actor, "pk", None))
    return member


# --- Member profile ----------------------------------------------------------------------

# Fields a member edits in the portal. Name and email are not here: staff change the name,
# and the email follows the login's verified address through `change_member_email`.
PROFILE_FIELDS = ("phone", "company", "bio", "directory_opt_in", "language")


def update_member_profile(
    *,
    member: Member,
    actor: AbstractBaseUser | None,
    phone: str,
    company: str,
    bio: str,
    directory_opt_in: bool,
    language: str | None = None,
) -> Member:
    """Save the profile fields a member edits in the portal, and return the member.

    `language` None keeps the stored language. Raises MembersError naming the field when
    a value is longer than its column allows or the language is not one of
    settings.LANGUAGES. Saves only the fields whose value changed.
    """
    values = {
        "phone": phone.strip(),
        "company": company.strip(),
        "bio": bio.strip(),
        "directory_opt_in": bool(directory_opt_in),
        "language": member.language if language is None else _checked_language(language),
    }
    for name in ("phone", "company"):
        limit = Member._meta.get_field(name).max_length
        if len(values[name]) > limit:
            raise MembersError(
                _(
                    "The %(field)s of member %(id)s is %(length)d characters long; "
                    "shorten it to at most %(limit)d."
                )
                % {
                    "field": Member._meta.get_field(name).verbose_name,
                    "id": member.pk,
                    "length": len(values[name]),
                    "limit": limit,
                }
            )

    with transaction.atomic():
        member = Member.objects.select_for_update().get(pk=member.pk)
        changed = [name for name in PROFILE_FIELDS if getattr(member, name) != values[name]]
        if changed:
            for name in changed:
                setattr(member, name, values[name])
            member.save(update_fields=[*changed, "updated_at"])

    logger.info(
        "Member %s profile saved by user %s: %s",
        member.pk,
        getattr(actor, "pk", None),
        ", ".join(changed) if changed else "no changes",
    )
    return member


def _application_language(application: MembershipApplication) -> str:
    """Return the application's language when the portal offers it, else LANGUAGE_CODE."""
    codes = [code for code, _name in settings.LANGUAGES]
    return application.language if application.language in codes else settings.LANGUAGE_CODE


def _checked_language(language: str) -> str:
    """Return `language` when it is a code of settings.LANGUAGES, else raise MembersError."""
    codes = [code for code, _name in settings.LANGUAGES]
    if language not in codes:
        raise MembersError(
            _("“%(language)s” is not a language of the portal; choose one of %(codes)s.")
            % {"language": language, "codes": ", ".join(codes)}
        )
    return language


def set_preferred_language(*, user: AbstractBaseUser, language: str) -> str:
    """Store the language a signed-in person chose, and return it.

    A member's choice goes on the member, where it also decides the language of their
    emails; a login without a member (staff) gets a LanguagePreference row. Raises
    MembersError for a language that is not in settings.LANGUAGES.
    """
    language = _checked_language(language)
    with transaction.atomic():
        updated = Member.objects.filter(user=user).update(
            language=language, updated_at=timezone.now()
        )
        if not updated:
            LanguagePreference.objects.update_or_create(user=user, defaults={"language": language})
    logger.info("User %s chose language %s", user.pk, language)
    return language


# --- Contract renewal ----------------------------------------------------------------------


def renew_membership(
    *, membership: Membership, actor: AbstractBaseUser | None = None
) -> Membership:
    """Extend the commitment of an active, past-due or suspended membership by one term.

    The new commitment end is the start date plus one more contract length, counted from
    the start date like billing periods, so a start on 29 February keeps its day in leap
    years. A membership with a cancellation scheduled is not renewed.
    """
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.state not in (State.ACTIVE, State.PAST_DUE, State.SUSPENDED):
            raise MembersError(
                _(
                    "Membership %(id)s is %(state)s; only an active, past-due or suspended "
                    "membership can be renewed."
                )
                % {"id": locked.pk, "state": locked.get_state_display()}
            )
        if locked.cancel_at is not None:
            raise MembersError(
                _(
                    "Membership %(id)s has a cancellation scheduled for %(date)s. Withdraw the "
                    "cancellation before renewing it."
                )
                % {"id": locked.pk, "date": date_format(locked.cancel_at)}
            )
        start, previous_end = locked.start_date, locked.commitment_end
        months = (previous_end.year - start.year) * 12 + previous_end.month - start.month
        terms = months // locked.contract_months + 1
        new_end = add_months(start, terms * locked.contract_months)
        while new_end <= previous_end:
            terms += 1
            new_end = add_months(start, terms * locked.contract_months)
        locked.commitment_end = new_end
        locked.save(update_fields=["commitment_end", "updated_at"])
        MembershipEvent.objects.create(
            membership=locked,
            from_state=locked.state,
            to_state=locked.state,
            actor=actor,
            cause="term renewed",
            reason=f"commitment end {previous_end} -> {new_end}",
        )
    logger.info(
        "Membership %s renewed: commitment end %s -> %s by user %s",
        locked.pk,
        previous_end,
        new_end,
        getattr(actor, "pk", None),
    )
    return locked
