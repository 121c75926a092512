"""First-install rows: both trading switches released and the global risk-limit row.

A missing switch row counts as engaged (fail closed), so a database without these rows refuses
every order; this migration is what makes a fresh install tradeable.
"""

from django.db import migrations


def create_rows(apps, schema_editor):
    TradingSwitch = apps.get_model("orders", "TradingSwitch")
    RiskLimit = apps.get_model("orders", "RiskLimit")
    for name in ("kill_switch", "circuit_breaker"):
        TradingSwitch.objects.get_or_create(
            name=name, defaults={"engaged": False, "reason": "initial state"}
        )
    RiskLimit.objects.get_or_create(symbol="*")


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.RunPython(create_rows, migrations.RunPython.noop)]
