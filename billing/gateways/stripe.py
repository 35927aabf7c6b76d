"""Stripe adapter: Checkout in subscription mode, the Customer Portal and signed webhooks.

This is the only module that imports `stripe`. It turns Stripe errors into
`GatewayError`, and `billing.gateways.stripe_payloads` turns the verified event payloads
into the normalised events of `billing.gateways.base`. Amounts go to Stripe as integer
cents, and dates as Unix timestamps at the start of the day in settings.TIME_ZONE
(America/Puerto_Rico, which has no daylight saving time).

Settings: STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, STRIPE_WEBHOOK_TOLERANCE (seconds),
STRIPE_API_BASE, and the optional STRIPE_PORTAL_CONFIGURATION_ID, the Customer Portal
configuration to open. Without that setting the adapter finds or creates a configuration
(tagged with metadata cpr_portal=no_self_cancel) that lets members update their card and
read their invoices but not cancel. Members cancel through staff
(`members.services.cancel_membership`), so the commitment and the plan's cancellation
policy apply, and `schedule_cancellation` then stops the billing at Stripe.
"""

import datetime
import json
import logging
import uuid

import stripe
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from members.periods import billing_period

from .base import (
    CustomerRef,
    GatewayError,
    GatewayEvent,
    PaymentGateway,
    RedirectURL,
    WebhookVerificationError,
)
from .stripe_payloads import GATEWAY_NAME, day_start_timestamp, normalize_stripe_event, to_cents

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
# Seconds a request to Stripe may take; stripe-python's own default is 80.
REQUEST_TIMEOUT = 30
MAX_NETWORK_RETRIES = 2
PORTAL_CONFIGURATION_TAG = {"cpr_portal": "no_self_cancel"}


