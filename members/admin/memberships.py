"""Memberships, whose state changes only through actions that call the services."""

from django.contrib import admin
from django.contrib.admin import ActionLocation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from billing import services as billing_services
from members import services
from members.forms_admin import CancelImmediatelyForm
from members.models import Membership, MembershipEvent

from .base import (
    LIST_PER_PAGE,
    ActionsOnlyAdminMixin,
    PerRowReportMixin,
    ReadOnlyInlineMixin,
    RelatedSearchMixin,
    bound_reason_form,
    format_date,
)

BOTH_LOCATIONS = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]


class MembershipEventInline(ReadOnlyInlineMixin, admin.TabularInline):
    """The membership's history of state changes, oldest first, read-only."""

    model = MembershipEvent
    fields = ("created_at", "from_state", "to_state", "actor", "cause_label", "reason_label")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=gettext_lazy("cause"))
    def cause_label(self, event: MembershipEvent) -> str:
        return event.get_cause_display()

    @admin.display(description=gettext_lazy("reason"))
    def reason_label(self, event: MembershipEvent) -> str:
        return event.get_reason_display()


def _membership_action(description: str, description_plural: str):
    """Declare a membership action for the changelist and for the membership's page."""
    return admin.action(
        description=description,
        description_plural=description_plural,
        permissions=["change"],
        location=BOTH_LOCATIONS,
    )


