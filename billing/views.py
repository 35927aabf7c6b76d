"""Billing endpoints: gateway webhooks, the portal's pay and card buttons, and the pages
of the fake gateway.

Every state change goes through `billing.services`. A webhook delivery and a button on
a fake gateway page take the same path: the event is stored by its id first
(`store_webhook_event`), then processed (`process_webhook_event`), so a repeated
delivery is acknowledged without being applied twice.
"""

import logging
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from kombu.exceptions import OperationalError

from members import selectors as member_selectors
from members.models import FAKE_GATEWAY_DECLINE, Membership
from members.portal import member_required

from . import services, tasks
from .gateways import fake, get_gateway
from .gateways.base import WebhookVerificationError
from .models import Invoice, WebhookEvent
from .money import format_usd

logger = logging.getLogger(__name__)

State = Membership.State

# Memberships whose member can pay online: the first payment, or an overdue one.
PAYABLE_STATES = (State.PENDING, State.PAST_DUE, State.SUSPENDED)


# --- Receiving events ----------------------------------------------------------------


def receive_event(*, gateway_name: str, payload: dict, in_background: bool = False) -> WebhookEvent:
    """Store a verified event by its id, then process it unless that already happened.

    An event stored earlier whose processing never finished (received) or failed is
    processed again, and a processed or ignored one is returned unchanged. With
    `in_background` the processing is queued as a Celery task and the stored row is
    returned; otherwise the processed row is.
    """
    event, created = services.store_webhook_event(
        gateway=gateway_name,
        event_id=payload["id"],
        event_type=payload["type"],
        payload=payload,
    )
    if not created and event.status not in (
        WebhookEvent.Status.RECEIVED,
        WebhookEvent.Status.FAILED,
    ):
        logger.info(
            "Duplicate %s event %s (%s) acknowledged without processing",
            gateway_name,
            event.event_id,
            event.status,
        )
        return event
    if in_background:
        # The row is committed already: store_webhook_event ran its own transaction and
        # the webhook view runs outside any request transaction (non_atomic_requests).
        tasks.process_webhook_event.delay(event.pk)
        return event
    return services.process_webhook_event(webhook_event=event)


def _is_event(payload) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("id"), str)
        and bool(payload["id"])
        and isinstance(payload.get("type"), str)
    )


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def webhook(request, gateway_name):
    """Accept a gateway's signed event: 400 when it does not verify, 200 once stored.

    A stored event is processed by a Celery task. When the task cannot be queued the
    response is 503, so the gateway delivers the event again and the next delivery
    queues it.
    """
    gateway = get_gateway()
    if gateway_name != gateway.name:
        raise Http404(f"The configured payment gateway is {gateway.name!r}, not {gateway_name!r}.")
    try:
        payload = gateway.verify_webhook(body=request.body, headers=request.headers)
    except WebhookVerificationError as error:
        logger.warning("Rejected %s webhook: %s", gateway_name, error)
        return HttpResponseBadRequest("Webhook signature verification failed.")
    except ValueError as error:
        logger.warning("Rejected %s webhook with a body that is not JSON: %s", gateway_name, error)
        return HttpResponseBadRequest("Webhook body is not valid JSON.")
    if not _is_event(payload):
        logger.warning("Rejected %s webhook without an event id and type", gateway_name)
        return HttpResponseBadRequest("Webhook body is not an event with an id and a type.")

    try:
        event = receive_event(gateway_name=gateway_name, payload=payload, in_background=True)
    except OperationalError:
        logger.exception(
            "%s event %s stored, but its processing task could not be queued",
            gateway_name,
            payload["id"],
        )
        return HttpResponse("Event stored; processing could not be queued.", status=503)
    logger.info("%s webhook %s (%s) accepted", gateway_name, event.event_id, event.event_type)
    return HttpResponse("OK", content_type="text/plain")


# --- Portal buttons ------------------------------------------------------------------


def _portal_url() -> str:
    return f"{settings.CPR_SITE_URL}{reverse('members:portal_dashboard')}"


@require_POST
@member_required()
def pay(request, member):
    """Send the member to the gateway to pay a pending, past-due or suspended membership."""
    membership = member_selectors.current_membership(member)
    if membership is None or membership.state not in PAYABLE_STATES:
        messages.info(request, _("There is nothing to pay right now."))
        return redirect("members:portal_dashboard")
    try:
        url = services.start_membership_payment(
            membership=membership, success_url=_portal_url(), cancel_url=_portal_url()
        )
    except services.BillingError as error:
        logger.info("Payment of membership %s not started: %s", membership.pk, error)
        messages.error(request, str(error))
        return redirect("members:portal_dashboard")
    return redirect(url)


