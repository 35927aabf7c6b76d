import hashlib
import logging

from django.conf import settings
from django.core.validators import slug_re
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from . import services
from .forms import (
    THANKS_SESSION_KEY,
    ApplicationForm,
    remember_application,
    submit_application_form,
)
from .models import Plan
from .ratelimit import client_ip, client_key, hit_rate_limit, rate_limit_reached

logger = logging.getLogger(__name__)


def _open_plans():
    return Plan.objects.filter(is_public=True, is_active=True)


def plans_cache_key(plans, *extra) -> str:
    """Return a cache key for HTML that shows `plans`, with `extra` values it depends on.

    The key contains every column of every plan, so an edited, added or closed plan gives a
    new key and cached HTML is never out of date. Templates add the language.
    """
    parts = [
        repr([getattr(plan, field.attname) for field in Plan._meta.concrete_fields])
        for plan in plans
    ]
    parts += [str(value) for value in extra]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def blank_form_cache_key(form) -> str:
    """Return the cache key of an unbound application form's fields (see apply.html).

    Rendering the widgets is most of the cost of `GET /apply/`. An unbound form renders
    the same for everyone who sees the same open plans, preselected plan and date limits.
    Evaluating the plans here is the page's one query; the form's select reuses the rows.
    """
    date_attrs = form.fields["desired_start_date"].widget.attrs
    return plans_cache_key(
        form.fields["plan"].queryset,
        form["plan"].value() or "",
        date_attrs["min"],
        date_attrs["max"],
    )


@require_GET
def home(request):
    plans = list(_open_plans())
    # Without open plans the section shows the contact address instead.
    cache_key = plans_cache_key(plans, settings.CPR_CONTACT_EMAIL)
    context = {"plans": plans, "plans_cache_key": cache_key}
    return render(request, "members/home.html", context)


@require_GET
def plan_detail(request, slug):
    plan = get_object_or_404(_open_plans(), slug=slug)
    return render(request, "members/plan_detail.html", {"plan": plan})


@require_http_methods(["GET", "POST"])
def apply(request):
    """Show and accept the public membership application form."""
    if request.method == "GET":
        initial = {}
        plan_slug = request.GET.get("plan", "")
        # Only a well-formed slug reaches the database: PostgreSQL rejects NUL bytes.
        if slug_re.fullmatch(plan_slug):
            plan = _open_plans().filter(slug=plan_slug).first()
            if plan is not None:
                initial["plan"] = plan
        form = ApplicationForm(initial=initial)
        context = {"form": form, "fields_cache_key": blank_form_cache_key(form)}
        return render(request, "members/apply.html", context)

    form = ApplicationForm(request.POST)
    if not form.is_valid():
        return render(request, "members/apply.html", {"form": form})

    ip_address = client_ip(request) or None
    if form.is_bot():
        # Respond as if it worked, so the bot learns nothing, and store nothing. The log
        # line is written once per address and window, so a flood cannot fill the log.
        flooding = hit_rate_limit(
            scope="apply-honeypot",
            key=client_key(ip_address or ""),
            limit=1,
            window_seconds=settings.CPR_APPLY_RATE_WINDOW_SECONDS,
        )
        if not flooding:
            logger.warning("Application honeypot filled in; submission dropped")
        return redirect("members:apply_thanks")

    # Only accepted applications count towards the limit, so a person whose email
    # already applied, or who fixes a typo, does not use up the budget.
    rate_key = client_key(ip_address or "")
    limit = settings.CPR_APPLY_RATE_LIMIT
    window = settings.CPR_APPLY_RATE_WINDOW_SECONDS
    if rate_limit_reached(scope="apply", key=rate_key, limit=limit):
        # Counting the refused attempt too makes hit_rate_limit log the first one.
        hit_rate_limit(scope="apply", key=rate_key, limit=limit, window_seconds=window)
        form.add_error(
            None,
            _(
                "We have received several applications from your network recently. "
                "Please try again later, or write to %(email)s and we will help you."
            )
            % {"email": settings.CPR_CONTACT_EMAIL},
        )
        return render(request, "members/apply.html", {"form": form}, status=429)

    try:
        application = submit_application_form(form.cleaned_data, ip_address=ip_address)
    except services.DuplicateApplicationError as error:
        form.add_error("email", str(error))
        return render(request, "members/apply.html", {"form": form})
    except services.MembersError as error:
        form.add_error("plan", str(error))
        return render(request, "members/apply.html", {"form": form})

    hit_rate_limit(scope="apply", key=rate_key, limit=limit, window_seconds=window)
    remember_application(request, application)
    return redirect("members:apply_thanks")


@require_GET
def apply_thanks(request):
    return render(
        request,
        "members/apply_thanks.html",
        {"application": request.session.get(THANKS_SESSION_KEY)},
    )
