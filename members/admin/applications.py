"""Applications from the public form, and the staff decision on each."""

from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext
from django.views.decorators.http import require_POST

from members import services
from members.forms_admin import ApplicationAdminForm, RejectApplicationForm
from members.models import Membership, MembershipApplication

from .base import PerRowReportMixin, admin_change_url, bound_reason_form, format_date


@admin.register(MembershipApplication)
class MembershipApplicationAdmin(PerRowReportMixin, admin.ModelAdmin):
    """Applications from the public form, which staff approve or reject here.

    Adding is disabled because `submit_application` (behind the public form at /apply/)
    checks for duplicates and closed plans, and an admin form would skip those checks.
    Staff who take an application in person fill in the public form. A decided
    application is view-only, and an approved one cannot be deleted because its
    membership points back to it.
    """

    form = ApplicationAdminForm
    list_display = (
        "applicant_name",
        "email",
        "plan",
        "status",
        "created_at",
        "desired_start_date",
    )
    list_display_links = ("applicant_name",)
    list_filter = ("status", "plan", "created_at")
    search_fields = ("first_name", "last_name", "email", "company")
    list_select_related = ("plan",)
    actions = ("approve_selected", "reject_selected")
    readonly_fields = (
        "status",
        "decided_by",
        "decided_at",
        "decision_reason",
        "member",
        "membership_link",
        "language",
        "ip_address",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            gettext_lazy("Applicant"),
            {"fields": ("first_name", "last_name", "email", "phone", "company")},
        ),
        (
            gettext_lazy("Request"),
            {"fields": ("plan", "desired_start_date", "referral_source", "message")},
        ),
        (
            gettext_lazy("Decision"),
            {
                "fields": (
                    "status",
                    "decided_by",
                    "decided_at",
                    "decision_reason",
                    "member",
                    "membership_link",
                )
            },
        ),
        (
            gettext_lazy("Record"),
            {"fields": ("created_at", "updated_at", "language", "ip_address")},
        ),
    )

    @admin.display(description=gettext_lazy("name"), ordering="last_name")
    def applicant_name(self, application: MembershipApplication) -> str:
        return application.full_name

    @admin.display(description=gettext_lazy("membership"))
    def membership_link(self, application: MembershipApplication) -> str:
        try:
            membership = application.membership
        except Membership.DoesNotExist:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            admin_change_url(membership),
            _("Membership %(id)s") % {"id": membership.pk},
        )

    # Permissions -----------------------------------------------------------------

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != MembershipApplication.Status.SUBMITTED:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status == MembershipApplication.Status.APPROVED:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        # The bulk delete cannot skip approved applications row by row.
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Write only the fields the form changed, so that a save racing with a decision
        # never writes an old status, decider or member back over it.
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    # Labels and outcomes ---------------------------------------------------------

    @staticmethod
    def application_label(application: MembershipApplication) -> str:
        return _("Application %(id)s from %(name)s <%(email)s>") % {
            "id": application.pk,
            "name": application.full_name,
            "email": application.email,
        }

    @staticmethod
    def describe_approval(membership: Membership) -> SafeString:
        return format_html(
            # Translators: shown after "Application 7 from Ana Rivera <ana@example.com>: ".
            pgettext(
                "outcome of an admin action",
                'approved. <a href="{url}">Membership {id}</a> on {plan} is {state}. It '
                "starts on {start} and its commitment ends on {end}.",
            ),
            url=admin_change_url(membership),
            id=membership.pk,
            plan=membership.plan.name,
            state=membership.get_state_display(),
            start=format_date(membership.start_date),
            end=format_date(membership.commitment_end),
        )

    @staticmethod
    def describe_rejection(application: MembershipApplication) -> str:
        # Translators: shown after "Application 7 from Ana Rivera <ana@example.com>: ";
        # the application was rejected.
        return pgettext("outcome of an admin action", "rejected.")

    def approve_rows(self, request, applications: Iterable[MembershipApplication]) -> None:
        self.report_each(
            request,
            applications,
            change=lambda application: services.approve_application(
                application=application, actor=request.user
            ),
            describe=self.describe_approval,
            label=self.application_label,
        )

    def reject_rows(
        self, request, applications: Iterable[MembershipApplication], reason: str
    ) -> None:
        self.report_each(
            request,
            applications,
            change=lambda application: services.reject_application(
                application=application, actor=request.user, reason=reason
            ),
            describe=self.describe_rejection,
            label=self.application_label,
        )

    # Actions ---------------------------------------------------------------------

    @admin.action(description=gettext_lazy("Approve selected applications"), permissions=["change"])
    def approve_selected(self, request, queryset):
        self.approve_rows(request, queryset.order_by("pk"))

    @admin.action(description=gettext_lazy("Reject selected applications…"), permissions=["change"])
    def reject_selected(self, request, queryset):
        applications = queryset.order_by("pk")
        form = bound_reason_form(request, RejectApplicationForm)
        if form.is_bound and form.is_valid():
            self.reject_rows(request, applications, form.cleaned_data["reason"])
            return None
        return self.render_reason_page(
            request,
            objects=list(applications),
            form=form,
            title=_("Reject applications"),
            intro=_(
                "Each application below that is still submitted will be rejected with this "
                "reason. The others stay as they are and are reported as errors."
            ),
            submit_label=_("Reject"),
            action_name="reject_selected",
        )

    # Detail-page buttons ---------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/approve/",
                self.admin_site.admin_view(require_POST(self.approve_view)),
                name="{}_{}_approve".format(*info),
            ),
            path(
                "<path:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="{}_{}_reject".format(*info),
            ),
            *super().get_urls(),
        ]

    def _application_for_decision(self, request, object_id):
        """Return the application, or raise PermissionDenied without the change permission."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        return self.get_object(request, unquote(object_id))

    def approve_view(self, request, object_id):
        application = self._application_for_decision(request, object_id)
        if application is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        self.approve_rows(request, [application])
        return HttpResponseRedirect(admin_change_url(application))

    def reject_view(self, request, object_id):
        application = self._application_for_decision(request, object_id)
        if application is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if application.status != MembershipApplication.Status.SUBMITTED:
            self.message_user(
                request,
                _(
                    "Application %(id)s is already %(status)s. Only submitted applications "
                    "can be rejected."
                )
                % {"id": application.pk, "status": application.get_status_display()},
                messages.WARNING,
            )
            return HttpResponseRedirect(admin_change_url(application))

        form = RejectApplicationForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            self.reject_rows(request, [application], form.cleaned_data["reason"])
            return HttpResponseRedirect(admin_change_url(application))
        return self.render_reason_page(
            request,
            objects=[application],
            form=form,
            title=_("Reject application"),
            intro=_("The application below will be rejected with this reason."),
            submit_label=_("Reject"),
            back_url=admin_change_url(application),
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        show_buttons = (
            obj is not None
            and obj.status == MembershipApplication.Status.SUBMITTED
            and self.has_change_permission(request)
        )
        if show_buttons:
            info = self.opts.app_label, self.opts.model_name
            context["decision_urls"] = {
                "approve": reverse("admin:{}_{}_approve".format(*info), args=[obj.pk]),
                "reject": reverse("admin:{}_{}_reject".format(*info), args=[obj.pk]),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)
