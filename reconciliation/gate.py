"""The reconciliation gate (DESIGN §4): new risk waits until a reconciliation has succeeded
after the latest start of an order-executing process, and whenever the last success is older
than RECONCILIATION_MAX_AGE_SECONDS. Fail closed.

Everything about the gate is here: the rule (``gate_evaluate``: pure, plain values in, a
verdict out), the verdict as the state row says (``gate_verdict``: what the pre-trade checks,
health, metrics and the API read), and the gate's inputs (``process_start_record``: a process
start closes it; ``reconciliation_force_complete``: an operator's override opens it). A
successful run, the other input, is recorded by the engine (``reconciliation.engine``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reconciliation.models import ReconciliationState
from tradeops.audit import actor_label, audit_record
from tradeops.compiled import CompiledQuery
from tradeops.errors import Conflict, PermissionDenied
from tradeops.otp import step_up_verify
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)


# --- the rule (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class GateVerdict:
    open: bool
    reason: str
    by_override: bool = False


def gate_evaluate(
    *,
    last_success_at: datetime | None,
    last_process_start_at: datetime | None,
    override_at: datetime | None,
    now: datetime,
    max_age: timedelta,
) -> GateVerdict:
    """Is new risk allowed? Fail closed (DESIGN §4).

    A force-complete override counts as a reconciliation at the moment it was given: it opens
    the gate for processes already running, and it ages like a real success, so a broken
    reconciliation cannot keep trading open forever on one operator click.
    """
    candidates = [t for t in (last_success_at, override_at) if t is not None]
    if not candidates:
        return GateVerdict(False, "no reconciliation has succeeded yet")
    effective = max(candidates)
    by_override = override_at is not None and (
        last_success_at is None or override_at > last_success_at
    )
    if last_process_start_at is not None and effective < last_process_start_at:
        return GateVerdict(
            False,
            f"an order-executing process started at {last_process_start_at.isoformat()}; "
            "waiting for a reconciliation after it",
        )
    age = now - effective
    if age > max_age:
        return GateVerdict(
            False,
            f"last reconciliation {int(age.total_seconds())}s ago exceeds the maximum age "
            f"of {int(max_age.total_seconds())}s",
        )
    reason = "force-complete override in effect" if by_override else "reconciled"
    return GateVerdict(True, reason, by_override)


# --- the verdict as the state row says -------------------------------------------------------
_STATE = CompiledQuery(lambda: ReconciliationState.objects.filter(pk=1)[:1], model=True)


def gate_verdict(now: datetime | None = None) -> GateVerdict:
    """The gate now: what the pre-trade checks, the slice dispatcher, /health, /metrics, the
    API and the admin's gate page read (twice per order: compiled once)."""
    return gate_verdict_of(_STATE.first(), now=now)


def gate_verdict_of(
    state: ReconciliationState | None, *, now: datetime | None = None
) -> GateVerdict:
    """The gate as a given state row says (e.g. one the caller holds locked)."""
    if state is None:
        return GateVerdict(False, "no reconciliation has succeeded yet")
    return gate_evaluate(
        last_success_at=state.last_success_at,
        last_process_start_at=state.last_process_start_at,
        override_at=state.override_at if state.override_active else None,
        now=now or timezone.now(),
        max_age=timedelta(seconds=settings.RECONCILIATION_MAX_AGE_SECONDS),
    )


# --- the gate's inputs: process starts, the force-complete override -------------------------
def process_start_record(*, kind: str, now: datetime | None = None) -> None:
    """An order-executing process started: the gate closes until a reconciliation runs after
    this moment (what the process believes about the broker is unverified)."""
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = ReconciliationState.objects.select_for_update().get_or_create(pk=1)
        if state.last_process_start_at is None or now > state.last_process_start_at:
            state.last_process_start_at = now
            state.last_process_start_kind = kind
            state.save(update_fields=["last_process_start_at", "last_process_start_kind"])
    logger.info("order-executing process started (%s): gate closed until reconciliation", kind)


def reconciliation_force_complete(
    *, actor: Any, reason: str, otp_token: str, session: Any = None
) -> None:
    """Open the gate without a reconciliation. Needs ``manage_reconciliation``, a reason and a
    step-up (``otp_token``; ``session``: the request's, for STEP_UP_WINDOW_SECONDS); the
    override counts as a reconciliation at this moment and ages like one, and every order
    placed under it is flagged and logged. Refused (409) while the gate is open, an override
    already in effect included."""
    if not getattr(actor, "has_perm", lambda p: False)("reconciliation.manage_reconciliation"):
        raise PermissionDenied("Permission reconciliation.manage_reconciliation is required.")
    reason = reason_clean(reason)
    _require_gate_closed(gate_verdict())  # before the OTP code is spent
    step_up = step_up_verify(
        user=actor, token=otp_token, action="reconciliation.force_complete", session=session
    )
    now = timezone.now()
    with transaction.atomic():
        state, _ = ReconciliationState.objects.select_for_update().get_or_create(pk=1)
        _require_gate_closed(gate_verdict_of(state, now=now))  # again, locked: a run may have ended
        before = {
            "override_active": state.override_active,
            "last_success_at": state.last_success_at,
        }
        state.override_active = True
        state.override_reason = reason
        state.override_by = actor_label(actor)
        state.override_at = now
        state.save()
        audit_record(
            actor=actor,
            action="reconciliation.force_complete",
            object_type="reconciliation",
            object_id=1,
            reason=reason,
            before=before,
            after={
                "override_active": True,
                "override_at": now,
                "step_up": step_up.as_audit(),
            },
        )
    logger.warning("reconciliation FORCE-COMPLETED by %s: %s", actor_label(actor), reason)


def _require_gate_closed(verdict: GateVerdict) -> None:
    """An override of an open gate would change nothing but flag every order placed in the
    next RECONCILIATION_MAX_AGE_SECONDS as "under override" (and extend an override already
    in effect): refused, so the flag keeps meaning "nobody reconciled this"."""
    if verdict.open:
        raise Conflict(
            f"The gate is already open ({verdict.reason}): there is nothing to force-complete.",
            details={"gate": verdict.reason, "by_override": verdict.by_override},
        )
