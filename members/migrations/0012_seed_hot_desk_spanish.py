from django.db import migrations

HOT_DESK_SLUG = "hot-desk"

# The Spanish texts of the Hot Desk plan that 0002_seed_hot_desk_plan seeds in English.
# backup_restore compares the plan with both seeds to tell a fresh database from one with data.
HOT_DESK_ES = {
    "summary_es": (
        "Cualquier escritorio disponible, cualquier día de semana, con crédito para salas "
        "de reuniones todos los meses."
    ),
    "description_es": (
        "Trabaje desde cualquier escritorio disponible del espacio. Incluye $150.00 de "
        "crédito para salas de reuniones en cada mes pagado, internet rápido, café y la "
        "comunidad."
    ),
}


def seed_spanish(apps, schema_editor):
    """Fill the Spanish texts of the Hot Desk plan where staff have not written any."""
    Plan = apps.get_model("members", "Plan")
    plans = Plan.objects.using(schema_editor.connection.alias).filter(slug=HOT_DESK_SLUG)
    for field, text in HOT_DESK_ES.items():
        plans.filter(**{field: ""}).update(**{field: text})


def remove_spanish(apps, schema_editor):
    """Empty the Spanish texts that still read as seeded; edited ones stay."""
    Plan = apps.get_model("members", "Plan")
    plans = Plan.objects.using(schema_editor.connection.alias).filter(slug=HOT_DESK_SLUG)
    for field, text in HOT_DESK_ES.items():
        plans.filter(**{field: text}).update(**{field: ""})


class Migration(migrations.Migration):
    dependencies = [("members", "0011_plan_spanish_text")]

    operations = [migrations.RunPython(seed_spanish, remove_spanish)]
