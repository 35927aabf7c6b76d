from decimal import Decimal

from django.db import migrations

HOT_DESK = {
    "slug": "hot-desk",
    "name": "Hot Desk",
    "summary": "Any open desk, any weekday, with meeting-room credit every month.",
    "description": (
        "Work from any open desk in the space. Includes $150.00 of meeting-room credit "
        "in each paid month, fast internet, coffee and the community."
    ),
    "monthly_price": Decimal("250.00"),
    "billing_interval": "month",
    "contract_months": 12,
    "included_credit": Decimal("150.00"),
    "renewal_policy": "renew_term",
    "cancellation_policy": "at_commitment_end",
    "is_public": True,
    "is_active": True,
    "sort_order": 10,
}


def seed_hot_desk(apps, schema_editor):
    Plan = apps.get_model("members", "Plan")
    values = {key: value for key, value in HOT_DESK.items() if key != "slug"}
    # The database being migrated, which is not the default one in `migrate --database`.
    plans = Plan.objects.using(schema_editor.connection.alias)
    plans.get_or_create(slug=HOT_DESK["slug"], defaults=values)


def remove_hot_desk(apps, schema_editor):
    Plan = apps.get_model("members", "Plan")
    # Plans referenced by memberships are protected; leave those in place.
    Plan.objects.using(schema_editor.connection.alias).filter(slug=HOT_DESK["slug"], memberships__isnull=True, applications__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("members", "0001_initial")]

    operations = [migrations.RunPython(seed_hot_desk, remove_hot_desk)]
