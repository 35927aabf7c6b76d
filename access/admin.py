"""Back office for door access keys: the key list, "Issue key", and the key actions.

No page here changes a key itself. "Issue key" and every action call `access.services`
with the staff user as the actor, and report the outcome of each selected key as its own
message. A key's status and sync fields are read-only, and keys are never deleted because
their history would go with them.
"""

import logging
from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.admin.base import (
    MEMBER_SEARCH_FIELDS,
    ServiceFormMixin,
    has_model_permission,
    link_to_member,
)
from members.admin.base import (
    LIST_PER_PAGE,
    ActionsOnlyAdminMixin,
    PerRowReportMixin,
    ReadOnlyInlineMixin,
    RelatedSearchMixin,
    admin_change_url,
    bound_reason_form,
)

from . import selectors, services
from .backends.base import AccessBackendError
from .forms import IssueKeyForm, LostKeyForm, SuspendKeyForm
from .models import AccessEvent, AccessKey

logger = logging.getLogger(__name__)

BOTH_LOCATIONS = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]

# Characters of the last sync error shown in the list. The key's page shows all of it.
ERROR_PREVIEW_LENGTH = 60


class AccessEventInline(ReadOnlyInlineMixin, admin.TabularInline):
    """The key's history of changes, oldest first, read-only."""

    model = AccessEvent
    fields = (
        "created_at",
        "cause",
        "actor",
        "from_status",
        "to_status",
        "from_wanted",
        "to_wanted",
        "reason",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


def _key_action(description: str, description_plural: str):
    """Declare a key action for the changelist and for the key's page."""
    return admin.action(
        description=description,
        description_plural=description_plural,
        permissions=["change"],
        location=BOTH_LOCATIONS,
    )


@admin.register(AccessKey)
class AccessKeyAdmin(
    RelatedSearchMixin,
    ActionsOnlyAdminMixin,
    ServiceFormMixin,
    PerRowReportMixin,
    admin.ModelAdmin,
):
    """Access keys, issued through "Issue key" and changed only through the actions.

    The add form is disabled because `issue_key` checks the member's membership and the
    number, records the event and queues the sync with the door system. The page of a key is
    view-only, and its actions menu runs the same actions as the list.
    """

    list_display = (
        "number",
        "member_link",
        "kind",
        "status",
        "staff_hold",
        "wanted_state",
        "sync_status",
        "short_error",
        "issued_at",
    )
    list_display_links = ("number",)
    list_filter = ("status", "sync_status", "kind", "staff_hold")
    # A filtered list shows "Show all" instead of counting every row of the table.
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE
    search_fields = ("number", *(f"member__{name}" for name in MEMBER_SEARCH_FIELDS))
    list_select_related = ("member",)
    inlines = (AccessEventInline,)
    fieldsets = (
        (None, {"fields": ("member", "number", "kind", "status", "issued_at", "returned_at")}),
        (gettext_lazy("Staff suspension"), {"fields": ("staff_hold", "staff_hold_reason")}),
        (
            gettext_lazy("Door system"),
            {
                "fields": (
                    "wanted_state",
                    "backend_state",
                    "sync_status",
                    "sync_attempts",
                    "last_error",
                    "last_synced_at",
                )
            },
        ),
        (gettext_lazy("Record"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = tuple(name for _title, options in fieldsets for name in options["fields"])
    actions = (
        "mark_lost_selected",
        "mark_returned_selected",
        "suspend_selected",
        "restore_selected",
        "sync_selected",
    )

    # Permissions -----------------------------------------------------------------

    def has_issue_permission(self, request) -> bool:
        """Return whether the user may issue keys (the "add access key" permission)."""
        return has_model_permission(request, AccessKey, "add")

    def get_queryset(self, request):
        return selectors.admin_keys(super().get_queryset(request))

    # Columns ---------------------------------------------------------------------

    @admin.display(description=gettext_lazy("member"), ordering="member__last_name")
    def member_link(self, key: AccessKey):
        return link_to_member(key.member)

    @admin.display(description=gettext_lazy("last sync error"))
    def short_error(self, key: AccessKey) -> str:
        if len(key.last_error) <= ERROR_PREVIEW_LENGTH:
            return key.last_error
        return key.last_error[: ERROR_PREVIEW_LENGTH - 1] + "…"

    # Labels and outcomes ---------------------------------------------------------

    @staticmethod
    def key_label(key: AccessKey) -> str:
        return _("%(key)s of %(member)s") % {"key": key, "member": key.member.full_name}

    @staticmethod
    def describe_status(key: AccessKey) -> str:
        return _("now %(status)s. Wanted state at the door: %(wanted)s.") % {
            "status": key.get_status_display(),
            "wanted": key.get_wanted_state_display(),
        }

    @staticmethod
    def describe_sync(key: AccessKey) -> str:
        if key.sync_status == AccessKey.Sync.IN_SYNC:
            return _("in sync with the door system (%(state)s).") % {
                "state": key.get_backend_state_display()
            }
        return _("sync %(sync)s: %(error)s") % {
            "sync": key.get_sync_status_display(),
            "error": key.last_error or "—",
        }

    def report_each(
        self,
        request,
        objects: Iterable[AccessKey],
        *,
        change: Callable[[AccessKey], AccessKey],
        describe: Callable[[AccessKey], str],
        label: Callable[[AccessKey], str],
    ) -> None:
        """Run `change` on each key and add one message per key.

        An AccessError, or an AccessBackendError from "Sync now", becomes the error
        message of its key and the other keys go on, because each service call is a
        transaction of its own.
        """
        for key in objects:
            try:
                result = change(key)
            except (services.AccessError, AccessBackendError) as error:
                logger.info(
                    "Access key %s not changed by user %s: %s", key.pk, request.user.pk, error
                )
                message = format_html(_("{object}: {error}"), object=label(key), error=str(error))
                self.message_user(request, message, messages.ERROR)
                continue
            message = format_html(
                _("{object}: {outcome}"), object=label(key), outcome=describe(result)
            )
            self.message_user(request, message, messages.SUCCESS)

    def run_service(self, request, queryset, service, describe, **arguments) -> None:
        """Call `service(key=…, actor=request.user, **arguments)` on each selected key."""
        self.report_each(
            request,
            queryset.select_related("member").order_by("pk"),
            change=lambda key: service(key=key, actor=request.user, **arguments),
            describe=describe,
            label=self.key_label,
        )

    # Actions ---------------------------------------------------------------------

    @_key_action(gettext_lazy("Mark lost…"), gettext_lazy("Mark selected keys lost…"))
    def mark_lost_selected(self, request, queryset):
        form = bound_reason_form(request, LostKeyForm)
        if form.is_bound and form.is_valid():
            self.run_service(
                request,
                queryset,
                services.mark_key_lost,
                self.describe_status,
                reason=form.cleaned_data["reason"],
            )
            return None
        return self.render_reason_page(
            request,
            objects=list(queryset.select_related("member").order_by("pk")),
            form=form,
            title=_("Mark keys lost"),
            intro=_(
                "Each key below will be marked lost and removed from the doors. The member "
                "can then be issued a new key."
            ),
            submit_label=_("Mark lost"),
            action_name="mark_lost_selected",
        )

    @_key_action(gettext_lazy("Mark returned"), gettext_lazy("Mark selected keys returned"))
    def mark_returned_selected(self, request, queryset):
        self.run_service(request, queryset, services.mark_key_returned, self.describe_status)

    @_key_action(gettext_lazy("Suspend…"), gettext_lazy("Suspend selected keys…"))
    def suspend_selected(self, request, queryset):
        form = bound_reason_form(request, SuspendKeyForm)
        if form.is_bound and form.is_valid():
            self.run_service(
                request,
                queryset,
                services.suspend_key,
                self.describe_status,
                reason=form.cleaned_data["reason"],
            )
            return None
        return self.render_reason_page(
            request,
            objects=list(queryset.select_related("member").order_by("pk")),
            form=form,
            title=_("Suspend keys"),
            intro=_(
                "Each key below will stop opening the doors and stay suspended, whatever the "
                "member pays, until staff restore it."
            ),
            submit_label=_("Suspend"),
            action_name="suspend_selected",
        )

    @_key_action(
        gettext_lazy("Lift the staff suspension"),
        gettext_lazy("Lift the staff suspension of selected keys"),
    )
    def restore_selected(self, request, queryset):
        self.run_service(request, queryset, services.restore_key, self.describe_status)

    @_key_action(
        gettext_lazy("Sync with the door system now"),
        gettext_lazy("Sync selected keys with the door system now"),
    )
    def sync_selected(self, request, queryset):
        # A backend error is reported on its row. `reconcile_key` has already stored it on
        # the key as the last sync error, and the scheduled sync retries the key.
        self.report_each(
            request,
            queryset.select_related("member").order_by("pk"),
            change=lambda key: services.reconcile_key(key=key),
            describe=self.describe_sync,
            label=self.key_label,
        )

    # Issue key -------------------------------------------------------------------

    def get_urls(self):
        issue = path(
            "issue/",
            self.admin_site.admin_view(self.issue_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_issue",
        )
        return [issue, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "can_issue": self.has_issue_permission(request),
            # The list filtered to one member links to the form with that member chosen.
            "issue_member": request.GET.get("member__id__exact", ""),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def issue_view(self, request):
        """Show the issue-key form, and issue the key when it is posted."""
        if not self.has_issue_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = IssueKeyForm(request.POST)
            if form.is_valid():
                response = self._issue(request, form)
                if response is not None:
                    return response
        else:
            form = IssueKeyForm(initial={"member": request.GET.get("member")})
        return self.render_service_form(
            request,
            form=form,
            title=_("Issue key"),
            intro=_(
                "The key opens the doors while the member's membership is active or within "
                "its grace period. Only members with a current membership can get a key, and "
                "a number can be in use by one key at a time until that key is returned."
            ),
            submit_label=_("Issue key"),
        )

    def _issue(self, request, form):
        """Call the service; return a redirect, or None after adding its error to the form."""
        data = form.cleaned_data
        member = data["member"]
        try:
            key = services.issue_key(
                member=member, number=data["number"], kind=data["kind"], actor=request.user
            )
        except services.AccessError as error:
            logger.info(
                "Key not issued to member %s by user %s: %s", member.pk, request.user.pk, error
            )
            form.add_error(None, str(error))
            return None

        self.message_user(
            request,
            format_html(
                _('<a href="{url}">{key}</a> issued to {member}. It is {status}.'),
                url=admin_change_url(key),
                key=str(key),
                member=member.full_name,
                status=key.get_status_display(),
            ),
            messages.SUCCESS,
        )
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return HttpResponseRedirect(f"{changelist}?member__id__exact={member.pk}")
