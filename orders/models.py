"""Orders, strategies, positions, risk limits and trading switches."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orders.status import OPEN_STATUSES, OrderStatus

RESERVED_STRATEGY_ID = "external"
# The strategy operators' orders from the admin's "Place order" page default to (created by a
# migration; other strategies may be chosen).
MANUAL_STRATEGY_ID = "manual"
STRATEGY_ID_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def validate_strategy_id(value: str) -> None:
    if value == RESERVED_STRATEGY_ID:
        raise ValidationError(
            f"'{RESERVED_STRATEGY_ID}' is reserved for orders TradeOps did not place.",
            code="reserved",
        )


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class OrderType(models.TextChoices):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(models.TextChoices):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class Origin(models.TextChoices):
    API = "api", "Strategy API"
    ADMIN = "admin", "Operator (admin)"
    TWAP = "twap", "TWAP slice"
    ADOPTED = "adopted", "Adopted orphan"


class Strategy(models.Model):
    id = models.CharField(
        primary_key=True,
        max_length=64,
        validators=[
            RegexValidator(STRATEGY_ID_RE, "Lowercase letters, digits, '-' and '_'."),
            validate_strategy_id,
        ],
    )
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    # A strategy cannot type an OTP code: an API order the fat-finger policy puts in the
    # step-up tier is refused above this notional (blank: the symbol's step-up threshold,
    # i.e. every step-up order is refused). Raising it is audited with a reason.
    max_unconfirmed_notional = models.DecimalField(
        max_digits=16,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Largest notional of a step-up-tier fat-finger order this strategy may place "
        "through the API without an operator's OTP confirmation. Blank: the symbol's "
        "FAT_FINGER_STEP_UP_NOTIONAL (no step-up order passes).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "strategies"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(id=RESERVED_STRATEGY_ID), name="strategy_id_not_reserved"
            ),
        ]

    def __str__(self) -> str:
        return self.id


class StrategyToken(models.Model):
    """An API token of one strategy. Only a SHA-256 of the key is stored."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a key")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.strategy_id}:{self.prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class OrderTerms(models.Model):
    """The terms of a request to trade, shared by ``Order`` and ``SlicingPlan`` (a plan's
    slices are orders on its terms, each with its part of ``qty``): one definition, so the two
    cannot drift apart. The strategy is a term too; each model declares it itself because the
    reverse accessors differ (``Strategy.orders``, ``Strategy.plans``)."""

    # The terms by attribute name, in the order the risk checks and the ids read them.
    TERMS = (
        "strategy_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "time_in_force",
        "limit_price",
        "stop_price",
    )

    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4, choices=Side.choices)
    qty = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices)
    limit_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)

    class Meta:
        abstract = True


class OrderQuerySet(models.QuerySet["Order"]):
    def open(self) -> OrderQuerySet:
        return self.filter(is_terminal=False)

    def slices_unclaimed(self) -> OrderQuerySet:
        """TWAP slices waiting to be sent that no dispatcher (or recovery) holds a claim on."""
        return self.filter(
            plan__isnull=False, status=OrderStatus.PENDING_NEW, send_claimed_at__isnull=True
        )


