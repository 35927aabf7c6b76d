"""Members, with their current membership computed for the whole list in one query."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from members import selectors, services
from members.models import Member, Membership, Plan

from .base import LIST_PER_PAGE, ReadOnlyInlineMixin, admin_change_url


class CurrentPlanFilter(admin.SimpleListFilter):
    title = gettext_lazy("current plan")
    parameter_name = "current_plan"

    def lookups(self, request, model_admin):
        return [(str(plan_id), name) for plan_id, name in Plan.objects.values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            plan_id = int(self.value())
        except ValueError as error:
            # The changelist turns this into its "invalid filter" redirect (?e=1).
            raise IncorrectLookupParameters(error) from error
        return selectors.filter_members_by_current_plan(queryset, plan_id)


class CurrentMembershipStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("current membership")
    parameter_name = "current_state"

    def lookups(self, request, model_admin):
        return [
            *((state.value, state.label) for state in Membership.CURRENT_STATES),
            (selectors.NO_CURRENT_MEMBERSHIP, gettext_lazy("No current membership")),
        ]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        try:
            return selectors.filter_members_by_current_state(queryset, self.value())
        except ValueError as error:
            raise IncorrectLookupParameters(error) from error


class MembershipInline(ReadOnlyInlineMixin, admin.TabularInline):
    """The member's memberships, read-only, each with a link to its page and actions."""

    model = Membership
    fields = (
        "plan",
        "state",
        "start_date",
        "commitment_end",
        "cancel_at",
        "end_date",
        "monthly_price",
        "included_credit",
    )
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = (
        "member_name",
        "email",
        "company",
        "current_plan",
        "current_state",
        "current_start_date",
        "current_commitment_end",
        "current_key",
    )
    list_display_links = ("member_name",)
    list_filter = (CurrentPlanFilter, CurrentMembershipStateFilter)
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE
    search_fields = ("first_name", "last_name", "email", "company")
    # The login follows the member through the services (approval, email changes), so
    # staff cannot point a member at another person's login here.
    readonly_fields = ("user", "member_since", "odoo_partner_id", "created_at", "updated_at")
    inlines = (MembershipInline,)
    fieldsets = (
        (None, {"fields": ("first_name", "last_name", "email", "phone", "company")}),
        (gettext_lazy("Profile"), {"fields": ("bio", "directory_opt_in", "language")}),
        (gettext_lazy("Staff only"), {"fields": ("staff_notes",)}),
        (
            gettext_lazy("Account"),
            {"fields": ("user", "member_since", "odoo_partner_id", "created_at", "updated_at")},
        ),
    )

    def get_queryset(self, request):
        queryset = selectors.with_current_membership(super().get_queryset(request))
        return selectors.with_current_keys(queryset)

    def save_model(self, request, obj, form, change):
        new_email = form.cleaned_data.get("email")
        if change and "email" in form.changed_data:
            # The login's address moves with the member's email, through the service.
            obj.email = Member.objects.values_list("email", flat=True).get(pk=obj.pk)
        super().save_model(request, obj, form, change)
        if change and "email" in form.changed_data:
            try:
                services.change_member_email(
                    member=obj, email=new_email, actor=request.user, sync_login=True
                )
            except services.MembersError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                obj.refresh_from_db(fields=["email"])

    @admin.display(description=gettext_lazy("name"), ordering="last_name")
    def member_name(self, member: Member) -> str:
        return member.full_name

    @admin.display(description=gettext_lazy("current plan"))
    def current_plan(self, member: Member) -> str:
        membership = selectors.current_membership(member)
        if membership is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', admin_change_url(membership), membership.plan.name
        )

    @admin.display(description=gettext_lazy("state"))
    def current_state(self, member: Member) -> str:
        membership = selectors.current_membership(member)
        return membership.get_state_display() if membership else _("No current membership")

    @admin.display(description=gettext_lazy("start date"))
    def current_start_date(self, member: Member):
        membership = selectors.current_membership(member)
        return membership.start_date if membership else None

    @admin.display(description=gettext_lazy("commitment end"))
    def current_commitment_end(self, member: Member):
        membership = selectors.current_membership(member)
        return membership.commitment_end if membership else None

    @admin.display(description=gettext_lazy("access key"))
    def current_key(self, member: Member) -> str:
        keys = getattr(member, selectors.CURRENT_KEYS_ATTR)
        if not keys:
            return "—"
        return format_html_join(
            ", ",
            "…{} ({})",
            ((key.last_digits, key.get_status_display()) for key in keys),
        )