class StripeGateway(PaymentGateway):
    """Payments through Stripe Billing; see the module docstring for the settings."""

    name = GATEWAY_NAME

    def __init__(self):
        # Keyed by (secret key, API base), so a changed setting builds a new client.
        self._clients: dict[tuple[str, str], stripe.StripeClient] = {}
        self._portal_configurations: dict[tuple[str, str], str] = {}

    def configuration_problems(self) -> list[str]:
        problems = []
        if not settings.STRIPE_SECRET_KEY:
            problems.append(
                "STRIPE_SECRET_KEY is empty; PAYMENT_GATEWAY is Stripe, which needs the "
                "secret API key (sk_live_... or a restricted rk_live_... key)."
            )
        if not settings.STRIPE_WEBHOOK_SECRET:
            problems.append(
                "STRIPE_WEBHOOK_SECRET is empty; every Stripe webhook is rejected without the "
                "endpoint's signing secret (whsec_...), because signatures are always checked."
            )
        return problems

    # --- API calls -----------------------------------------------------------------

    def _client_key(self) -> tuple[str, str]:
        if not settings.STRIPE_SECRET_KEY:
            raise GatewayError("STRIPE_SECRET_KEY is empty, so Stripe cannot be called.")
        return settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE

    def _client(self) -> stripe.StripeClient:
        key = self._client_key()
        client = self._clients.get(key)
        if client is None:
            secret_key, api_base = key
            client = stripe.StripeClient(
                secret_key,
                base_addresses={"api": api_base},
                http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT),
                max_network_retries=MAX_NETWORK_RETRIES,
            )
            self._clients[key] = client
        return client

    def _call(self, action: str, method, *args, missing_ok: bool = False, **kwargs):
        """Run one API call; turn a Stripe error into GatewayError naming `action`.

        Only the error's class, HTTP status, code and request id are logged and raised,
        because Stripe's messages can echo request parameters. With `missing_ok` a 404
        (the object is gone already) returns None instead.
        """
        try:
            return method(*args, **kwargs)
        except stripe.StripeError as error:
            if missing_ok and error.http_status == 404:
                logger.info("Stripe %s: the object no longer exists (HTTP 404)", action)
                return None
            logger.warning(
                "Stripe %s failed: %s (HTTP status %s, code %s, request %s)",
                action,
                type(error).__name__,
                error.http_status,
                error.code,
                error.request_id,
            )
            raise GatewayError(
                f"Stripe {action} failed ({type(error).__name__}, HTTP status "
                f"{error.http_status}, code {error.code or 'none'}). Try again later; the "
                f"Stripe dashboard's request log has request {error.request_id}."
            ) from error

    # --- PaymentGateway ------------------------------------------------------------

    def ensure_customer(self, *, member) -> CustomerRef:
        """Return the member's stored Stripe customer, or create one at Stripe.

        The caller stores a newly created reference (billing.models.GatewayCustomer). The
        idempotency key makes a retry within Stripe's 24-hour key window return the same
        customer instead of a second one.
        """
        from billing.models import GatewayCustomer

        stored = (
            GatewayCustomer.objects.filter(member=member, gateway=self.name)
            .values_list("reference", flat=True)
            .first()
        )
        if stored:
            return CustomerRef(reference=stored)
        customer = self._call(
            "customer creation",
            self._client().v1.customers.create,
            params={
                "email": member.email,
                "name": member.full_name,
                "metadata": {"member_id": str(member.pk)},
            },
            options={"idempotency_key": f"cpr-customer-{member.pk}"},
        )
        logger.info("Created Stripe customer %s for member %s", customer.id, member.pk)
        return CustomerRef(reference=customer.id)

    def start_payment(self, *, membership, success_url: str, cancel_url: str) -> RedirectURL:
        """Return where the member pays: a new Checkout Session, or the existing billing.

        A membership that already has a Stripe subscription never gets a second one: an
        open invoice sends the member to Stripe's page for that invoice, and otherwise to
        the Customer Portal.
        """
        from billing.models import GatewaySubscription, Invoice

        open_invoice = (
            membership.invoices.filter(
                kind=Invoice.Kind.PERIOD, status=Invoice.Status.OPEN, gateway=self.name
            )
            .exclude(hosted_url="")
            .order_by("period_number")
            .first()
        )
        if open_invoice is not None:
            return RedirectURL(url=open_invoice.hosted_url)
        has_subscription = GatewaySubscription.objects.filter(
            membership=membership, gateway=self.name, ended_at__isnull=True
        ).exists()
        if has_subscription:
            return self.open_self_service(member=membership.member, return_url=success_url)
        return self._create_checkout_session(
            membership=membership, success_url=success_url, cancel_url=cancel_url
        )

    def _create_checkout_session(self, *, membership, success_url, cancel_url) -> RedirectURL:
        from billing.models import Invoice

        customer = self.ensure_customer(member=membership.member)
        last_paid = membership.invoices.filter(
            kind=Invoice.Kind.PERIOD, status=Invoice.Status.PAID
        ).aggregate(number=Max("period_number"))["number"]
        period = billing_period(membership.start_date, (last_paid or 0) + 1)
        metadata = {"membership_id": str(membership.pk)}
        subscription_data = {"metadata": metadata, "proration_behavior": "none"}
        anchor = day_start_timestamp(period.start)
        if anchor > int(timezone.now().timestamp()):
            # Nothing is charged before the period starts: with proration_behavior
            # "none" the time up to the anchor is free, and the first full invoice is
            # created at the anchor.
            subscription_data["billing_cycle_anchor"] = anchor
        else:
            # NOTE: Checkout cannot backdate a subscription, so when the period has
            # already started, Stripe's billing day becomes the checkout day and its
            # periods no longer start on the membership's anchor day.
            anchor = None
        params = {
            "mode": "subscription",
            "customer": customer.reference,
            "client_reference_id": str(membership.pk),
            "metadata": metadata,
            "line_items": [self._line_item(membership)],
            "subscription_data": subscription_data,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        session = self._call(
            "Checkout Session creation",
            self._client().v1.checkout.sessions.create,
            params=params,
            options={
                "idempotency_key": (
                    f"cpr-checkout-{membership.pk}-{period.number}-{anchor or 'now'}"
                )
            },
        )
        logger.info(
            "Created Stripe Checkout Session %s for membership %s, period %s",
            session.id,
            membership.pk,
            period.number,
        )
        return RedirectURL(url=session.url)

    @staticmethod
    def _line_item(membership) -> dict:
        """Return the subscription's line item at the membership's price snapshot.

        The plan's Stripe price is used only while it still matches the snapshot, because
        a price changed after signing must not change a signed contract.
        """
        plan = membership.plan
        if plan.stripe_price_id and plan.monthly_price == membership.monthly_price:
            return {"price": plan.stripe_price_id, "quantity": 1}
        return {
            "price_data": {
                "currency": "usd",
                "unit_amount": to_cents(membership.monthly_price),
                "recurring": {"interval": "month", "interval_count": 1},
                "product_data": {"name": plan.name},
            },
            "quantity": 1,
        }

    def open_self_service(self, *, member, return_url: str) -> RedirectURL:
        customer = self.ensure_customer(member=member)
        session = self._call(
            "Customer Portal session creation",
            self._client().v1.billing_portal.sessions.create,
            params={
                "customer": customer.reference,
                "return_url": return_url,
                "configuration": self._portal_configuration_id(),
            },
            # A portal session is short-lived, so a new key per call: it only makes
            # stripe-python's own retries of this request safe.
            options={"idempotency_key": f"cpr-portal-session-{member.pk}-{uuid.uuid4().hex}"},
        )
        return RedirectURL(url=session.url)

    def _portal_configuration_id(self) -> str:
        """Return the Customer Portal configuration without self-cancellation."""
        configured = settings.STRIPE_PORTAL_CONFIGURATION_ID
        if configured:
            return configured
        key = self._client_key()
        if key in self._portal_configurations:
            return self._portal_configurations[key]
        client = self._client()

        existing = self._call(
            "Customer Portal configuration listing",
            client.v1.billing_portal.configurations.list,
            params={"active": True, "limit": 100},
        )
        for configuration in existing.data:
            metadata = configuration.metadata.to_dict() if configuration.metadata else {}
            if metadata == PORTAL_CONFIGURATION_TAG:
                self._portal_configurations[key] = configuration.id
                return configuration.id

        created = self._call(
            "Customer Portal configuration creation",
            client.v1.billing_portal.configurations.create,
            params={
                "features": {
                    "invoice_history": {"enabled": True},
                    "payment_method_update": {"enabled": True},
                    "subscription_cancel": {"enabled": False},
                    "subscription_update": {"enabled": False},
                },
                "metadata": PORTAL_CONFIGURATION_TAG,
            },
            options={"idempotency_key": "cpr-portal-configuration-no-self-cancel-v1"},
        )
        logger.warning(
            "Created Stripe Customer Portal configuration %s without self-cancellation; "
            "set STRIPE_PORTAL_CONFIGURATION_ID=%s to skip this lookup",
            created.id,
            created.id,
        )
        self._portal_configurations[key] = created.id
        return created.id

    def schedule_cancellation(self, *, membership, at: datetime.date) -> None:
        """Set the subscription's cancel_at to the start of `at`, without proration."""
        from billing.models import GatewaySubscription

        subscription = GatewaySubscription.objects.filter(
            membership=membership, gateway=self.name
        ).first()
        if subscription is None:
            logger.info(
                "Membership %s has no Stripe subscription; no billing to stop at %s",
                membership.pk,
                at,
            )
            return
        self._call(
            "subscription cancellation scheduling",
            self._client().v1.subscriptions.update,
            subscription.reference,
            params={"cancel_at": day_start_timestamp(at), "proration_behavior": "none"},
            options={"idempotency_key": f"cpr-cancel-{membership.pk}-{at.isoformat()}"},
        )
        logger.info(
            "Stripe subscription %s of membership %s cancels at %s",
            subscription.reference,
            membership.pk,
            at,
        )

    def _billing_subscription(self, membership) -> str:
        """Return the reference of the membership's running Stripe subscription, or ""."""
        from billing.models import GatewaySubscription

        return (
            GatewaySubscription.objects.filter(
                membership=membership, gateway=self.name, ended_at__isnull=True
            )
            .values_list("reference", flat=True)
            .first()
            or ""
        )

    def add_invoice_item(self, *, item) -> str:
        """Create a pending Stripe invoice item on the membership's subscription.

        Stripe adds pending items of a subscription to that subscription's next invoice,
        whose webhook then lists the item's id. A membership without a running Stripe
        subscription gets nothing at Stripe, because no Stripe invoice would collect it.
        """
        membership = item.membership
        subscription = self._billing_subscription(membership)
        if not subscription:
            logger.info(
                "Membership %s has no Stripe subscription; invoice item %s stays local",
                membership.pk,
                item.pk,
            )
            return ""
        customer = self.ensure_customer(member=membership.member)
        created = self._call(
            "invoice item creation",
            self._client().v1.invoice_items.create,
            params={
                "customer": customer.reference,
                "subscription": subscription,
                "amount": to_cents(item.amount),
                "currency": "usd",
                "description": item.description,
                "metadata": {
                    "membership_id": str(membership.pk),
                    "invoice_item_id": str(item.pk),
                    "reference": item.reference,
                },
            },
            options={"idempotency_key": f"cpr-invoice-item-{item.pk}"},
        )
        logger.info(
            "Created Stripe invoice item %s for item %s of membership %s",
            created.id,
            item.pk,
            membership.pk,
        )
        return created.id

    def remove_invoice_item(self, *, item) -> None:
        """Delete the pending Stripe invoice item; one that is gone already counts as deleted.

        Stripe refuses (HTTP 400) once the item is on a finalized invoice, and the task retries.
        """
        self._call(
            "invoice item deletion",
            self._client().v1.invoice_items.delete,
            item.gateway_reference,
            missing_ok=True,
            options={"idempotency_key": f"cpr-invoice-item-delete-{item.pk}"},
        )
        logger.info("Deleted Stripe invoice item %s (item %s)", item.gateway_reference, item.pk)

    def verify_webhook(self, *, body: bytes, headers) -> dict:
        """Check the Stripe-Signature header and return the event as received.

        The signature is verified with stripe-python's WebhookSignature, and the body is
        decoded here rather than through stripe.Webhook.construct_event, so the stored
        payload is exactly the JSON that Stripe signed. Raises WebhookVerificationError
        for a missing secret, header or matching signature and for a timestamp older
        than STRIPE_WEBHOOK_TOLERANCE; raises ValueError for a body that is not JSON.
        """
        secret = settings.STRIPE_WEBHOOK_SECRET
        if not secret:
            raise WebhookVerificationError("STRIPE_WEBHOOK_SECRET is empty; set it to verify.")
        try:
            stripe.WebhookSignature.verify_header(
                body,
                headers.get(SIGNATURE_HEADER),
                secret,
                tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
            )
        except stripe.SignatureVerificationError as error:
            raise WebhookVerificationError(error.user_message or "Invalid signature.") from error
        return json.loads(body)

    def normalize_event(self, *, payload: dict) -> GatewayEvent:
        return normalize_stripe_event(payload)