class Order(OrderTerms):
    """One order as TradeOps knows it. ``status`` is written ONLY by
    ``orders.updates.apply_order_update`` (and the initial insert)."""

    client_order_id = models.CharField(max_length=128, unique=True)
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="orders")

    status = models.CharField(
        max_length=32, choices=[(s.value, s.value) for s in OrderStatus], default="pending_new"
    )
    status_rank = models.PositiveSmallIntegerField(default=1)
    is_terminal = models.BooleanField(default=False)
    filled_qty = models.PositiveIntegerField(default=0)
    filled_avg_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    broker_order_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    broker_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Broker timestamp of the state we hold (CAS key)"
    )
    source_strength = models.PositiveSmallIntegerField(default=0)
    reject_reason = models.TextField(blank=True)
    send_claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by whoever claimed the right to send (or cancel) it"
    )

    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.API)
    # TWAP slices only: the plan, the slice's number in it and when it is due.
    plan = models.ForeignKey(
        "SlicingPlan", null=True, blank=True, on_delete=models.PROTECT, related_name="slices"
    )
    slice_num = models.PositiveIntegerField(null=True, blank=True)
    scheduled_time = models.DateTimeField(null=True, blank=True)
    trade_date = models.DateField()
    # What the fat-finger policy (and other passing checks) warned about when it was accepted.
    warnings = models.JSONField(default=list, blank=True)
    placed_under_override = models.BooleanField(
        default=False, help_text="Placed while a reconciliation force-complete was in effect"
    )
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("place_manual_order", "Can place orders from the admin")]
        indexes = [
            models.Index(fields=["symbol", "is_terminal"], name="order_symbol_open"),
            models.Index(fields=["strategy", "-created_at"], name="order_strategy_recent"),
            models.Index(fields=["is_terminal", "status"], name="order_open_status"),
            models.Index(fields=["-created_at"], name="order_recent"),
            # The dispatcher's "what is due" query: pending slices only, by due time.
            models.Index(
                fields=["scheduled_time"],
                condition=Q(plan__isnull=False, status="pending_new"),
                name="order_slice_pending_due",
            ),
            # "Has this plan an open slice left?", asked whenever a slice ends.
            models.Index(
                fields=["plan"],
                condition=Q(plan__isnull=False, is_terminal=False),
                name="order_plan_open",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(qty__gt=0), name="order_qty_positive"),
            models.CheckConstraint(
                condition=Q(limit_price__isnull=True) | Q(limit_price__gt=0),
                name="order_limit_price_positive",
            ),
            models.CheckConstraint(
                condition=Q(stop_price__isnull=True) | Q(stop_price__gt=0),
                name="order_stop_price_positive",
            ),
            models.UniqueConstraint(fields=["plan", "slice_num"], name="order_plan_slice_unique"),
            # A slice has all three, any other order none of them.
            models.CheckConstraint(
                condition=Q(plan__isnull=True, slice_num__isnull=True, scheduled_time__isnull=True)
                | Q(plan__isnull=False, slice_num__isnull=False, scheduled_time__isnull=False),
                name="order_slice_fields_together",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.qty} {self.symbol} [{self.status}]"

    @property
    def remaining_qty(self) -> int:
        return 0 if self.is_terminal else max(self.qty - self.filled_qty, 0)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def side_sign(self) -> int:
        return 1 if self.side == Side.BUY else -1

    @property
    def reference_price(self) -> Decimal | None:
        return self.limit_price or self.stop_price


class OrderEvent(models.Model):
    """Every update offered to ``apply_order_update``, applied or skipped, with the reason."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16)
    status = models.CharField(max_length=32)
    filled_qty = models.PositiveIntegerField(default=0)
    filled_avg_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    broker_updated_at = models.DateTimeField(null=True, blank=True)
    event_id = models.CharField(max_length=64, blank=True)
    applied = models.BooleanField()
    reason = models.CharField(max_length=32)
    status_before = models.CharField(max_length=32, blank=True)
    filled_qty_before = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["order", "created_at"], name="orderevent_order_time")]

    def __str__(self) -> str:
        verdict = "applied" if self.applied else "skipped"
        return f"{self.source} {self.status} {verdict} ({self.reason})"


class Position(models.Model):
    """Net position per symbol: moved by fills as they are applied, reset to the broker's
    figure by reconciliation when the two disagree."""

    symbol = models.CharField(max_length=16, unique=True)
    qty = models.IntegerField(default=0, help_text="Signed: negative when short")
    avg_entry_price = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last broker comparison")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.qty}"


_NON_NEGATIVE = MinValueValidator(Decimal("0"))
_FRACTION = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))]


class RiskLimit(models.Model):
    """Pre-trade limits. The row with symbol '*' holds the global values; a symbol's row
    overrides the fields it sets (blank = inherit). The row is also the symbol's lock."""

    GLOBAL = "*"

    symbol = models.CharField(max_length=16, unique=True)
    max_order_qty = models.PositiveIntegerField(null=True, blank=True)
    max_order_notional = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    max_position_qty = models.PositiveIntegerField(null=True, blank=True)
    # Fat-finger thresholds (orders.fat_finger); blank = the global row's, then the settings'.
    fat_finger_warn_notional = models.DecimalField(
        max_digits=16, decimal_places=2, null=True, blank=True, validators=[_NON_NEGATIVE]
    )
    fat_finger_warn_qty = models.PositiveIntegerField(null=True, blank=True)
    fat_finger_step_up_notional = models.DecimalField(
        max_digits=16, decimal_places=2, null=True, blank=True, validators=[_NON_NEGATIVE]
    )
    fat_finger_collar_pct = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        null=True,
        blank=True,
        validators=_FRACTION,
        help_text="A fraction: 0.10 = 10 %",
    )
    fat_finger_warn_pct_adv = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        null=True,
        blank=True,
        validators=_FRACTION,
        help_text="A fraction of the 20-day ADV: 0.01 = 1 %",
    )
    fat_finger_max_pct_adv = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        null=True,
        blank=True,
        validators=_FRACTION,
        help_text="A fraction of the 20-day ADV: 0.05 = 5 %",
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return "global limits" if self.symbol == self.GLOBAL else f"limits for {self.symbol}"