@admin.register(Membership)
class MembershipAdmin(
    RelatedSearchMixin, ActionsOnlyAdminMixin, PerRowReportMixin, admin.ModelAdmin
):
    """Memberships, changed only through the actions, which call the lifecycle services.

    Memberships are created by approving an application, so there is no add form, and
    they cannot be deleted here because deleting one would erase its history. The page of a
    membership is view-only, and its actions menu runs the same actions as the list.
    """

    list_display = (
        "id",
        "member",
        "plan",
        "state",
        "start_date",
        "commitment_end",
        "monthly_price",
        "included_credit",
        "cancel_at",
    )
    list_display_links = ("id", "member")
    list_filter = ("state", "plan")
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE
    search_fields = ("member__first_name", "member__last_name", "member__email")
    list_select_related = ("member", "plan")
    inlines = (MembershipEventInline,)
    fieldsets = (
        (None, {"fields": ("member", "plan", "application", "state", "state_changed_at")}),
        (
            gettext_lazy("Dates"),
            {"fields": ("start_date", "commitment_end", "cancel_at", "end_date")},
        ),
        (
            gettext_lazy("Signed terms"),
            {"fields": ("monthly_price", "included_credit", "contract_months")},
        ),
        (gettext_lazy("Record"), {"fields": ("odoo_ref", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "member",
        "plan",
        "application",
        "state",
        "state_changed_at",
        "start_date",
        "commitment_end",
        "cancel_at",
        "end_date",
        "monthly_price",
        "included_credit",
        "contract_months",
        "odoo_ref",
        "created_at",
        "updated_at",
    )
    actions = (
        "activate_selected",
        "mark_past_due_selected",
        "suspend_selected",
        "reinstate_selected",
        "cancel_selected",
        "cancel_immediately_selected",
        "withdraw_cancellation_selected",
        "end_selected",
    )

    # Labels and outcomes ---------------------------------------------------------

    @staticmethod
    def membership_label(membership: Membership) -> str:
        return _("Membership %(id)s of %(member)s (%(plan)s)") % {
            "id": membership.pk,
            "member": membership.member,
            "plan": membership.plan.name,
        }

    @staticmethod
    def describe_state(membership: Membership) -> str:
        # Translators: shown after "Membership 12 of Ana Rivera (Hot Desk): "; %(state)s
        # is the membership's new state, such as "active" or "suspended".
        return pgettext("outcome of an admin action", "now %(state)s.") % {
            "state": membership.get_state_display()
        }

    @staticmethod
    def describe_cancellation(membership: Membership) -> str:
        if membership.state == Membership.State.CANCELLED:
            # Translators: shown after "Membership 12 of Ana Rivera (Hot Desk): ".
            return pgettext(
                "outcome of an admin action", "cancelled, with %(date)s as its end date."
            ) % {"date": format_date(membership.end_date)}
        # Translators: shown after "Membership 12 of Ana Rivera (Hot Desk): ".
        return pgettext(
            "outcome of an admin action",
            "cancellation scheduled for %(date)s, its commitment end, as the plan's policy "
            "requires. It stays %(state)s until then.",
        ) % {"date": format_date(membership.cancel_at), "state": membership.get_state_display()}

    @staticmethod
    def describe_withdrawal(membership: Membership) -> str:
        # Translators: shown after "Membership 12 of Ana Rivera (Hot Desk): ".
        return pgettext(
            "outcome of an admin action", "scheduled cancellation withdrawn. It stays %(state)s."
        ) % {"state": membership.get_state_display()}

    @staticmethod
    def describe_end(membership: Membership) -> str:
        # Translators: shown after "Membership 12 of Ana Rivera (Hot Desk): "; the
        # membership ended on that date.
        return pgettext("outcome of an admin action", "ended on %(date)s.") % {
            "date": format_date(membership.end_date)
        }

    def run_service(self, request, queryset, service, describe, **arguments) -> None:
        """Call `service(membership=…, actor=request.user, **arguments)` on each row."""
        self.report_each(
            request,
            queryset.select_related("member", "plan").order_by("pk"),
            change=lambda membership: service(
                membership=membership, actor=request.user, **arguments
            ),
            describe=describe,
            label=self.membership_label,
        )

    # Actions ---------------------------------------------------------------------

    @_membership_action(
        gettext_lazy("Activate (first payment received)"),
        gettext_lazy("Activate selected memberships (first payment received)"),
    )
    def activate_selected(self, request, queryset):
        self.run_service(request, queryset, services.activate_membership, self.describe_state)

    @_membership_action(
        gettext_lazy("Mark payment overdue"),
        gettext_lazy("Mark selected memberships as payment overdue"),
    )
    def mark_past_due_selected(self, request, queryset):
        self.run_service(request, queryset, services.mark_membership_past_due, self.describe_state)

    @_membership_action(gettext_lazy("Suspend"), gettext_lazy("Suspend selected memberships"))
    def suspend_selected(self, request, queryset):
        self.run_service(request, queryset, services.suspend_membership, self.describe_state)

    @_membership_action(
        gettext_lazy("Reinstate (payment recorded)"),
        gettext_lazy("Reinstate selected memberships (payment recorded)"),
    )
    def reinstate_selected(self, request, queryset):
        self.run_service(request, queryset, services.reinstate_membership, self.describe_state)

    @_membership_action(
        gettext_lazy("Cancel, following the plan's policy"),
        gettext_lazy("Cancel selected memberships, following the plan's policy"),
    )
    def cancel_selected(self, request, queryset):
        self.run_service(
            request,
            queryset,
            billing_services.cancel_membership_with_gateway,
            self.describe_cancellation,
        )

    @_membership_action(
        gettext_lazy("Cancel now, overriding the plan's policy…"),
        gettext_lazy("Cancel selected memberships now, overriding the plan's policy…"),
    )
    def cancel_immediately_selected(self, request, queryset):
        form = bound_reason_form(request, CancelImmediatelyForm)
        if form.is_bound and form.is_valid():
            self.run_service(
                request,
                queryset,
                billing_services.cancel_membership_with_gateway,
                self.describe_cancellation,
                immediately=True,
                reason=form.cleaned_data["reason"],
            )
            return None
        return self.render_reason_page(
            request,
            objects=list(queryset.select_related("member", "plan").order_by("pk")),
            form=form,
            title=_("Cancel memberships now"),
            intro=_(
                "Each membership below will be cancelled today, even when its plan defers "
                "cancellations to the commitment end. Memberships that are already cancelled "
                "or ended stay as they are and are reported as errors."
            ),
            submit_label=_("Cancel now"),
            action_name="cancel_immediately_selected",
        )

    @_membership_action(
        gettext_lazy("Withdraw the scheduled cancellation"),
        gettext_lazy("Withdraw the scheduled cancellation of selected memberships"),
    )
    def withdraw_cancellation_selected(self, request, queryset):
        self.run_service(
            request, queryset, services.withdraw_cancellation, self.describe_withdrawal
        )

    @_membership_action(
        gettext_lazy("End today (term over, no renewal)"),
        gettext_lazy("End selected memberships today (term over, no renewal)"),
    )
    def end_selected(self, request, queryset):
        self.run_service(request, queryset, services.end_membership, self.describe_end)
