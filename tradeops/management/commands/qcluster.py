"""python manage.py qcluster: django-q2's command with only our trading checks at start.

By default Django runs every check (the URLconf, hence the admin and the whole API stack,
the models) before a command: ~0.4 s of CPU, plus the web modules, on every start of the job
cluster, which the startup reconciliation (and so the order gate) waits for (issue 14 point
8, cold start). The cluster serves no HTTP, so it runs only the checks tagged ``trading``
(UTC, live keys, the unconfirmed grace, the signal settings: a bad one still refuses to
start); all checks run where they can stop a bad deploy: ``manage.py check [--deploy]``,
``migrate`` and CI (README, Operations). This command shadows django-q2's because
``tradeops`` comes before ``django_q`` in INSTALLED_APPS.
"""

from __future__ import annotations

from django_q.management.commands.qcluster import Command as ClusterCommand

from tradeops.checks import TRADING


class Command(ClusterCommand):
    requires_system_checks = [TRADING]
