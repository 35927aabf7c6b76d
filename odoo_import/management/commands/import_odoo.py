"""`manage.py import_odoo`: bring members, memberships, plans and keys over from Odoo."""

import argparse
import logging
import os
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from tqdm import tqdm

from access.models import AccessKey
from cpr_portal.messages import shown
from cpr_portal.operator_language import OperatorLanguageMixin
from members.models import Member
from odoo_import.records import ENTITIES, VERBS, ImportReport, Outcome
from odoo_import.services import ImportOptions, run_import
from odoo_import.sources import CsvSource, CustomFields, OdooSourceError, XmlRpcSource

logger = logging.getLogger("odoo_import")

# Exit status when the import finished but reported conflicts; 1 is any other error.
CONFLICTS_EXIT_STATUS = 2

VERB_LABELS = {
    "created": pgettext_lazy("Odoo import action", "create"),
    "updated": pgettext_lazy("Odoo import action", "update"),
    "unchanged": pgettext_lazy("Odoo import action", "same"),
    "skipped": pgettext_lazy("Odoo import action", "skip"),
    "conflict": pgettext_lazy("Odoo import action", "CONFLICT"),
}
# Column headings of the summary table, one per verb in VERBS.
VERB_HEADINGS = {
    "created": pgettext_lazy("Odoo import summary column", "created"),
    "updated": pgettext_lazy("Odoo import summary column", "updated"),
    "unchanged": pgettext_lazy("Odoo import summary column", "unchanged"),
    "skipped": pgettext_lazy("Odoo import summary column", "skipped"),
    "conflict": pgettext_lazy("Odoo import summary column", "conflict"),
}
ENTITY_LABELS = {
    "plan": pgettext_lazy("Odoo import summary row", "plans"),
    "member": pgettext_lazy("Odoo import summary row", "members"),
    "membership": pgettext_lazy("Odoo import summary row", "memberships"),
    "key": pgettext_lazy("Odoo import summary row", "access keys"),
}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            _("%(value)r is not a whole number of at least 1") % {"value": text}
        )
    return value


