"""Invoices, read-only: the billing services write them from gateway events and payments."""

from django.contrib import admin
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import selectors
from billing.models import Invoice, InvoiceItem, Payment
from billing.money import format_usd
from members.admin.base import LIST_PER_PAGE, RelatedSearchMixin, format_date

from .base import (
    MEMBER_SEARCH_FIELDS,
    GatewayListFilter,
    ReadOnlyAdminMixin,
    link_to_member,
    link_to_membership,
)


class PaymentInline(admin.TabularInline):
    """The payments that settled an invoice, read-only."""

    model = Payment
    fields = ("received_at", "amount_usd", "method", "reference", "recorded_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("recorded_by")

    @admin.display(description=gettext_lazy("amount"))
    def amount_usd(self, payment):
        return format_usd(payment.amount)


class InvoiceItemInline(admin.TabularInline):
    """The one-off charges (room overage) an invoice bills, read-only."""

    model = InvoiceItem
    fk_name = "invoice"
    fields = ("description", "amount_usd", "reference", "gateway_reference")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("amount"))
    def amount_usd(self, item):
        return format_usd(item.amount)


@admin.register(InvoiceItem)
class InvoiceItemAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Charges on a membership's next invoice, written only by the billing services."""

    list_display = (
        "id",
        "created_at",
        "member",
        "description",
        "amount_usd",
        "status",
        "invoice",
        "gateway_reference",
    )
    list_display_links = ("id", "created_at")
    list_filter = ("status", GatewayListFilter)
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    search_fields = tuple(f"membership__member__{name}" for name in MEMBER_SEARCH_FIELDS) + (
        "reference",
        "gateway_reference",
    )
    list_select_related = ("membership__member", "invoice")

    @admin.display(description=gettext_lazy("member"), ordering="membership__member__last_name")
    def member(self, item):
        return link_to_member(item.membership.member)

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_usd(self, item):
        return format_usd(item.amount)


@admin.register(Invoice)
class InvoiceAdmin(RelatedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Invoices, written only by the billing services from gateway events and payments."""

    list_display = (
        "id",
        "member",
        "membership_link",
        "period",
        "amount_usd",
        "status",
        "kind",
        "gateway_reference",
    )
    list_display_links = ("id",)
    list_filter = ("status", GatewayListFilter, "kind")
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE
    search_fields = tuple(f"membership__member__{name}" for name in MEMBER_SEARCH_FIELDS) + (
        "gateway_reference",
    )
    list_select_related = ("membership__member", "membership__plan")
    inlines = (InvoiceItemInline, PaymentInline)

    @admin.display(description=gettext_lazy("member"), ordering="membership__member__last_name")
    def member(self, invoice):
        return link_to_member(invoice.membership.member)

    @admin.display(description=gettext_lazy("membership"), ordering="membership")
    def membership_link(self, invoice):
        return link_to_membership(invoice.membership)

    @admin.display(description=gettext_lazy("period"), ordering="period_start")
    def period(self, invoice):
        # period_end is the first day of the next period, so the last day billed is the day before.
        return _("%(start)s to %(end)s") % {
            "start": format_date(invoice.period_start),
            "end": format_date(selectors.last_day_before(invoice.period_end)),
        }

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_usd(self, invoice):
        return format_usd(invoice.amount)
