"""`manage.py import_odoo`: bring members, memberships, plans and keys over from Odoo."""

import argparse
import logging
import os
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from access.models import AccessKey
from members.models import Member
from odoo_import.records import ENTITIES, VERBS, ImportReport, Outcome
from odoo_import.services import ImportOptions, run_import
from odoo_import.sources import CsvSource, CustomFields, OdooSourceError, XmlRpcSource

logger = logging.getLogger("odoo_import")

# Exit status when the import finished but reported conflicts; 1 is any other error.
CONFLICTS_EXIT_STATUS = 2

VERB_LABELS = {
    "created": "create",
    "updated": "update",
    "unchanged": "same",
    "skipped": "skip",
    "conflict": "CONFLICT",
}
ENTITY_LABELS = {
    "plan": "plans",
    "member": "members",
    "membership": "memberships",
    "key": "access keys",
}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Import members, memberships, plans and access keys from Odoo, over its XML-RPC API "
        "(ODOO_URL, ODOO_DB, ODOO_USERNAME, ODOO_PASSWORD) or from CSV exports (--csv-dir). "
        "Safe to run again: it updates what changed and creates nothing twice. Exits with "
        f"status {CONFLICTS_EXIT_STATUS} when it reported conflicts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_argument_group(
            "source",
            "Read a live Odoo over XML-RPC (the default), or CSV files exported from Odoo. "
            "The password or API key is read only from the ODOO_PASSWORD environment variable, "
            "so that it is not part of the command line; set it with `read -rs ODOO_PASSWORD "
            "&& export ODOO_PASSWORD` to keep it out of the shell history too.",
        )
        source.add_argument(
            "--url", help="Address of the Odoo site, such as https://odoo.example.com (ODOO_URL)."
        )
        source.add_argument("--db", help="Odoo database name (ODOO_DB).")
        source.add_argument("--username", help="Odoo login of the importing user (ODOO_USERNAME).")
        source.add_argument(
            "--csv-dir",
            help="Folder with contacts.csv, membership_lines.csv and products.csv exported "
            "from Odoo; reads the files instead of connecting to Odoo.",
        )
        source.add_argument(
            "--timeout",
            type=positive_int,
            default=60,
            help="Seconds one XML-RPC call may take before it fails (default 60).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be created, updated and skipped, and write nothing.",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=200,
            help="Records read per XML-RPC call, and partners written per committed "
            "transaction (default 200).",
        )
        parser.add_argument(
            "--field-membership-type",
            default="x_membership_type",
            help="res.partner field with the membership type, a plan name "
            "(default x_membership_type).",
        )
        parser.add_argument(
            "--field-start-date",
            default="x_start_date",
            help="res.partner field with the date the person became a member "
            "(default x_start_date).",
        )
        parser.add_argument(
            "--field-access-key",
            default="x_access_key",
            help="res.partner field with the number of the member's door key "
            "(default x_access_key).",
        )
        parser.add_argument(
            "--key-kind",
            choices=AccessKey.Kind.values,
            default=AccessKey.Kind.FOB,
            help="Kind of the imported door keys (default fob).",
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

        self._info(f"Reading {source.describe()}…")
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
            raise CommandError(str(error)) from None
        finally:
            self._close_bar()
        self._info(
            f"Read {len(data.products)} membership products, {len(data.partners)} contacts and "
            f"{len(data.lines)} membership lines."
        )
        for warning in data.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        if self.dry_run:
            self._info("Dry run: every change below is rolled back at the end.")

        report = ImportReport(listener=self._print_outcome)
        self.bar = self._new_bar(total=len(data.partners), unit="contacts", desc="Importing")
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
            raise CommandError(
                f"{conflicts} conflict(s) reported above; correct them in Odoo (or the CSV files) "
                "and run the import again. Everything else "
                + ("would be imported." if self.dry_run else "was imported."),
                returncode=CONFLICTS_EXIT_STATUS,
            )

    # Source ----------------------------------------------------------------------------

    def _source(self, options):
        if options["csv_dir"]:
            if options["url"]:
                raise CommandError("Give either --csv-dir or --url, not both.")
            try:
                return CsvSource(options["csv_dir"])
            except OdooSourceError as error:
                raise CommandError(str(error)) from None

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
            f"{variable} (or {flag})" if flag else variable
            for value, flag, variable in settings.values()
            if not value.strip()
        ]
        if missing:
            raise CommandError(
                f"Set {', '.join(missing)} to read from Odoo, or give --csv-dir to read CSV "
                "exports instead."
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
            raise CommandError(str(error)) from None

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
        if self.bar is not None and self.bar.desc != f"Reading {model}":
            self._close_bar()
        if self.bar is None:
            self.bar = self._new_bar(total=total, unit="records", desc=f"Reading {model}")
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
        label = VERB_LABELS[outcome.verb]
        self._write(
            f"{label:<8} {outcome.entity:<10} {outcome.ref:<14} {outcome.detail}", style=style
        )

    def _print_summary(self, report: ImportReport) -> None:
        title = "Dry run summary (nothing was written)" if self.dry_run else "Import summary"
        header = f"{'':<12}" + "".join(f"{verb:>11}" for verb in VERBS)
        rows = [
            f"{ENTITY_LABELS[entity]:<12}"
            + "".join(f"{report.count(entity, verb):>11}" for verb in VERBS)
            for entity in ENTITIES
        ]
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(title))
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(row)
