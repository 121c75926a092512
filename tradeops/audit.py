"""Writing the audit trail."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from tradeops.models import AuditEvent

SYSTEM = "system"


class AuditOutsideTransaction(RuntimeError):
    """An audit row must commit or roll back together with the change it describes."""


def actor_label(actor: Any) -> str:
    if actor is None:
        return SYSTEM
    if isinstance(actor, str):
        return actor
    return getattr(actor, "get_username", lambda: str(actor))()


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_record(
    *,
    actor: Any,
    action: str,
    object_type: str = "",
    object_id: Any = "",
    reason: str = "",
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Record an operator-visible change. ``actor`` is a User, a label such as
    ``strategy:alpha``, or None for the system. Must run inside ``transaction.atomic()``."""
    if not connection.in_atomic_block:
        raise AuditOutsideTransaction(f"audit_record({action}) called outside a transaction")
    user = actor if getattr(actor, "pk", None) is not None and not isinstance(actor, str) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label(actor),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        reason=reason,
        before=_jsonable(before),
        after=_jsonable(after),
    )
