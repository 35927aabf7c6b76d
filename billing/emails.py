"""Emails of billing, queued in the outbox within the caller's transaction.

Gateway events can arrive twice; the dedupe keys name the payment or the invoice, so a
replayed event queues nothing new.
"""

import datetime

from django.utils import timezone, translation

from members.languages import member_language
from members.models import Membership
from outbox.services import queue_email

from .models import Invoice, Payment
from .selectors import safe_link


def queue_payment_received(*, payment: Payment, invoice: Invoice, membership: Membership) -> None:
    """Send the member a receipt: amount, method, date and the period the payment covers."""
    member = membership.member
    language = member_language(member)
    with translation.override(language):
        # The label in the language of the email.
        method = str(Payment.Method(payment.method).label)
    queue_email(
        recipient=member.email,
        template="payment_received",
        context={
            "payment_id": payment.pk,
            "invoice_id": invoice.pk,
            "membership_id": membership.pk,
            "first_name": member.first_name,
            "plan_name": membership.plan.name,
            "amount": payment.amount,
            "method": method,
            "received_on": timezone.localdate(payment.received_at),
            "period_start": invoice.period_start,
            "period_last_day": invoice.period_last_day,
        },
        dedupe_key=f"payment_received:payment:{payment.pk}",
        language=language,
    )


def queue_payment_failed(
    *, membership: Membership, invoice: Invoice, grace_until: datetime.date
) -> None:
    """Tell the member a payment failed, until when access continues, and where to pay.

    The email links the invoice's page at the gateway (Stripe's hosted invoice, or the
    fake gateway's pay page), where the member pays without signing in, and the portal
    when the invoice has no such page.
    """
    member = membership.member
    queue_email(
        recipient=member.email,
        template="payment_failed",
        context={
            "invoice_id": invoice.pk,
            "membership_id": membership.pk,
            "first_name": member.first_name,
            "plan_name": membership.plan.name,
            "amount": invoice.amount,
            "period_start": invoice.period_start,
            "period_last_day": invoice.period_last_day,
            "grace_until": grace_until,
            "pay_url": safe_link(invoice.hosted_url),
        },
        dedupe_key=f"payment_failed:invoice:{invoice.pk}",
        language=member_language(member),
    )
