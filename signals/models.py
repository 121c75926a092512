"""Signals' records: hydration runs (the truth every process reads about the feature cache),
the model registry, and every shadow validation with its figures."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class HydrationRun(models.Model):
    """One fill of the Redis feature cache. The latest succeeded run of the active feature set
    says which date the API serves (``as_of``); a running or failed one degrades /health."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    trigger = models.CharField(
        max_length=16, help_text="startup | daily | manual | refill | activation"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    feature_set_version = models.CharField(max_length=32)
    days = models.PositiveIntegerField(help_text="Trading days of features asked for")
    symbols_total = models.PositiveIntegerField(default=0)
    symbols_done = models.PositiveIntegerField(default=0)
    symbols_ok = models.PositiveIntegerField(default=0)
    symbols_failed = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=dict, blank=True, help_text="symbol -> reason")
    first_date = models.DateField(null=True, blank=True)
    as_of = models.DateField(null=True, blank=True, help_text="Latest feature date cached")
    dates = models.JSONField(default=list, blank=True, help_text="Feature dates cached")
    reason = models.TextField(blank=True, help_text="Why it was skipped or failed")
    bars_seconds = models.FloatField(null=True, blank=True)
    compute_seconds = models.FloatField(null=True, blank=True)
    write_seconds = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "-started_at"], name="hydration_status_started")]

    def __str__(self) -> str:
        return f"hydration {self.pk} ({self.trigger}) {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ModelVersion(models.Model):
    """A LightGBM model in its own text format, kept under MODEL_DIR and verified by sha256
    on every load. At most one version is active; a candidate goes live only through a
    shadow validation (or an audited override)."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        VALIDATING = "validating"
        ACTIVE = "active"
        REJECTED = "rejected"
        RETIRED = "retired"

    name = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    artifact_path = models.CharField(max_length=255, help_text="Relative to MODEL_DIR")
    artifact_sha256 = models.CharField(max_length=64)
    feature_set_version = models.CharField(max_length=32)
    feature_names = models.JSONField(default=list)
    training_start = models.DateField(null=True, blank=True)
    training_end = models.DateField(null=True, blank=True)
    training_rows = models.PositiveIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    status_changed_by = models.CharField(max_length=150, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.TextField(blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_version_unique"),
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="one_active_model"
            ),
        ]
        permissions = [
            ("manage_models", "Can promote signal models and activate them without validation")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.status})"

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


class ShadowValidation(models.Model):
    """One comparison of a candidate with the model serving at the time (or, for the first
    model, the sanity check alone), with every figure, the thresholds used and the outcome."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FINISHED = "finished"

    class Outcome(models.TextChoices):
        PASSED = "passed"
        REJECTED = "rejected"
        SKIPPED = "skipped"  # activated without validation (override)
        ERROR = "error"  # could not be run; the candidate is left as it was

    class Kind(models.TextChoices):
        SHADOW = "shadow", "shadow (vs the active model)"
        FIRST = "first", "first model (sanity only)"
        SANITY = "sanity", "sanity only (SHADOW_VALIDATION_ENABLED off)"
        OVERRIDE = "override", "override (not validated)"

    candidate = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="validations"
    )
    baseline = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    requested_by = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    min_correlation = models.FloatField()
    max_divergence = models.FloatField()
    sample_count = models.PositiveIntegerField()
    sample_source = models.CharField(max_length=16, blank=True, help_text="cache | bars")
    n_samples = models.PositiveIntegerField(null=True, blank=True)
    n_dates = models.PositiveIntegerField(null=True, blank=True)
    spearman_mean = models.FloatField(null=True, blank=True)
    spearman_min = models.FloatField(null=True, blank=True)
    divergence = models.FloatField(null=True, blank=True)
    pearson = models.FloatField(null=True, blank=True)
    sign_change_rate = models.FloatField(null=True, blank=True)
    old_min = models.FloatField(null=True, blank=True)
    old_max = models.FloatField(null=True, blank=True)
    new_min = models.FloatField(null=True, blank=True)
    new_max = models.FloatField(null=True, blank=True)
    finite = models.BooleanField(null=True)
    non_constant = models.BooleanField(null=True)
    per_date = models.JSONField(default=dict, blank=True, help_text="date -> Spearman rho")
    reasons = models.JSONField(default=list, blank=True, help_text="Why it was rejected")
    sample = models.JSONField(default=dict, blank=True, help_text="dates, symbols, old, new")
    error_text = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"validation {self.pk} of {self.candidate.label}: {self.outcome or self.status}"
