"""manage.py import_odoo against the local XML-RPC stand-in: mapping, reruns, conflicts."""

import datetime
import io
import sys
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from access.models import AccessEvent, AccessKey
from members.models import Member, Membership, MembershipEvent, Plan
from odoo_import import services
from tests.factories import MemberFactory, MembershipFactory, UserFactory

from .helpers import counts_of, snapshot, summary

pytestmark = pytest.mark.django_db

State = Membership.State
D = datetime.date


def build_space(dataset):
    """A small space: one of each kind of member the import maps differently."""
    hot_desk = dataset.product("Hot Desk", 250)
    dedicated = dataset.product("Dedicated Desk", 4200, "2025-01-01", "2025-12-31")
    people = {}

    people["paid"] = dataset.partner(
        "María Rodríguez Pérez", "Maria.Rodriguez@Example.COM", phone="787-555-0101",
        start_date=D(2023, 5, 1), access_key="fob 0001",
    )  # fmt: skip
    dataset.line(people["paid"], hot_desk, "paid", D(2024, 12, 1), D(2024, 12, 31))
    dataset.line(people["paid"], hot_desk, "paid", D(2025, 1, 1), D(2025, 1, 31))

    people["invoiced"] = dataset.partner("Ortiz, José", "jose@example.com", mobile="787-555-0102")
    dataset.line(people["invoiced"], dedicated, "invoiced", D(2025, 1, 1), D(2025, 12, 31))

    acme = dataset.partner("Acme Labs LLC", "hello@acme.example", is_company=True)
    dataset.line(acme, hot_desk, "waiting", D(2025, 2, 1), D(2025, 2, 28))
    people["company"] = acme

    people["employee"] = dataset.partner(
        "Ana Ortiz", "ana@acme.example", company=acme, access_key="CARD-9"
    )
    dataset.line(people["employee"], hot_desk, "canceled", D(2024, 10, 1), D(2024, 10, 31))

    people["free"] = dataset.partner(
        "Lucía Núñez", "lucia@example.com", free_member=True, membership_type="hot desk",
        start_date=D(2024, 6, 1), access_key="FOB-0002",
    )  # fmt: skip

    people["old"] = dataset.partner("Pedro Old", "pedro@example.com", access_key="FOB-0003")
    dataset.line(people["old"], hot_desk, "old", D(2023, 1, 1), D(2023, 12, 31))
    return people


def test_import_maps_every_kind(odoo, dataset, import_odoo, hot_desk, clock, settings):
    settings.CPR_GRACE_PERIOD_DAYS = 5
    people = build_space(dataset)
    odoo.load(dataset)

    status, out, err = import_odoo()

    assert status == 0, err
    assert Member.objects.count() == 6
    maria = Member.objects.get(odoo_partner_id=people["paid"]["id"])
    assert (maria.first_name, maria.last_name) == ("María", "Rodríguez Pérez")
    assert maria.email == "Maria.Rodriguez@example.com"
    assert maria.phone == "787-555-0101"
    assert maria.member_since == D(2023, 5, 1)
    jose = Member.objects.get(odoo_partner_id=people["invoiced"]["id"])
    assert (jose.first_name, jose.last_name, jose.phone) == ("José", "Ortiz", "787-555-0102")
    acme = Member.objects.get(odoo_partner_id=people["company"]["id"])
    assert (acme.first_name, acme.last_name, acme.company) == ("Acme Labs LLC", "", "Acme Labs LLC")
    ana = Member.objects.get(odoo_partner_id=people["employee"]["id"])
    assert ana.company == "Acme Labs LLC"

    current = maria.memberships.get(state__in=Membership.CURRENT_STATES)
    assert current.state == State.ACTIVE
    assert current.plan == hot_desk
    assert (current.start_date, current.commitment_end) == (D(2025, 1, 1), D(2025, 2, 1))
    assert current.monthly_price == Decimal("250.00")
    assert current.included_credit == hot_desk.included_credit
    history = maria.memberships.get(state=State.ENDED)
    assert history.end_date == D(2024, 12, 31)

    past_due = jose.memberships.get()
    assert past_due.state == State.PAST_DUE
    assert past_due.plan.name == "Dedicated Desk"
    assert past_due.monthly_price == Decimal("350.00")
    assert past_due.contract_months == 12
    # The portal's grace period starts with the import; then the suspension job applies.
    assert past_due.grace_until == clock.today + datetime.timedelta(days=5)
    assert acme.memberships.get().state == State.PENDING
    cancelled = ana.memberships.get()
    assert cancelled.state == State.CANCELLED
    assert cancelled.end_date == D(2024, 10, 1)  # never paid, so it never took effect

    free = Member.objects.get(odoo_partner_id=people["free"]["id"]).memberships.get()
    assert free.state == State.ACTIVE
    assert free.monthly_price == Decimal("0.00")
    assert free.plan == hot_desk
    assert free.start_date == D(2024, 6, 1)
    assert free.odoo_ref == f"res.partner,{people['free']['id']}"
    old = Member.objects.get(odoo_partner_id=people["old"]["id"]).memberships.get()
    assert old.state == State.ENDED

    event = current.events.get()
    assert (event.from_state, event.to_state, event.cause) == (
        "",
        State.ACTIVE,
        "imported from Odoo",
    )


