"""Cross-cutting models: the audit trail of operator-visible changes, admin login throttles."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what, when, why, with the state before and after (DESIGN §1.6).

    Written by ``tradeops.audit.audit_record`` in the same transaction as the change it describes,
    so a change without its audit row cannot be committed.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=150, help_text="User name, strategy:<id> or system")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"


class LoginThrottle(models.Model):
    """Consecutive failed admin logins of one username (tradeops.login): the next attempt
    waits ``factor * 2**(failures - 1)`` seconds after the last failure, like a TOTP device
    after wrong codes. Deleting the row lifts the throttle; a successful login deletes it."""

    username = models.CharField(max_length=150, unique=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-last_failure_at"]

    def __str__(self) -> str:
        return f"{self.username}: {self.failures} failed login(s)"
