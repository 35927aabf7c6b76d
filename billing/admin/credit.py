"""The credit ledger, read-only, and the "Adjust credit" form that calls the service."""

import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import selectors, services
from billing.forms import CreditAdjustmentForm
from billing.models import CreditEntry
from billing.money import format_usd
from members.admin.base import RelatedSearchMixin
from members.models import Member

from .base import (
    MEMBER_SEARCH_FIELDS,
    ReadOnlyAdminMixin,
    ServiceFormMixin,
    has_model_permission,
    link_to_member,
)

logger = logging.getLogger(__name__)


@admin.register(CreditEntry)
class CreditEntryAdmin(RelatedSearchMixin, ServiceFormMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The append-only credit ledger; staff change a balance only through "Adjust credit"."""

    list_display = (
        "id",
        "created_at",
        "member",
        "kind",
        "amount_usd",
        "lot_number",
        "expires_on",
        "reference",
        "short_reason",
        "created_by",
    )
    list_display_links = ("id", "created_at")
    list_filter = ("kind",)
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    search_fields = tuple(f"member__{name}" for name in MEMBER_SEARCH_FIELDS) + ("reference",)
    list_select_related = ("member", "created_by")

    REASON_PREVIEW_LENGTH = 60

    @admin.display(description=gettext_lazy("member"), ordering="member__last_name")
    def member(self, entry):
        return link_to_member(entry.member)

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_usd(self, entry):
        return format_usd(entry.amount)

    @admin.display(description=gettext_lazy("lot"), ordering="lot")
    def lot_number(self, entry):
        return entry.lot_id or "—"

    @admin.display(description=gettext_lazy("reason"))
    def short_reason(self, entry):
        if len(entry.reason) <= self.REASON_PREVIEW_LENGTH:
            return entry.reason
        return entry.reason[: self.REASON_PREVIEW_LENGTH - 1] + "…"

    def get_urls(self):
        adjust = path(
            "adjust/",
            self.admin_site.admin_view(self.adjust_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_adjust",
        )
        return [adjust, *super().get_urls()]

    def has_adjust_permission(self, request) -> bool:
        """Return whether the user may adjust credit (the "add credit entry" permission)."""
        return has_model_permission(request, CreditEntry, "add")

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "can_adjust": self.has_adjust_permission(request),
            # The list filtered to one member links to the form with that member chosen.
            "adjust_member": request.GET.get("member__id__exact", ""),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def adjust_view(self, request):
        """Show the credit adjustment form, and apply the adjustment when it is posted."""
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = CreditAdjustmentForm(request.POST)
            if form.is_valid():
                response = self._adjust(request, form)
                if response is not None:
                    return response
        else:
            form = CreditAdjustmentForm(initial={"member": request.GET.get("member")})
        return self.render_service_form(
            request,
            form=form,
            title=_("Adjust credit"),
            intro=_(
                "A positive amount adds a lot of credit, which expires on the date given or "
                "never. A negative amount takes credit away from the lots that expire first, "
                "and is rejected when the member has less credit than that."
            ),
            submit_label=_("Adjust credit"),
            extra={"summary": self._balance_of_chosen_member(form)},
        )

    @staticmethod
    def _balance_of_chosen_member(form) -> str:
        member_id = form.data.get("member") if form.is_bound else form.initial.get("member")
        member = Member.objects.filter(pk=member_id).first() if str(member_id).isdigit() else None
        if member is None:
            return ""
        return _("%(member)s has %(balance)s of credit to spend today.") % {
            "member": member.full_name,
            "balance": format_usd(selectors.credit_balance(member)),
        }

    def _adjust(self, request, form):
        """Call the service; return a redirect, or None after adding its error to the form."""
        data = form.cleaned_data
        member = data["member"]
        try:
            services.adjust_credit(
                member=member,
                amount=data["amount"],
                reason=data["reason"],
                actor=request.user,
                expires_on=data["expires_on"],
            )
        except services.BillingError as error:
            logger.info(
                "Credit of member %s not adjusted by user %s: %s", member.pk, request.user.pk, error
            )
            form.add_error(None, str(error))
            return None

        self.message_user(
            request,
            _("Credit of %(member)s adjusted by %(amount)s. Balance now %(balance)s.")
            % {
                "member": member.full_name,
                "amount": format_usd(data["amount"]),
                "balance": format_usd(selectors.credit_balance(member)),
            },
            messages.SUCCESS,
        )
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return HttpResponseRedirect(f"{changelist}?member__id__exact={member.pk}")