def test_import_creates_inactive_plan(odoo, dataset, import_odoo, hot_desk):
    build_space(dataset)
    odoo.load(dataset)

    import_odoo()

    assert Plan.objects.filter(name__iexact="hot desk").count() == 1
    created = Plan.objects.get(name="Dedicated Desk")
    assert not created.is_active
    assert not created.is_public
    assert created.monthly_price == Decimal("350.00")
    assert created.contract_months == 12
    assert created.included_credit == Decimal("0.00")


def test_import_records_keys_without_sync(odoo, dataset, import_odoo, hot_desk):
    people = build_space(dataset)
    odoo.load(dataset)

    status, out, _err = import_odoo("-v", "2")

    keys = {key.member.odoo_partner_id: key for key in AccessKey.objects.select_related("member")}
    assert set(keys) == {people["paid"]["id"], people["free"]["id"]}
    paid_key = keys[people["paid"]["id"]]
    assert paid_key.number == "fob0001"
    assert paid_key.status == AccessKey.Status.ACTIVE
    assert paid_key.wanted_state == AccessKey.Wanted.ACTIVE
    assert paid_key.sync_status == AccessKey.Sync.PENDING
    assert paid_key.backend_state == ""
    assert "imported from Odoo" in AccessEvent.objects.get(key=paid_key).reason
    # Ana's membership was cancelled and Pedro's ended, so their keys are not recorded.
    assert f"skip     key        partner {people['employee']['id']}" in out
    assert f"skip     key        partner {people['old']['id']}" in out


@pytest.mark.django_db(transaction=True)
def test_import_calls_no_outside_system(odoo, dataset, import_odoo, hot_desk):
    """Committed for real, so on-commit work would run: no lock, gateway or email call."""
    people = build_space(dataset)
    odoo.load(dataset)

    status, _out, err = import_odoo()
    odoo.update("membership.membership_line", 3, state="paid")
    odoo.update("res.partner", people["free"]["id"], free_member=False, membership_state="none")
    second_status, _out, _err = import_odoo()

    assert status == 0, err
    assert second_status == 0
    assert AccessKey.objects.count() == 2
    assert not AccessKey.objects.filter(sync_status=AccessKey.Sync.IN_SYNC).exists()
    # The no_side_effects fixture checks the backend, the gateway, the signal and the outbox.


def test_second_run_changes_nothing(odoo, dataset, import_odoo, hot_desk):
    build_space(dataset)
    odoo.load(dataset)
    import_odoo()
    before = snapshot()
    events = MembershipEvent.objects.count()

    status, out, _err = import_odoo()

    assert status == 0
    assert snapshot() == before
    assert MembershipEvent.objects.count() == events
    assert counts_of(out, "member") == (0, 0, 6, 0, 0)
    assert counts_of(out, "membership") == (0, 0, 7, 0, 0)
    assert counts_of(out, "key") == (0, 0, 2, 2, 0)


def test_change_in_odoo_updates(odoo, dataset, import_odoo, hot_desk):
    people = build_space(dataset)
    odoo.load(dataset)
    import_odoo()
    invoiced_line = dataset.lines[2]
    odoo.update("membership.membership_line", invoiced_line["id"], state="paid")
    odoo.update("res.partner", people["invoiced"]["id"], phone="787-555-0199")

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    jose = Member.objects.get(odoo_partner_id=people["invoiced"]["id"])
    assert jose.phone == "787-555-0199"
    membership = jose.memberships.get()
    assert membership.state == State.ACTIVE
    event = membership.events.order_by("-pk").first()
    assert (event.from_state, event.to_state) == (State.PAST_DUE, State.ACTIVE)
    assert event.cause == "updated from Odoo"
    assert f"update   membership line {invoiced_line['id']}" in out
    assert "state past_due → active" in out
    assert counts_of(out, "member") == (0, 1, 5, 0, 0)
    assert counts_of(out, "membership") == (0, 1, 6, 0, 0)


