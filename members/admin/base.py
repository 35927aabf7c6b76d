"""Helpers shared by the back-office pages: per-row reports and the reason page."""

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.contrib import messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import (
    NotRelationField,
    get_fields_from_path,
    lookup_spawns_duplicates,
)
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, Q
from django.forms import Form
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext as _

from members.services import MembersError

# Rows a page of the busiest back-office lists shows (Django's default is 100). Django
# renders each cell through its display helpers, so a list's time grows with rows times
# columns: at 10,000 members a page of 100 memberships took about 130 ms of CPU, and a
# page of 50 about 70 ms (see BENCHMARKS.md). Staff find rows by search and filters.
LIST_PER_PAGE = 50

# Hidden field that marks a POST as the second step of an action that needs a reason.
REASON_STEP_FIELD = "_reason_step"


def format_date(value) -> str:
    return date_format(value, "DATE_FORMAT") if value else "—"


def admin_change_url(obj: Model) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def _is_field_path(model, path: str) -> bool:
    """Return whether `path` names a field through relations, with no lookup at its end."""
    try:
        get_fields_from_path(model, path)
    except (FieldDoesNotExist, NotRelationField):
        return False
    return True


class RelatedSearchMixin:
    """Match the search fields behind a relation in the related table, once per related row.

    Django's admin search joins the related tables and tests every field on every joined
    row, so a search of invoices by member name upper-cases and compares the member's name
    once per invoice (about 80,000 times at 10,000 members). Here the fields behind each
    relation, such as `membership__member__last_name`, are matched in the members table,
    and the list keeps the rows whose relation is among the matches. The results are the
    same as Django's: the search is split into words, with quoted phrases kept whole, and
    each word must match at least one field (case-insensitive `icontains`). Search fields
    with a prefix (`^`, `=`, `@`) or an explicit lookup get Django's own search.
    """

    def get_search_results(self, request, queryset, search_term):
        fields = self.get_search_fields(request)
        own_fields = []
        related_fields = defaultdict(list)
        for name in fields:
            prefix, _sep, field = name.rpartition("__")
            if name[0] in "^=@" or not _is_field_path(queryset.model, name):
                return super().get_search_results(request, queryset, search_term)
            if prefix:
                related_fields[prefix].append(field)
            else:
                own_fields.append(field)
        if not search_term or not related_fields:
            return super().get_search_results(request, queryset, search_term)

        opts = queryset.model._meta
        related_models = {
            prefix: get_fields_from_path(queryset.model, prefix)[-1].related_model
            for prefix in related_fields
        }
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            condition = Q()
            for field in own_fields:
                condition |= Q(**{f"{field}__icontains": word})
            for prefix, names in related_fields.items():
                match = Q()
                for field in names:
                    match |= Q(**{f"{field}__icontains": word})
                matching = related_models[prefix]._default_manager.filter(match).values("pk")
                condition |= Q(**{f"{prefix}__in": matching})
            queryset = queryset.filter(condition)
        may_have_duplicates = any(
            lookup_spawns_duplicates(opts, prefix) for prefix in related_fields
        )
        return queryset, may_have_duplicates


class PerRowReportMixin:
    """Run a service on each selected object and add one message per object.

    A `MembersError` becomes an error message for its row and the other rows go on,
    because every service call is a transaction of its own.
    """

    def report_each(
        self,
        request,
        objects: Iterable[Model],
        *,
        change: Callable[[Model], Model],
        describe: Callable[[Model], str],
        label: Callable[[Model], str],
    ) -> None:
        for obj in objects:
            try:
                result = change(obj)
            except MembersError as error:
                message = format_html(_("{object}: {error}"), object=label(obj), error=str(error))
                self.message_user(request, message, messages.ERROR)
                continue
            # Translators: {object} is a label such as "Membership 12 of Ana Rivera (Hot
            # Desk)"; {outcome} is a phrase with the context "outcome of an admin action",
            # such as "approved." or "now active.", which continues after the colon.
            message = format_html(
                _("{object}: {outcome}"), object=label(obj), outcome=describe(result)
            )
            self.message_user(request, message, messages.SUCCESS)

    def render_reason_page(
        self,
        request,
        *,
        objects: list[Model],
        form: Form,
        title: str,
        intro: str,
        submit_label: str,
        action_name: str = "",
        back_url: str = "",
    ) -> TemplateResponse:
        """Render the page that requests a reason before a decision is applied.

        With `action_name` the page posts the admin action back with the selected
        primary keys, to the changelist or to the change page it came from. Without it
        the page posts to its own URL.
        """
        change_form_action_field = f"{ActionLocation.CHANGE_FORM.value}-action"
        action_field_name = (
            change_form_action_field if change_form_action_field in request.POST else "action"
        )
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "objects": objects,
            "form": form,
            "intro": intro,
            "submit_label": submit_label,
            "action_name": action_name,
            "action_field_name": action_field_name,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "reason_step_field": REASON_STEP_FIELD,
            # The page came from a changelist or change page whose URL is this request's.
            "back_url": back_url or request.get_full_path(),
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/members/reason_form.html", context)


def bound_reason_form(request, form_class: type[Form]) -> Form:
    """Return `form_class` bound to the POST of the reason page, or unbound before it."""
    if request.method == "POST" and REASON_STEP_FIELD in request.POST:
        return form_class(request.POST)
    return form_class()


class ReadOnlyInlineMixin:
    """An inline that shows rows and links to them, but never adds, edits or deletes."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ActionsOnlyAdminMixin:
    """A model whose rows change only through actions that call services.

    There is no add or delete, and a row's page is view-only, so no form save can change
    its state. The model-level change permission (obj is None) still gates the actions.
    """

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)
