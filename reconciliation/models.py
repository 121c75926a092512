"""Reconciliation state, runs, orphan orders, quarantines and position mismatches."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from orders.models import RESERVED_STRATEGY_ID, Order

ANY_STRATEGY = "*"


class ReconciliationState(models.Model):
    """One row (pk=1): what the gate is computed from, and where the next run starts."""

    last_success_at = models.DateTimeField(
        null=True, blank=True, help_text="Start time of the last successful run"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_status = models.CharField(max_length=16, blank=True)
    last_error = models.TextField(blank=True)
    high_water_mark = models.DateTimeField(
        null=True, blank=True, help_text="Latest broker submitted_at seen by a successful run"
    )
    last_process_start_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Latest start of an order-executing process (job cluster, stream, dispatcher)",
    )
    last_process_start_kind = models.CharField(max_length=32, blank=True)
    override_active = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    override_by = models.CharField(max_length=150, blank=True)
    override_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("manage_reconciliation", "Can force-complete reconciliation and resolve orphans"),
        ]

    def __str__(self) -> str:
        return "reconciliation state"


class ReconciliationRun(models.Model):
    class Kind(models.TextChoices):
        STARTUP = "startup"
        PERIODIC = "periodic"
        MANUAL = "manual"
        STREAM = "stream", "stream (re)connect"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    high_water_mark_before = models.DateTimeField(null=True, blank=True)
    high_water_mark_after = models.DateTimeField(null=True, blank=True)
    orders_checked = models.PositiveIntegerField(default=0)
    orders_updated = models.PositiveIntegerField(default=0)
    fills_corrected = models.PositiveIntegerField(default=0)
    unconfirmed_resolved = models.PositiveIntegerField(default=0)
    marked_failed = models.PositiveIntegerField(default=0)
    orphans_found = models.PositiveIntegerField(default=0)
    conflicts_skipped = models.PositiveIntegerField(default=0)
    position_mismatches = models.PositiveIntegerField(default=0)
    broker_calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    error_text = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "-started_at"], name="reconrun_status_recent")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.started_at:%Y-%m-%d %H:%M:%S} [{self.status}]"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class OrphanOrder(models.Model):
    """A broker order the database never placed (seed schema). It is never inserted into
    ``orders`` unless an operator adopts it and names a strategy."""

    class Status(models.TextChoices):
        UNTRACKED = "untracked"
        ADOPTED = "adopted"
        CANCELED = "canceled"
        RESOLVED = "resolved"

    broker_order_id = models.CharField(max_length=64, unique=True)
    client_order_id = models.CharField(max_length=128, blank=True)
    symbol = models.CharField(max_length=16)
    strategy_id = models.CharField(max_length=64, default=RESERVED_STRATEGY_ID)
    side = models.CharField(max_length=4)
    qty = models.PositiveIntegerField()
    filled_qty = models.PositiveIntegerField(default=0)
    order_type = models.CharField(max_length=16, blank=True)
    limit_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    estimated_notional = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal(0))
    broker_status = models.CharField(max_length=32)
    broker_submitted_at = models.DateTimeField(null=True, blank=True)
    broker_updated_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNTRACKED)
    detected_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution_note = models.TextField(blank=True)
    adopted_order = models.OneToOneField(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="adopted_from"
    )

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [models.Index(fields=["symbol", "status"], name="orphan_symbol_status")]

    def __str__(self) -> str:
        return f"orphan {self.side} {self.qty} {self.symbol} ({self.broker_status}) [{self.status}]"

    @property
    def remaining_qty(self) -> int:
        from orders.status import is_terminal

        if self.status != self.Status.UNTRACKED or is_terminal(self.broker_status):
            return 0
        return max(self.qty - self.filled_qty, 0)


class QuarantineQuerySet(models.QuerySet["Quarantine"]):
    def active(self) -> QuarantineQuerySet:
        return self.filter(cleared_at__isnull=True)


class Quarantine(models.Model):
    """Fences new orders on a symbol: for one strategy, or for every strategy (``*``)."""

    strategy_id = models.CharField(max_length=64, help_text="A strategy id, 'external' or '*'")
    symbol = models.CharField(max_length=16)
    reason = models.TextField()
    orphan = models.ForeignKey(
        OrphanOrder, null=True, blank=True, on_delete=models.PROTECT, related_name="quarantines"
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, default="system")
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.CharField(max_length=150, blank=True)
    clear_reason = models.TextField(blank=True)

    objects = QuarantineQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["symbol", "cleared_at"], name="quarantine_symbol_active")]
        constraints = [
            # One live quarantine per orphan: re-detection must not stack duplicates.
            models.UniqueConstraint(
                fields=["orphan"],
                condition=Q(cleared_at__isnull=True),
                name="quarantine_one_active_per_orphan",
            ),
        ]

    def __str__(self) -> str:
        state = "active" if self.cleared_at is None else "cleared"
        return f"quarantine {self.strategy_id}:{self.symbol} [{state}]"

    @property
    def key(self) -> str:
        return f"{self.strategy_id}:{self.symbol}"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None


class PositionMismatch(models.Model):
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="mismatches")
    symbol = models.CharField(max_length=16)
    db_qty = models.IntegerField()
    broker_qty = models.IntegerField()
    corrected = models.BooleanField(default=False)
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-detected_at", "-id"]
        verbose_name_plural = "position mismatches"

    def __str__(self) -> str:
        return f"{self.symbol}: database {self.db_qty}, broker {self.broker_qty}"


class ProcessStart(models.Model):
    """One row per start of an order-executing process (a job cluster is identified by its
    sentinel process), so that N workers spawning at once record ONE start."""

    identity = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32)
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.identity} at {self.started_at:%Y-%m-%d %H:%M:%S}"