def test_change_in_odoo_moves_key(odoo, dataset, import_odoo, hot_desk):
    people = build_space(dataset)
    odoo.load(dataset)
    import_odoo()
    current_line = dataset.lines[1]
    odoo.update("membership.membership_line", current_line["id"], state="canceled")

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    key = AccessKey.objects.get(member__odoo_partner_id=people["paid"]["id"])
    assert key.status == AccessKey.Status.REVOKED
    assert key.wanted_state == AccessKey.Wanted.REVOKED
    assert key.sync_status == AccessKey.Sync.PENDING
    assert counts_of(out, "key") == (0, 1, 1, 2, 0)


def test_free_member_no_longer_free(odoo, dataset, import_odoo, hot_desk, clock):
    people = build_space(dataset)
    odoo.load(dataset)
    import_odoo()
    odoo.update("res.partner", people["free"]["id"], free_member=False, membership_state="none")

    import_odoo()

    free = Membership.objects.get(odoo_ref=f"res.partner,{people['free']['id']}")
    assert free.state == State.ENDED
    assert free.end_date == clock.today


@pytest.mark.django_db(transaction=True)
def test_dry_run_writes_nothing(odoo, dataset, import_odoo, hot_desk):
    build_space(dataset)
    odoo.load(dataset)
    plans = Plan.objects.count()

    status, dry_out, _err = import_odoo("--dry-run")

    assert status == 0
    assert Member.objects.count() == 0
    assert Membership.objects.count() == 0
    assert AccessKey.objects.count() == 0
    assert Plan.objects.count() == plans
    assert "Dry run summary (nothing was written)" in dry_out
    assert "create   member     partner 1      new member María Rodríguez Pérez" in dry_out
    assert "create   membership line 2         Hot Desk, active" in dry_out

    _status, real_out, _err = import_odoo()
    assert summary(real_out) == summary(dry_out)
    assert summary(dry_out)["member", "created"] == 6


@pytest.mark.django_db(transaction=True)
def test_interrupted_run_keeps_batches(odoo, dataset, import_odoo, hot_desk, monkeypatch):
    build_space(dataset)
    odoo.load(dataset)
    real_import = services._import_partner

    def lose_connection(partner, *args):
        if partner.odoo_id == 4:
            raise RuntimeError("connection to the database lost")
        real_import(partner, *args)

    monkeypatch.setattr(services, "_import_partner", lose_connection)
    with pytest.raises(RuntimeError):
        import_odoo("--batch-size", "2")
    assert sorted(Member.objects.values_list("odoo_partner_id", flat=True)) == [1, 2]

    monkeypatch.setattr(services, "_import_partner", real_import)
    status, out, _err = import_odoo("--batch-size", "2")

    assert status == 0
    assert counts_of(out, "member") == (4, 0, 2, 0, 0)
    assert Member.objects.count() == 6


def test_existing_member_matched_ignoring_case(odoo, dataset, import_odoo, hot_desk):
    existing = MemberFactory(first_name="Maria", last_name="R", email="maria.rodriguez@example.com")
    people = build_space(dataset)
    odoo.load(dataset)

    status, out, _err = import_odoo("-v", "2")

    assert status == 0
    existing.refresh_from_db()
    assert existing.odoo_partner_id == people["paid"]["id"]
    assert existing.email == "maria.rodriguez@example.com"
    assert (existing.first_name, existing.last_name) == ("María", "Rodríguez Pérez")
    assert Member.objects.filter(email__iexact="maria.rodriguez@example.com").count() == 1
    assert "linked by email" in out


def test_portal_membership_blocks_current(odoo, dataset, import_odoo, hot_desk):
    portal = MembershipFactory(
        member=MemberFactory(email="jose@example.com"), plan=hot_desk, state=State.ACTIVE
    )
    build_space(dataset)
    odoo.load(dataset)

    status, out, err = import_odoo()

    assert status == 2
    assert f"member {portal.member_id} already has current membership {portal.pk}" in out
    assert portal.member.memberships.count() == 1
    assert Member.objects.count() == 6


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Cher", "Cher", ""),
        ("José Ángel Rivera Ortiz", "José", "Ángel Rivera Ortiz"),
        ("Muñoz Marín, Luis", "Luis", "Muñoz Marín"),
        ("  Zoë   Ñeco ", "Zoë", "Ñeco"),
    ],
)
def test_name_split(odoo, dataset, import_odoo, hot_desk, name, first, last):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner(name, "person@example.com")
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    import_odoo()

    member = Member.objects.get()
    assert (member.first_name, member.last_name) == (first, last)


