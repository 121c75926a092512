"""Kill switch and circuit breaker: database-backed, audited, fail closed."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import OrderEvent, TradingSwitch
from orders.status import OrderStatus, Source
from tradeops.audit import actor_label, audit_record
from tradeops.errors import ValidationFailed
from tradeops.otp import StepUp, step_up_require
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)


def trading_switch_set(
    *, name: str, engaged: bool, actor: Any, reason: str, step_up: StepUp | None = None
) -> TradingSwitch:
    """Engage or release a switch. A reason is mandatory: someone will ask why trading stopped
    (or why it started again). Releasing puts money at risk again: it needs a step-up."""
    if name not in TradingSwitch.Name.values:
        raise ValidationFailed(f"Unknown switch '{name}'.")
    reason = reason_clean(reason)
    if not engaged:
        step_up_require(step_up, actor=actor, action="trading_switch.release")
    with transaction.atomic():
        switch, _ = TradingSwitch.objects.select_for_update().get_or_create(
            name=name, defaults={"engaged": True}
        )
        before = {"engaged": switch.engaged, "reason": switch.reason}
        switch.engaged = engaged
        switch.reason = reason
        switch.changed_at = timezone.now()
        switch.changed_by = actor_label(actor)
        switch.save()
        audit_record(
            actor=actor,
            action=f"{name}.{'engage' if engaged else 'release'}",
            object_type="trading_switch",
            object_id=name,
            reason=switch.reason,
            before=before,
            after={
                "engaged": engaged,
                "reason": switch.reason,
                **({"step_up": step_up.as_audit()} if step_up else {}),
            },
        )
    log = logger.warning if engaged else logger.info
    log("%s %s by %s: %s", name, "ENGAGED" if engaged else "released", switch.changed_by, reason)
    return switch


def trading_switches_ensure() -> None:
    """Create missing switch rows as released (first install). A missing row means engaged,
    so without this a fresh database refuses every order."""
    for name in TradingSwitch.Name.values:
        TradingSwitch.objects.get_or_create(
            name=name, defaults={"engaged": False, "reason": "initial state"}
        )


def circuit_breaker_note_rejection() -> None:
    """Trip the breaker when the broker keeps refusing orders: a strategy sending garbage in a
    loop, or an account problem (buying power, restrictions) that every new order will hit."""
    threshold = settings.CIRCUIT_BREAKER_REJECTS_TO_TRIP
    if threshold <= 0:
        return
    since = timezone.now() - timedelta(seconds=settings.CIRCUIT_BREAKER_WINDOW_SECONDS)
    recent = OrderEvent.objects.filter(
        created_at__gte=since, source=Source.SUBMIT, status=OrderStatus.REJECTED, applied=True
    ).count()
    if recent < threshold:
        return
    switch = TradingSwitch.objects.filter(name=TradingSwitch.Name.CIRCUIT_BREAKER).first()
    if switch is not None and switch.engaged:
        return
    trading_switch_set(
        name=TradingSwitch.Name.CIRCUIT_BREAKER,
        engaged=True,
        actor=None,
        reason=f"auto-trip: {recent} broker rejections within "
        f"{settings.CIRCUIT_BREAKER_WINDOW_SECONDS}s",
    )
