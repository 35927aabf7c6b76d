"""A payment gateway for domain tests: it records calls and turns stored payloads into events.

Its payloads are `{"id", "type", "data"}`, where `type` names the event class and `data`
contains the event's fields as JSON. `event_payload` builds one from an event.
"""

import dataclasses
import datetime
from decimal import Decimal

from billing.gateways import base
from billing.gateways.base import CustomerRef, PaymentGateway, RedirectURL

EVENT_CLASSES = {
    cls.__name__: cls
    for cls in (
        base.CheckoutCompleted,
        base.PaymentSucceeded,
        base.PaymentFailed,
        base.SubscriptionCancelled,
    )
}


def _to_json(value):
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def event_payload(event: base.GatewayEvent) -> dict:
    """Return the payload StubGateway stores for `event`."""
    data = {
        item.name: _to_json(getattr(event, item.name))
        for item in dataclasses.fields(event)
        if item.name != "event_id"
    }
    return {"id": event.event_id, "type": type(event).__name__, "data": data}


def _from_json(event_class, data: dict) -> dict:
    values = {}
    for item in dataclasses.fields(event_class):
        if item.name not in data:
            continue
        value = data[item.name]
        if item.type in (datetime.datetime, "datetime.datetime"):
            value = datetime.datetime.fromisoformat(value)
        elif item.type in (datetime.date, "datetime.date"):
            value = datetime.date.fromisoformat(value)
        elif item.type in (Decimal, "Decimal"):
            value = Decimal(value)
        elif item.name == "item_references":
            value = tuple(value)
        values[item.name] = value
    return values


class StubGateway(PaymentGateway):
    name = "stub"

    def __init__(self):
        self.calls = []

    def ensure_customer(self, *, member) -> CustomerRef:
        self.calls.append(("ensure_customer", member.pk))
        return CustomerRef(reference=f"cus_{member.pk}")

    def start_payment(self, *, membership, success_url, cancel_url) -> RedirectURL:
        self.calls.append(("start_payment", membership.pk))
        return RedirectURL(url=f"https://pay.example.test/checkout/{membership.pk}")

    def open_self_service(self, *, member, return_url) -> RedirectURL:
        self.calls.append(("open_self_service", member.pk))
        return RedirectURL(url=f"https://pay.example.test/portal/{member.pk}")

    def schedule_cancellation(self, *, membership, at) -> None:
        self.calls.append(("schedule_cancellation", membership.pk, at))

    def add_invoice_item(self, *, item) -> str:
        self.calls.append(("add_invoice_item", item.pk))
        return f"ii_{item.pk}"

    def remove_invoice_item(self, *, item) -> None:
        self.calls.append(("remove_invoice_item", item.pk))

    def verify_webhook(self, *, body, headers) -> dict:
        raise NotImplementedError("the stub gateway receives no webhooks over HTTP")

    def normalize_event(self, *, payload) -> base.GatewayEvent:
        event_class = EVENT_CLASSES.get(payload["type"])
        if event_class is None:
            return base.IgnoredEvent(
                event_id=payload["id"],
                created_at=datetime.datetime.now(datetime.UTC),
                event_type=payload["type"],
            )
        return event_class(event_id=payload["id"], **_from_json(event_class, payload["data"]))