class Command(OperatorLanguageMixin, BaseCommand):
    help = gettext_lazy(
        "Import members, memberships, plans and access keys from Odoo, over its XML-RPC API "
        "(ODOO_URL, ODOO_DB, ODOO_USERNAME, ODOO_PASSWORD) or from CSV exports (--csv-dir). "
        "Safe to run again: it updates what changed and creates nothing twice. Exits with "
        "status 2 when it reported conflicts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_argument_group(
            _("source"),
            _(
                "Read a live Odoo over XML-RPC (the default), or CSV files exported from Odoo. "
                "The password or API key is read only from the ODOO_PASSWORD environment variable, "
                "so that it is not part of the command line; set it with `read -rs ODOO_PASSWORD "
                "&& export ODOO_PASSWORD` to keep it out of the shell history too."
            ),
        )
        source.add_argument(
            "--url",
            help=_("Address of the Odoo site, such as https://odoo.example.com (ODOO_URL)."),
        )
        source.add_argument("--db", help=_("Odoo database name (ODOO_DB)."))
        source.add_argument(
            "--username", help=_("Odoo login of the importing user (ODOO_USERNAME).")
        )
        source.add_argument(
            "--csv-dir",
            help=_(
                "Folder with contacts.csv, membership_lines.csv and products.csv exported "
                "from Odoo; reads the files instead of connecting to Odoo."
            ),
        )
        source.add_argument(
            "--timeout",
            type=positive_int,
            default=60,
            help=_("Seconds one XML-RPC call may take before it fails (default 60)."),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Print what would be created, updated and skipped, and write nothing."),
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=200,
            help=_(
                "Records read per XML-RPC call, and partners written per committed "
                "transaction (default 200)."
            ),
        )
        parser.add_argument(
            "--field-membership-type",
            default="x_membership_type",
            help=_("res.partner field with the membership type, a plan name (default %(name)s).")
            % {"name": "x_membership_type"},
        )
        parser.add_argument(
            "--field-start-date",
            default="x_start_date",
            help=_("res.partner field with the date the person became a member (default %(name)s).")
            % {"name": "x_start_date"},
        )
        parser.add_argument(
            "--field-access-key",
            default="x_access_key",
            help=_("res.partner field with the number of the member's door key (default %(name)s).")
            % {"name": "x_access_key"},
        )
        parser.add_argument(
            "--key-kind",
            choices=AccessKey.Kind.values,
            default=AccessKey.Kind.FOB,
            help=_("Kind of the imported door keys (default fob)."),
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        self.dry_run = options["dry_run"]
        self.bar = None
        source = self._source(options)
        custom = CustomFields(
            membership_type=options["field_membership_type"],
            start_date=options["field_start_date"],
            access_key=options["field_access_key"],
        )

        self._info(_("Reading %(source)s…") % {"source": shown(source.describe())})
        try:
            data = source.fetch(
                custom,
                progress=self._fetch_progress,
                known_partner_ids=list(
                    Member.objects.exclude(odoo_partner_id=None).values_list(
                        "odoo_partner_id", flat=True
                    )
                ),
            )
        except OdooSourceError as error:
            raise CommandError(error.translated()) from None
        finally:
            self._close_bar()
        counts = {
            "products": ngettext(
                "%(count)d membership product", "%(count)d membership products", len(data.products)
            )
            % {"count": len(data.products)},
            "contacts": ngettext("%(count)d contact", "%(count)d contacts", len(data.partners))
            % {"count": len(data.partners)},
            "lines": ngettext(
                "%(count)d membership line", "%(count)d membership lines", len(data.lines)
            )
            % {"count": len(data.lines)},
        }
        self._info(_("Read %(products)s, %(contacts)s and %(lines)s.") % counts)
        for warning in data.warnings:
            self.stderr.write(
                self.style.WARNING(_("Warning: %(warning)s") % {"warning": shown(warning)})
            )
        if self.dry_run:
            self._info(_("Dry run: every change below is rolled back at the end."))

        report = ImportReport(listener=self._print_outcome)
        self.bar = self._new_bar(total=len(data.partners), unit=_("contacts"), desc=_("Importing"))
        try:
            run_import(
                data=data,
                options=ImportOptions(
                    dry_run=self.dry_run,
                    batch_size=options["batch_size"],
                    key_kind=options["key_kind"],
                ),
                report=report,
                on_batch=self.bar.update if self.bar else None,
            )
        finally:
            self._close_bar()

        self._print_summary(report)
        conflicts = len(report.conflicts)
        if conflicts:
            if self.dry_run:
                message = ngettext(
                    "%(count)d conflict reported above; correct it in Odoo (or the CSV files) "
                    "and run the import again. Everything else would be imported.",
                    "%(count)d conflicts reported above; correct them in Odoo (or the CSV "
                    "files) and run the import again. Everything else would be imported.",
                    conflicts,
                )
            else:
                message = ngettext(
                    "%(count)d conflict reported above; correct it in Odoo (or the CSV files) "
                    "and run the import again. Everything else was imported.",
                    "%(count)d conflicts reported above; correct them in Odoo (or the CSV "
                    "files) and run the import again. Everything else was imported.",
                    conflicts,
                )
            raise CommandError(message % {"count": conflicts}, returncode=CONFLICTS_EXIT_STATUS)

    # Source ----------------------------------------------------------------------------

    def _source(self, options):
        if options["csv_dir"]:
            if options["url"]:
                raise CommandError(_("Give either --csv-dir or --url, not both."))
            try:
                return CsvSource(options["csv_dir"])
            except OdooSourceError as error:
                raise CommandError(error.translated()) from None

        settings = {
            "url": (options["url"] or os.environ.get("ODOO_URL", ""), "--url", "ODOO_URL"),
            "database": (options["db"] or os.environ.get("ODOO_DB", ""), "--db", "ODOO_DB"),
            "username": (
                options["username"] or os.environ.get("ODOO_USERNAME", ""),
                "--username",
                "ODOO_USERNAME",
            ),
            "password": (os.environ.get("ODOO_PASSWORD", ""), None, "ODOO_PASSWORD"),
        }
        missing = [
            _("%(variable)s (or %(option)s)") % {"variable": variable, "option": flag}
            if flag
            else variable
            for value, flag, variable in settings.values()
            if not value.strip()
        ]
        if missing:
            raise CommandError(
                _(
                    "Set %(variables)s to read from Odoo, or give --csv-dir to read CSV "
                    "exports instead."
                )
                % {"variables": ", ".join(missing)}
            )
        try:
            return XmlRpcSource(
                url=settings["url"][0],
                database=settings["database"][0].strip(),
                username=settings["username"][0].strip(),
                password=settings["password"][0],
                page_size=options["batch_size"],
                timeout=options["timeout"],
            )
        except OdooSourceError as error:
            raise CommandError(error.translated()) from None

    # Output ----------------------------------------------------------------------------

    def _info(self, message: str) -> None:
        if self.verbosity >= 1:
            self._write(message)

    def _write(self, message: str, style=None) -> None:
        if style:
            message = style(message)
        if self.bar is not None:
            self.bar.write(message, file=self.stdout._out)
        else:
            self.stdout.write(message)

    def _new_bar(self, *, total: int, unit: str, desc: str):
        """Return a progress bar on standard error, or None when it is not a terminal."""
        if self.verbosity < 1 or not sys.stderr.isatty():
            return None
        return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _fetch_progress(self, model: str, done: int, total: int) -> None:
        description = _("Reading %(model)s") % {"model": model}
        if self.bar is not None and self.bar.desc != description:
            self._close_bar()
        if self.bar is None:
            self.bar = self._new_bar(total=total, unit=_("records"), desc=description)
            if self.bar is None:
                return
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def _print_outcome(self, outcome: Outcome) -> None:
        """Print an outcome: conflicts and skips always, changes in a dry run or with -v 2."""
        if outcome.verb == "conflict":
            level = 0
        elif outcome.verb == "skipped" or (self.dry_run and outcome.verb != "unchanged"):
            level = 1
        elif outcome.verb == "unchanged":
            level = 3 if not self.dry_run else 2
        else:
            level = 2
        if self.verbosity < level:
            return
        style = self.style.ERROR if outcome.verb == "conflict" else None
        label = str(VERB_LABELS[outcome.verb])
        self._write(
            f"{label:<8} {outcome.entity:<10} {outcome.ref:<14} {shown(outcome.detail)}",
            style=style,
        )

    def _print_summary(self, report: ImportReport) -> None:
        title = _("Dry run summary (nothing was written)") if self.dry_run else _("Import summary")
        headings = [str(VERB_HEADINGS[verb]) for verb in VERBS]
        labels = [str(ENTITY_LABELS[entity]) for entity in ENTITIES]
        # Widths fit the words of the operator's language, which may be longer than English.
        first = max(14, *(len(label) + 2 for label in labels))
        width = max(11, *(len(heading) + 2 for heading in headings))
        header = f"{'':<{first}}" + "".join(f"{heading:>{width}}" for heading in headings)
        rows = [
            f"{label:<{first}}"
            + "".join(f"{report.count(entity, verb):>{width}}" for verb in VERBS)
            for entity, label in zip(ENTITIES, labels, strict=True)
        ]
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(row)
