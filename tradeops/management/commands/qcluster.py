"""python manage.py qcluster: django-q2's command without the system checks.

Django runs every check (the URLconf, hence the admin and the whole API stack, the models,
the deploy settings) before a command whose ``requires_system_checks`` is not empty: ~0.4 s
of CPU, plus the web modules, on every start of the job cluster, which the startup
reconciliation (and so the order gate) waits for (issue 14 point 8, cold start). The cluster
serves no HTTP; the checks run where they can stop a bad deploy: ``manage.py check
[--deploy]``, ``migrate`` and CI (README, Operations). This command shadows django-q2's
because ``tradeops`` comes before ``django_q`` in INSTALLED_APPS.
"""

from __future__ import annotations

from django_q.management.commands.qcluster import Command as ClusterCommand


class Command(ClusterCommand):
    requires_system_checks: list[str] = []