class TradingSwitch(models.Model):
    """Kill switch and circuit breaker. A missing row counts as engaged: fail closed."""

    class Name(models.TextChoices):
        KILL_SWITCH = "kill_switch", "Kill switch"
        CIRCUIT_BREAKER = "circuit_breaker", "Circuit breaker"

    name = models.CharField(primary_key=True, max_length=32, choices=Name.choices)
    engaged = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.CharField(max_length=150, default="system")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "trading switches"

    def __str__(self) -> str:
        state = "ENGAGED" if self.engaged else "off"
        return f"{self.get_name_display()}: {state}"


class PlanStatus(models.TextChoices):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"


PLAN_TERMINAL_STATUSES = frozenset({PlanStatus.COMPLETED, PlanStatus.CANCELED, PlanStatus.FAILED})


class SlicingPlan(OrderTerms):
    """A TWAP parent. Never sent to the broker: its slices (``Order`` rows with ``plan`` set)
    are, each under its own deterministic client_order_id. Created in one transaction with all
    its slices; the database is the only job store (DESIGN §5)."""

    key = models.CharField(
        max_length=24, unique=True, help_text="Deterministic id of the request and UTC day"
    )
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="plans")
    duration_minutes = models.PositiveIntegerField()
    interval_seconds = models.PositiveIntegerField(help_text="As requested")
    slice_interval_seconds = models.PositiveIntegerField(
        help_text="Effective: shorter than requested when the liquidity cap added slices"
    )
    slice_count = models.PositiveIntegerField()
    start_at = models.DateTimeField(help_text="Slice i is due at start + i x interval")
    status = models.CharField(max_length=10, choices=PlanStatus.choices, default=PlanStatus.ACTIVE)
    status_reason = models.TextField(blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.API)
    trade_date = models.DateField()
    # Liquidity constraint as computed at plan time; reused, never recomputed (ids stay stable).
    adv = models.PositiveBigIntegerField(null=True, blank=True, help_text="ADV used (shares)")
    adv_pct = models.DecimalField(max_digits=7, decimal_places=6, null=True, blank=True)
    max_slice_qty = models.PositiveIntegerField(null=True, blank=True)
    liquidity_source = models.CharField(max_length=32, blank=True)
    liquidity_computed_at = models.DateTimeField(null=True, blank=True)
    liquidity_note = models.TextField(blank=True)
    # What the pre-trade checks warned about when the plan was accepted (fat-finger, liquidity).
    warnings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="plan_status_recent"),
            models.Index(fields=["strategy", "-created_at"], name="plan_strategy_recent"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(qty__gt=0), name="plan_qty_positive"),
            models.CheckConstraint(
                condition=Q(max_slice_qty__isnull=True) | Q(max_slice_qty__gt=0),
                name="plan_max_slice_qty_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"TWAP #{self.pk} {self.side} {self.qty} {self.symbol} [{self.status}]"

    @property
    def is_terminal(self) -> bool:
        return self.status in PLAN_TERMINAL_STATUSES

    @property
    def end_at(self) -> datetime:
        return self.start_at + timedelta(minutes=self.duration_minutes)


class DispatcherRun(models.Model):
    """One start of ``run_slices``. Recovery treats a slice claimed before the latest start
    as possibly orphaned by a process that died (it is looked up at the broker, never blindly
    resent); the heartbeat shows operators which dispatchers are alive."""

    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="dispatcherrun_recent")]

    def __str__(self) -> str:
        return f"run_slices {self.hostname}:{self.pid} since {self.started_at:%Y-%m-%d %H:%M:%S}"


class TradeStreamRun(models.Model):
    """One start of ``stream_trade_updates`` and its heartbeat. Fills reach the database
    through this websocket within a second; while no consumer is connected they arrive only
    with the next reconciliation, minutes later. The heartbeat (written from the stream's
    event loop, so a wedged loop stops it too) lets /metrics and the admin tell a live,
    connected consumer from a dead or disconnected one, whichever host it runs on."""

    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    connected = models.BooleanField(default=False, help_text="Websocket connected and subscribed")
    connects = models.PositiveIntegerField(default=0, help_text="(Re)connections so far")
    events = models.PositiveBigIntegerField(default=0, help_text="Trade updates applied so far")
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-heartbeat_at"]
        indexes = [models.Index(fields=["-heartbeat_at"], name="tradestreamrun_recent")]

    def __str__(self) -> str:
        return f"stream_trade_updates {self.hostname}:{self.pid} since {self.started_at:%H:%M:%S}"
