"""Stripe webhook payloads and signatures for tests.

Payloads start from the JSON files in stripe_payloads/, which follow the shapes in
Stripe's API reference: API version 2025-03-31.basil for the current shape, 2024-06-20
for the legacy invoice. Each builder sets only the ids, amounts and dates a test needs.

`signature_header` computes Stripe's v1 scheme itself, independently of
stripe-python: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`.
"""

import copy
import datetime
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path

from django.utils import timezone

PAYLOADS = Path(__file__).parent / "stripe_payloads"

WEBHOOK_SECRET = "whsec_test_cpr_portal_signing_secret"
SECRET_KEY = "sk_test_cpr_portal_secret_key"
# A local address: a request that escapes the HTTP mocks can only reach this machine.
API_BASE = "http://127.0.0.1:12111"


@cache
def _load(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def load(name: str) -> dict:
    """Return a fresh copy of stripe_payloads/<name>.json."""
    return copy.deepcopy(_load(name))


def day_start(day: datetime.date) -> int:
    """Return the Unix time of midnight at the start of `day` in America/Puerto_Rico."""
    start = datetime.datetime.combine(day, datetime.time.min, timezone.get_default_timezone())
    return int(start.timestamp())


def checkout_session_completed(
    *,
    membership_id: int,
    event_id: str = "evt_checkout_1",
    customer: str = "cus_RhotdeskMember01",
    subscription: str = "sub_1QxHotDeskSubscription1",
) -> dict:
    event = load("checkout_session_completed")
    event["id"] = event_id
    event["created"] = int(time.time())
    session = event["data"]["object"]
    session["client_reference_id"] = str(membership_id)
    session["metadata"] = {"membership_id": str(membership_id)}
    session["customer"] = customer
    session["subscription"] = subscription
    return event


def invoice_event(
    name: str = "invoice_paid",
    *,
    membership_id: int | None,
    period_start: datetime.date,
    period_end: datetime.date,
    event_id: str = "evt_invoice_1",
    invoice_id: str = "in_1QxFirstInvoice000001",
    amount_cents: int = 25000,
    subscription: str = "sub_1QxHotDeskSubscription1",
) -> dict:
    """Return an invoice event (current shape unless `name` is the legacy fixture).

    `membership_id=None` removes the membership from every metadata the invoice carries.
    """
    event = load(name)
    now = int(time.time())
    event["id"] = event_id
    event["created"] = now
    invoice = event["data"]["object"]
    invoice["id"] = invoice_id
    metadata = {"membership_id": str(membership_id)} if membership_id is not None else {}
    if "parent" in invoice:
        invoice["parent"]["subscription_details"]["metadata"] = metadata
        invoice["parent"]["subscription_details"]["subscription"] = subscription
    else:
        invoice["subscription_details"]["metadata"] = metadata
        invoice["subscription"] = subscription
    line = invoice["lines"]["data"][0]
    line["invoice"] = invoice_id
    line["metadata"] = dict(metadata) if "parent" in invoice else {}
    line["period"] = {"start": day_start(period_start), "end": day_start(period_end)}
    line["amount"] = amount_cents
    invoice["amount_due"] = amount_cents
    if invoice["status"] == "paid":
        invoice["amount_paid"] = amount_cents
        invoice["status_transitions"]["paid_at"] = now
        for payment in invoice.get("payments", {}).get("data", []):
            payment["invoice"] = invoice_id
            payment["payment"]["payment_intent"] = f"pi_{invoice_id}"
        if "payment_intent" in invoice:
            invoice["payment_intent"] = f"pi_{invoice_id}"
    else:
        invoice["amount_remaining"] = amount_cents
    return event


def subscription_deleted(
    *,
    membership_id: int,
    ended_on: datetime.date,
    event_id: str = "evt_subscription_deleted_1",
    subscription: str = "sub_1QxHotDeskSubscription1",
) -> dict:
    event = load("customer_subscription_deleted")
    event["id"] = event_id
    event["created"] = int(time.time())
    obj = event["data"]["object"]
    obj["id"] = subscription
    obj["metadata"] = {"membership_id": str(membership_id)}
    obj["ended_at"] = day_start(ended_on)
    return event


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def signature_header(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    """Return a Stripe-Signature header value for `body`, signed at `timestamp` (now)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(client, payload: dict | bytes, **signing):
    """POST `payload` to the Stripe webhook endpoint, signed as Stripe signs it."""
    body = payload if isinstance(payload, bytes) else encode(payload)
    return client.post(
        "/billing/webhooks/stripe/",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature_header(body, **signing)},
    )
