"""Helpers shared by the billing back-office pages: read-only pages, links, service forms."""

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.gateways.fake import FakeGateway
from billing.gateways.stripe_payloads import GATEWAY_NAME as STRIPE_GATEWAY_NAME
from members.admin.base import admin_change_url
from members.models import Member, Membership

MEMBER_SEARCH_FIELDS = ("first_name", "last_name", "email")


class GatewayListFilter(admin.SimpleListFilter):
    """Filter by payment gateway, offering the gateways that the portal has adapters for.

    Django's filter for a plain text field reads its choices with SELECT DISTINCT over the
    whole table, a full scan of the invoices or payments at every page view. The query
    parameter stays the one of that filter, so saved links keep working.
    """

    title = gettext_lazy("gateway")
    parameter_name = "gateway__exact"

    def lookups(self, request, model_admin):
        return [(FakeGateway.name, FakeGateway.name), (STRIPE_GATEWAY_NAME, STRIPE_GATEWAY_NAME)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(gateway=self.value())
        return queryset


class ReadOnlyAdminMixin:
    """A model page that lists and shows rows but never adds, edits or deletes them.

    `has_change_permission` without an object stays the model permission, because admin
    actions declared with `permissions=["change"]` check it.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)


def link_to_member(member: Member):
    return format_html('<a href="{}">{}</a>', admin_change_url(member), member.full_name)


def link_to_membership(membership: Membership):
    return format_html(
        '<a href="{}">{}</a>',
        admin_change_url(membership),
        _("Membership %(id)s (%(plan)s)") % {"id": membership.pk, "plan": membership.plan.name},
    )


def has_model_permission(request, model, action: str) -> bool:
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


class ServiceFormMixin:
    """Render a back-office form page that calls a service when the form is valid."""

    def render_service_form(self, request, *, form, title, intro, submit_label, extra=None):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "intro": intro,
            "submit_label": submit_label,
            "media": self.media + form.media,
            **(extra or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/billing/service_form.html", context)
