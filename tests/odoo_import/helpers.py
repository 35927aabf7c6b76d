"""Helpers of the Odoo import tests: database snapshots and the command's summary table."""

from access.models import AccessKey
from members.models import Member, Membership, Plan

SUMMARY_ROWS = {
    "plans": "plan",
    "members": "member",
    "memberships": "membership",
    "access keys": "key",
}
SUMMARY_COLUMNS = ("created", "updated", "unchanged", "skipped", "conflict")


def snapshot() -> dict:
    """Return everything the import writes, keyed by Odoo record, without database ids."""
    return {
        "plans": sorted(
            Plan.objects.values_list(
                "name", "monthly_price", "contract_months", "is_active", "is_public"
            )
        ),
        "members": sorted(
            Member.objects.values_list(
                "odoo_partner_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "company",
                "member_since",
            )
        ),
        "memberships": sorted(
            Membership.objects.values_list(
                "odoo_ref",
                "member__odoo_partner_id",
                "plan__name",
                "state",
                "start_date",
                "commitment_end",
                "end_date",
                "cancel_at",
                "monthly_price",
                "included_credit",
                "contract_months",
            )
        ),
        "keys": sorted(
            AccessKey.objects.values_list(
                "member__odoo_partner_id", "number", "kind", "status", "wanted_state", "sync_status"
            )
        ),
    }


def summary(output: str) -> dict:
    """Return the counts of the summary table as {("member", "created"): 3, ...}."""
    counts = {}
    for line in output.splitlines():
        for label, entity in SUMMARY_ROWS.items():
            rest = line.removeprefix(label)
            if rest == line or not rest.startswith(" "):
                continue
            numbers = rest.split()
            if len(numbers) == len(SUMMARY_COLUMNS) and all(n.isdigit() for n in numbers):
                for column, number in zip(SUMMARY_COLUMNS, numbers, strict=True):
                    counts[entity, column] = int(number)
    return counts


def counts_of(output: str, entity: str) -> tuple[int, ...]:
    """Return (created, updated, unchanged, skipped, conflict) of one summary row."""
    table = summary(output)
    return tuple(table[entity, column] for column in SUMMARY_COLUMNS)
