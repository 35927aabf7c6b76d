"""Member portal: the signed-in member's dashboard, profile and membership history.

Every page finds the member through `request.user` alone. Anonymous visitors are sent to
allauth's sign-in page (settings.LOGIN_URL) with a `next` back to the requested page.
A signed-in login that belongs to no member, staff included, gets the "not a member"
page, which points to the application form (status 403, because the requested page
exists only for members), or shows the application under review (status 200).
"""

import logging
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from access.models import AccessKey
from billing import selectors as billing_selectors

from . import selectors, services
from .forms_portal import ProfileForm
from .models import Membership, MembershipEvent

logger = logging.getLogger(__name__)

State = Membership.State

# Member-facing wording of an event that keeps the state, keyed by the cause that
# `members.services` records. Any other cause gets the generic wording.
SAME_STATE_EVENTS = {
    "cancellation scheduled": gettext_lazy("Cancellation scheduled"),
    "cancellation withdrawn": gettext_lazy("Scheduled cancellation withdrawn"),
}


def member_required(load_member=selectors.portal_member):
    """Decorate a portal view so that it runs only for a signed-in member.

    The view receives the member that `load_member(request.user)` returns as its second
    argument. Logins without a member get the "not a member" page instead.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            member = load_member(request.user)
            if member is None:
                return not_a_member(request)
            return view(request, member, *args, **kwargs)

        # login_required wraps the member check, so anonymous requests never reach it.
        return never_cache(login_required(wrapper))

    return decorator


def not_a_member(request):
    """Render the page for a signed-in login that has no member.

    The status is 200 for an applicant, whose application under review is what this page
    shows, and 403 for any other login.
    """
    logger.info("User %s without a member requested portal page %s", request.user.pk, request.path)
    application = selectors.open_application_for_user(request.user)
    status = 200 if application is not None else 403
    return render(
        request, "members/portal/not_a_member.html", {"application": application}, status=status
    )


def describe_event(event: MembershipEvent) -> str:
    """Return the member-facing wording of one membership event."""
    if not event.from_state:
        return _("Membership created: %(state)s") % {"state": event.get_to_state_display()}
    if event.from_state != event.to_state:
        return _("Changed from %(from)s to %(to)s") % {
            "from": event.get_from_state_display(),
            "to": event.get_to_state_display(),
        }
    return str(SAME_STATE_EVENTS.get(event.cause, _("Membership details changed")))


@require_safe
@member_required(load_member=selectors.portal_member_with_history)
def dashboard(request, member):
    memberships = getattr(member, selectors.PORTAL_MEMBERSHIPS_ATTR)
    current = next((membership for membership in memberships if membership.is_current), None)
    past = [membership for membership in memberships if not membership.is_current]
    context = {
        "member": member,
        "current": current,
        "past_memberships": past,
        "billing": billing_selectors.portal_billing(member, current),
        "access_keys": getattr(member, selectors.PORTAL_ACCESS_KEYS_ATTR),
        "KeyStatus": AccessKey.Status,
        "State": State,
        "today": timezone.localdate(),
    }
    return render(request, "members/portal/dashboard.html", context)


@require_safe
@member_required()
def membership_detail(request, member, pk):
    membership = selectors.portal_membership(member, pk)
    if membership is None:
        # Another member's membership and a missing one look the same from here.
        raise Http404("No membership with this id belongs to the signed-in member.")
    events = [(event, describe_event(event)) for event in membership.events.all()]
    context = {
        "member": member,
        "membership": membership,
        "events": events,
        "State": State,
        "today": timezone.localdate(),
    }
    return render(request, "members/portal/membership_detail.html", context)


@require_http_methods(["GET", "POST"])
@member_required()
def profile(request, member):
    if request.method == "GET":
        form = ProfileForm(initial=ProfileForm.initial_for(member))
        return render(request, "members/portal/profile.html", {"member": member, "form": form})

    form = ProfileForm(request.POST)
    if not form.is_valid():
        return render(request, "members/portal/profile.html", {"member": member, "form": form})

    data = form.cleaned_data
    try:
        services.update_member_profile(
            member=member,
            actor=request.user,
            phone=data["phone"],
            company=data["company"],
            bio=data["bio"],
            directory_opt_in=data["directory_opt_in"],
            language=data["language"] or None,
        )
    except services.MembersError as error:
        logger.info("Profile of member %s not saved: %s", member.pk, error)
        form.add_error(None, str(error))
        return render(request, "members/portal/profile.html", {"member": member, "form": form})

    # The new language applies from this response on: the message and the next page.
    if data["language"]:
        request.session[settings.CPR_LANGUAGE_SESSION_KEY] = data["language"]
        translation.activate(data["language"])
    messages.success(request, _("Your profile has been saved."))
    return redirect("members:portal_profile")
