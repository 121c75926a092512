"""Manual orders from the admin: the ``place_manual_order`` permission and the ``manual``
strategy the "Place order" page defaults to."""

from django.db import migrations


def create_manual_strategy(apps, schema_editor):
    Strategy = apps.get_model("orders", "Strategy")
    Strategy.objects.get_or_create(id="manual", defaults={"name": "Manual orders (operators)"})


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_fat_finger")]

    operations = [
        migrations.AlterModelOptions(
            name="order",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [("place_manual_order", "Can place orders from the admin")],
            },
        ),
        migrations.RunPython(create_manual_strategy, migrations.RunPython.noop),
    ]