@require_POST
@member_required()
def manage(request, member):
    """Send the member to the gateway's page for their card and invoices."""
    try:
        url = services.open_billing_self_service(member=member, return_url=_portal_url())
    except services.BillingError as error:
        logger.info("Billing page of member %s not opened: %s", member.pk, error)
        messages.error(request, str(error))
        return redirect("members:portal_dashboard")
    return redirect(url)


# --- Fake gateway pages ----------------------------------------------------------------


def fake_gateway_only(view):
    """Make `view` raise Http404 unless PAYMENT_GATEWAY is the fake gateway."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if get_gateway().name != fake.FakeGateway.name:
            raise Http404("The fake gateway's pages exist only when it is PAYMENT_GATEWAY.")
        return view(request, *args, **kwargs)

    return wrapper


def _next_url(request) -> str:
    """Return the `next` address if it points at this site, else the portal dashboard."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    allowed_hosts = {request.get_host(), urlsplit(settings.CPR_SITE_URL).netloc}
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts=allowed_hosts):
        return candidate
    return reverse("members:portal_dashboard")


def _report_failure(request, event: WebhookEvent) -> bool:
    """Add an error message when processing `event` failed; return whether it failed."""
    if event.status != WebhookEvent.Status.FAILED:
        return False
    messages.error(
        request,
        _("The fake gateway's event %(id)s failed: %(error)s")
        % {"id": event.event_id, "error": event.error},
    )
    return True


@fake_gateway_only
@require_http_methods(["GET", "POST"])
@member_required()
def fake_pay(request, member, membership_id):
    """Show what the membership owes and pay it, as a checkout at the gateway would."""
    membership = (
        Membership.objects.select_related("plan")
        .filter(pk=membership_id, member=member, state__in=Membership.CURRENT_STATES)
        .first()
    )
    if membership is None:
        # Another member's membership looks the same as a missing one.
        raise Http404("No current membership with this id belongs to the signed-in member.")
    due = fake.amount_due(membership)
    if membership.state not in PAYABLE_STATES and not due.is_open_invoice:
        # An active member with nothing open has nothing to pay: Stripe bills the next
        # period itself, so the fake does not take months in advance either.
        messages.info(request, _("Your membership is paid up; there is nothing to pay now."))
        return redirect("members:portal_dashboard")

    if request.method == "GET":
        context = {
            "membership": membership,
            "due": due,
            "amount": format_usd(due.amount),
            "next": _next_url(request),
        }
        return render(request, "billing/fake/pay.html", context)

    checkout = receive_event(
        gateway_name=fake.FakeGateway.name, payload=fake.checkout_completed_payload(membership)
    )
    if _report_failure(request, checkout):
        return redirect(_next_url(request))
    payment = receive_event(
        gateway_name=fake.FakeGateway.name,
        payload=fake.payment_succeeded_payload(membership, due),
    )
    logger.info(
        "Fake gateway: member %s paid period %s of membership %s (event %s)",
        member.pk,
        due.period.number,
        membership.pk,
        payment.event_id,
    )
    if not _report_failure(request, payment):
        messages.success(
            request,
            _("Payment of %(amount)s received. Thank you!") % {"amount": format_usd(due.amount)},
        )
    return redirect(_next_url(request))


@fake_gateway_only
@require_http_methods(["GET"])
@member_required()
def fake_self_service(request, member):
    """List the member's invoices, with buttons that act as the gateway would."""
    invoices = list(
        Invoice.objects.filter(membership__member=member)
        .select_related("membership__plan")
        .order_by("-period_start", "-id")
    )
    membership = member_selectors.current_membership(member)
    context = {
        "invoices": invoices,
        "pending_items": fake.amount_due(membership).items if membership is not None else (),
        "membership": membership,
        "can_fail_renewal": membership is not None and membership.state == State.ACTIVE,
        "Status": Invoice.Status,
        "next": _next_url(request),
    }
    return render(request, "billing/fake/self_service.html", context)


@fake_gateway_only
@require_POST
@member_required()
def fake_fail_renewal(request, member):
    """Fail the renewal of the member's active membership for its next period."""
    membership = member_selectors.current_membership(member)
    if membership is None or membership.state != State.ACTIVE:
        messages.info(request, _("Only an active membership has a renewal that can fail."))
        return redirect("billing:fake_self_service")
    due = fake.amount_due(membership)
    event = receive_event(
        gateway_name=fake.FakeGateway.name,
        payload=fake.payment_failed_payload(membership, due, failure_message=FAKE_GATEWAY_DECLINE),
    )
    logger.info(
        "Fake gateway: renewal of membership %s for period %s failed (event %s)",
        membership.pk,
        due.period.number,
        event.event_id,
    )
    if not _report_failure(request, event):
        messages.warning(
            request,
            _("The renewal payment of %(amount)s failed (simulated).")
            % {"amount": format_usd(due.amount)},
        )
    return redirect("billing:fake_self_service")
