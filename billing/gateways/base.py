"""The payment gateway interface and the normalised events it produces.

Domain code talks to a gateway only through `PaymentGateway` and receives only the
dataclasses below, never a vendor's objects. Amounts are `Decimal` US dollars with two
places; adapters convert to and from a vendor's units (Stripe: integer cents).
"""

import datetime
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal


class GatewayError(Exception):
    """A gateway call failed. The message names what failed, without secrets."""


class WebhookVerificationError(GatewayError):
    """An incoming webhook's signature or timestamp did not verify."""


@dataclass(frozen=True)
class CustomerRef:
    """The gateway's customer for a member."""

    reference: str


@dataclass(frozen=True)
class RedirectURL:
    """A page of the gateway (or the fake pay page) to send the member to."""

    url: str


# --- Normalised events ------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayEvent:
    """Base of every event: the gateway's unique event id and when the gateway made it."""

    event_id: str
    created_at: datetime.datetime


@dataclass(frozen=True)
class CheckoutCompleted(GatewayEvent):
    """The member finished the gateway's checkout for a membership."""

    membership_id: int
    customer_reference: str
    subscription_reference: str


@dataclass(frozen=True)
class PaymentSucceeded(GatewayEvent):
    """An invoice for one billing period of a membership was paid."""

    membership_id: int
    invoice_reference: str
    payment_reference: str
    amount: Decimal
    period_start: datetime.date
    period_end: datetime.date
    paid_at: datetime.datetime
    hosted_url: str = ""
    #: The gateway's ids of the one-off invoice items on the invoice (room overage).
    item_references: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaymentFailed(GatewayEvent):
    """Collecting an invoice for one billing period failed."""

    membership_id: int
    invoice_reference: str
    amount: Decimal
    period_start: datetime.date
    period_end: datetime.date
    hosted_url: str = ""
    failure_message: str = ""
    item_references: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubscriptionCancelled(GatewayEvent):
    """The gateway ended the membership's subscription."""

    membership_id: int
    subscription_reference: str
    ended_at: datetime.datetime


@dataclass(frozen=True)
class IgnoredEvent(GatewayEvent):
    """An event type the portal does not act on; it is stored and acknowledged."""

    event_type: str
    details: dict = field(default_factory=dict)


class PaymentGateway(ABC):
    """The operations the billing domain needs from a payment provider.

    Every method that creates something at the gateway must be safe to call again with
    the same arguments (adapters pass idempotency keys), because tasks retry.
    """

    #: Short name stored on invoices, payments and webhook events ("stripe", "fake").
    name: str

    def configuration_problems(self) -> list[str]:
        """Return a message for each missing or invalid setting; empty when ready."""
        return []

    @abstractmethod
    def ensure_customer(self, *, member) -> CustomerRef:
        """Return the gateway's customer for `member`, creating it when there is none."""

    @abstractmethod
    def start_payment(self, *, membership, success_url: str, cancel_url: str) -> RedirectURL:
        """Return the page where the member pays for `membership` and starts its billing.

        Billing is anchored to the membership's start date, and periods follow
        `members.periods`.
        """

    @abstractmethod
    def open_self_service(self, *, member, return_url: str) -> RedirectURL:
        """Return the gateway's page where the member updates their card and views invoices."""

    @abstractmethod
    def schedule_cancellation(self, *, membership, at: datetime.date) -> None:
        """Make the gateway stop billing `membership` after `at`."""

    @abstractmethod
    def add_invoice_item(self, *, item) -> str:
        """Put `item` (a billing.models.InvoiceItem) on its membership's next invoice.

        Returns the gateway's id of the item, or "" when the gateway does not bill the
        membership (no subscription there), so the item waits for a manual payment. Must
        be safe to call again for the same item.
        """

    @abstractmethod
    def remove_invoice_item(self, *, item) -> None:
        """Take `item` off the next invoice at the gateway; `item.gateway_reference` names it."""

    @abstractmethod
    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> dict:
        """Verify an incoming webhook and return its decoded payload.

        Raises WebhookVerificationError when the signature, secret or timestamp does not
        verify. The payload must contain the event's unique "id" and its "type".
        """

    @abstractmethod
    def normalize_event(self, *, payload: dict) -> GatewayEvent:
        """Turn a verified, stored payload into a normalised event.

        Unknown event types come back as IgnoredEvent. Called again on the stored payload
        when staff process an event again, so it must not depend on the request.
        """
