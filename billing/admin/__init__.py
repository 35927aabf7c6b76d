"""Back office for billing: invoices, payments, gateway events and the credit ledger.

Money rows change only through `billing.services`, so every page here is read-only. The
two forms (record a manual payment, adjust credit) and the "process again" action call a
service with the staff user as the actor. They report its outcome, or its BillingError.
"""

from .credit import CreditEntryAdmin
from .invoices import InvoiceAdmin
from .payments import PaymentAdmin
from .webhooks import WebhookEventAdmin

__all__ = ["CreditEntryAdmin", "InvoiceAdmin", "PaymentAdmin", "WebhookEventAdmin"]
