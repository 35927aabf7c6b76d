"""Payments, added only through the "Record manual payment" form, which calls the service."""

import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import selectors, services
from billing.forms import ManualPaymentForm
from billing.models import Payment
from billing.money import format_usd
from members.admin.base import RelatedSearchMixin, admin_change_url, format_date
from members.models import Membership
from members.services import MembersError

from .base import (
    MEMBER_SEARCH_FIELDS,
    GatewayListFilter,
    ReadOnlyAdminMixin,
    ServiceFormMixin,
    has_model_permission,
    link_to_member,
    link_to_membership,
)

logger = logging.getLogger(__name__)


@admin.register(Payment)
class PaymentAdmin(RelatedSearchMixin, ServiceFormMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Payments. Staff add one only through "Record manual payment", which calls the service."""

    list_display = (
        "id",
        "received_at",
        "member",
        "membership_link",
        "amount_usd",
        "method",
        "reference",
        "invoice",
        "recorded_by",
    )
    list_display_links = ("id", "received_at")
    list_filter = ("method", GatewayListFilter)
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    search_fields = tuple(f"membership__member__{name}" for name in MEMBER_SEARCH_FIELDS) + (
        "reference",
    )
    list_select_related = ("membership__member", "membership__plan", "invoice", "recorded_by")
    date_hierarchy = "received_at"

    @admin.display(description=gettext_lazy("member"), ordering="membership__member__last_name")
    def member(self, payment):
        return link_to_member(payment.membership.member)

    @admin.display(description=gettext_lazy("membership"), ordering="membership")
    def membership_link(self, payment):
        return link_to_membership(payment.membership)

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_usd(self, payment):
        return format_usd(payment.amount)

    def get_urls(self):
        record = path(
            "record/",
            self.admin_site.admin_view(self.record_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_record",
        )
        return [record, *super().get_urls()]

    def has_record_permission(self, request) -> bool:
        """Return whether the user may record a manual payment (the "add payment" permission)."""
        return has_model_permission(request, Payment, "add")

    def changelist_view(self, request, extra_context=None):
        extra_context = {"can_record": self.has_record_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def record_view(self, request):
        """Show the manual payment form, and record the payment when it is posted."""
        if not self.has_record_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ManualPaymentForm(request.POST)
            if form.is_valid():
                response = self._record(request, form)
                if response is not None:
                    return response
        else:
            form = self._unbound_payment_form(request.GET.get("membership", ""))
        return self.render_service_form(
            request,
            form=form,
            title=_("Record manual payment"),
            intro=_(
                "Record money received in cash, by check, through ATH Móvil or by bank "
                "transfer. The payment pays the membership's oldest open invoice, or a new "
                "invoice for its next period, and must equal that invoice's amount. A pending "
                "membership whose start date has come becomes active, and a past-due or "
                "suspended one is reinstated once no later invoice is open."
            ),
            submit_label=_("Record payment"),
            extra={"summary": self._amount_due_summary(form)},
        )

    @staticmethod
    def _chosen_membership(form) -> Membership | None:
        membership_id = (
            form.data.get("membership") if form.is_bound else form.initial.get("membership")
        )
        if not str(membership_id).isdigit():
            return None
        return Membership.objects.select_related("member", "plan").filter(pk=membership_id).first()

    def _unbound_payment_form(self, membership_id: str) -> ManualPaymentForm:
        """Return the empty form, with the membership and the amount it owes filled in."""
        form = ManualPaymentForm(initial={"membership": membership_id})
        membership = self._chosen_membership(form)
        upcoming = selectors.next_payment(membership) if membership is not None else None
        if upcoming is not None:
            form.initial["amount"] = upcoming.amount
        return form

    def _amount_due_summary(self, form) -> str:
        membership = self._chosen_membership(form)
        upcoming = selectors.next_payment(membership) if membership is not None else None
        if upcoming is None:
            return ""
        return _(
            "Membership %(id)s of %(member)s owes %(amount)s for the period from %(start)s to "
            "%(end)s."
        ) % {
            "id": membership.pk,
            "member": membership.member.full_name,
            "amount": format_usd(upcoming.amount),
            "start": format_date(upcoming.period_start),
            "end": format_date(selectors.last_day_before(upcoming.period_end)),
        }

    def _record(self, request, form):
        """Call the service; return a redirect, or None after adding its error to the form."""
        data = form.cleaned_data
        membership = data["membership"]
        try:
            payment = services.record_manual_payment(
                membership=membership,
                amount=data["amount"],
                method=data["method"],
                reference=data["reference"],
                received_at=data["received_at"],
                actor=request.user,
                note=data["note"],
            )
        except (services.BillingError, MembersError) as error:
            logger.info(
                "Manual payment for membership %s not recorded by user %s: %s",
                membership.pk,
                request.user.pk,
                error,
            )
            form.add_error(None, str(error))
            return None

        membership.refresh_from_db(fields=["state"])
        self.message_user(
            request,
            format_html(
                _(
                    '<a href="{payment_url}">Payment {payment}</a> of {amount} ({method}) '
                    "recorded for membership {membership} of {member}. The membership is "
                    "now {state}."
                ),
                payment_url=admin_change_url(payment),
                payment=payment.pk,
                amount=format_usd(payment.amount),
                method=payment.get_method_display(),
                membership=membership.pk,
                member=membership.member.full_name,
                state=membership.get_state_display(),
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(admin_change_url(membership))