def test_several_states_one_current(odoo, dataset, import_odoo, hot_desk, clock):
    product = dataset.product("Hot Desk", 250)
    quarter = dataset.product("Hot Desk Quarter", 690)
    person = dataset.partner("Carmen Vélez", "carmen@example.com")
    cancelled = dataset.line(person, product, "canceled", D(2024, 1, 1), D(2024, 1, 31))
    old = dataset.line(person, product, "paid", D(2024, 2, 1), D(2024, 12, 31), price=2750)
    unpaid = dataset.line(person, product, "invoiced", D(2025, 1, 1), D(2025, 1, 31))
    paid = dataset.line(person, quarter, "paid", D(2025, 1, 1), D(2025, 3, 31))
    upcoming = dataset.line(person, product, "waiting", D(2025, 4, 1), D(2025, 4, 30))
    odoo.load(dataset)

    status, out, err = import_odoo()

    assert status == 0, err
    rows = {row.odoo_ref.split(",")[1]: row for row in Membership.objects.all()}
    current = Membership.objects.get(state__in=Membership.CURRENT_STATES)
    assert current.odoo_ref.endswith(f",{paid['id']}")
    assert current.state == State.ACTIVE
    assert current.monthly_price == Decimal("230.00")
    assert current.contract_months == 3
    assert rows[str(cancelled["id"])].state == State.CANCELLED
    assert rows[str(old["id"])].state == State.ENDED
    assert rows[str(old["id"])].monthly_price == Decimal("250.00")
    assert rows[str(unpaid["id"])].state == State.CANCELLED
    assert rows[str(unpaid["id"])].end_date == D(2025, 1, 1)
    assert "is the current membership" in rows[str(unpaid["id"])].events.get().reason
    # The waiting line of April is not imported before it starts.
    assert str(upcoming["id"]) not in rows
    assert f"skip     membership line {upcoming['id']}" in out
    assert "run the import again once it starts" in out


