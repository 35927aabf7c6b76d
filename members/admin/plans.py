"""Plans: the offers members sign up for."""

from django.contrib import admin
from django.utils.translation import gettext_lazy

from members.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "monthly_price",
        "contract_months",
        "included_credit",
        "renewal_policy",
        "cancellation_policy",
        "is_public",
        "is_active",
        "sort_order",
    )
    list_filter = ("is_public", "is_active")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("odoo_product_id", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "summary", "description", "sort_order")}),
        (
            gettext_lazy("Spanish"),
            {"fields": ("summary_es", "description_es")},
        ),
        (
            gettext_lazy("Terms"),
            {
                "description": gettext_lazy(
                    "Changes apply to memberships approved from now on. Existing memberships "
                    "keep the price, credit and contract length they were approved with."
                ),
                "fields": (
                    "monthly_price",
                    "billing_interval",
                    "contract_months",
                    "included_credit",
                    "credit_rolls_over",
                    "allows_overage",
                    "renewal_policy",
                    "cancellation_policy",
                    "stripe_price_id",
                ),
            },
        ),
        (gettext_lazy("Availability"), {"fields": ("is_public", "is_active")}),
        (gettext_lazy("Record"), {"fields": ("odoo_product_id", "created_at", "updated_at")}),
    )