def test_paid_line_with_future_cancel_date(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    person = dataset.partner("Luis Soto", "luis@example.com")
    dataset.line(
        person, product, "paid", D(2025, 1, 1), D(2025, 12, 31), date_cancel=D(2025, 3, 31)
    )
    odoo.load(dataset)

    import_odoo()

    membership = Membership.objects.get()
    assert membership.state == State.ACTIVE
    assert membership.cancel_at == D(2025, 3, 31)


def test_associate_member_without_line(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    company = dataset.partner("Acme", "acme@example.com", is_company=True)
    dataset.line(company, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    employee = dataset.partner("Eva Acme", "eva@example.com", associate=company)
    employee["membership_state"] = "paid"  # Odoo copies the associate's state
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 0
    assert Member.objects.filter(odoo_partner_id=employee["id"]).exists()
    assert f"skip     membership partner {employee['id']}" in out
    assert f"associate member {company['id']}" in out


# --- Conflicts ---------------------------------------------------------------------------


def test_conflicts_reported_rest_imported(odoo, dataset, import_odoo, hot_desk):
    people = build_space(dataset)
    product = dataset.products[0]
    twin_a = dataset.partner("Twin One", "twin@example.com")
    twin_b = dataset.partner("Twin Two", "TWIN@example.com")
    dataset.line(twin_a, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    dataset.line(twin_b, product, "old", D(2024, 1, 1), D(2024, 1, 31))
    orphan = dataset.line(None, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    person = dataset.partner("Rosa Díaz", "rosa@example.com")
    unknown = dataset.line(person, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    bad_date = dataset.line(person, product, "paid", "2024-02-31", D(2025, 1, 31))
    bad_money = dataset.line(person, product, "paid", D(2024, 1, 1), D(2024, 1, 31), price="12,5x")
    odoo.load(dataset)
    odoo.update("membership.membership_line", unknown["id"], membership_id=[99, "Day Pass"])

    status, out, err = import_odoo()

    assert status == 2
    assert "6 conflicts reported above" in err
    for twin in (twin_a, twin_b):
        assert f"CONFLICT member     partner {twin['id']}" in out
    assert f"partners {twin_a['id']}, {twin_b['id']} share the email twin@example.com" in out
    assert f"CONFLICT membership line {orphan['id']}" in out
    assert "the line has no partner" in out
    assert f"line {unknown['id']}" in out
    assert "its product 99 (Day Pass) is not a membership product" in out
    assert f"CONFLICT membership line {bad_date['id']}" in out
    assert "'2024-02-31' is not a date" in out
    assert f"CONFLICT membership line {bad_money['id']}" in out
    assert "'12,5x' is not a number" in out
    for twin_line in dataset.lines[6:8]:
        assert f"skip     membership line {twin_line['id']}" in out
    # Everyone else, and Rosa herself, came in.
    assert Member.objects.count() == 7
    assert not Member.objects.filter(email__iexact="twin@example.com").exists()
    assert Member.objects.filter(odoo_partner_id=people["paid"]["id"]).exists()
    assert not Membership.objects.filter(member__email="rosa@example.com").exists()


def test_contact_without_email_conflict(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    nobody = dataset.partner("No Mail", False)
    dataset.line(nobody, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    several = dataset.partner("Two Mails", "a@example.com, b@example.com")
    dataset.line(several, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 2
    assert f"partner {nobody['id']}      the contact has no email address" in out
    assert "is not one address" in out
    assert Member.objects.count() == 0


def test_email_taken_by_other_import(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    first = dataset.partner("First", "same@example.com")
    first_line = dataset.line(first, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    second = dataset.partner("Second", "other@example.com")
    dataset.line(second, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    import_odoo()
    del odoo.records["res.partner"][first["id"]]  # deleted in Odoo, kept in the portal
    del odoo.records["membership.membership_line"][first_line["id"]]
    odoo.update("res.partner", second["id"], email="Same@example.com")

    status, out, _err = import_odoo()

    assert status == 2
    member = Member.objects.get(odoo_partner_id=first["id"])
    assert f"the new email Same@example.com belongs to member {member.pk}" in out
    assert Member.objects.get(odoo_partner_id=second["id"]).email == "other@example.com"


def test_key_number_of_another_member(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    for name in ("Uno", "Dos"):
        person = dataset.partner(name, f"{name.lower()}@example.com", access_key="FOB-7")
        dataset.line(person, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 2
    assert AccessKey.objects.count() == 1
    assert "key FOB-7: The number FOB-7 belongs to another key" in out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_terminal_only(odoo, dataset, import_odoo, hot_desk, monkeypatch):
    build_space(dataset)
    odoo.load(dataset)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    import_odoo()

    assert "Importing" in terminal.getvalue()
    assert "0/6" in terminal.getvalue()  # drawn at once; later updates depend on timing


def test_no_progress_bar_off_terminal(odoo, dataset, import_odoo, hot_desk, monkeypatch):
    build_space(dataset)
    odoo.load(dataset)
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)

    import_odoo()

    assert "Importing" not in pipe.getvalue()


def test_email_change_of_member_with_login(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    partner = dataset.partner("Rosa Díaz", "rosa@example.com")
    dataset.line(partner, product, "paid", D(2025, 1, 1), D(2025, 1, 31))
    odoo.load(dataset)
    import_odoo()
    member = Member.objects.get()
    member.user = UserFactory(email="rosa@example.com")
    member.save()
    odoo.update("res.partner", partner["id"], email="rosa.diaz@example.com")

    status, out, _err = import_odoo()

    assert status == 2
    assert f"member {member.pk} signs in as rosa@example.com" in out
    member.refresh_from_db()
    assert member.email == "rosa@example.com"


def test_batch_size_must_be_positive(db, import_odoo):
    with pytest.raises(CommandError, match="'0' is not a whole number of at least 1"):
        call_command("import_odoo", "--batch-size", "0")


def test_partner_with_only_bad_lines(odoo, dataset, import_odoo, hot_desk):
    product = dataset.product("Hot Desk", 250)
    person = dataset.partner("Rosa Díaz", "rosa@example.com")
    bad = dataset.line(person, product, "paid", D(2025, 1, 1), D(2025, 1, 31), price="lots")
    odoo.load(dataset)

    status, out, _err = import_odoo()

    assert status == 2
    assert f"CONFLICT membership line {bad['id']}" in out
    assert f"none of the contact's membership lines could be imported (line {bad['id']};" in out
    assert "has no membership line" not in out
