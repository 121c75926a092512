"""Strategies and their API tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import CharField
from django.utils import timezone

from orders.models import MANUAL_STRATEGY_ID, Strategy, StrategyToken
from tradeops.audit import audit_record
from tradeops.compiled import CompiledQuery
from tradeops.errors import Conflict, ValidationFailed
from tradeops.reasons import reason_clean

TOKEN_PREFIX = "tok_"  # noqa: S105 - a visible prefix, not a secret


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def strategy_create(*, strategy_id: str, name: str = "", actor: Any) -> Strategy:
    strategy = Strategy(id=strategy_id, name=name)
    try:
        strategy.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise ValidationFailed(
            "; ".join(exc.messages), details={"strategy": exc.messages}
        ) from None
    try:
        with transaction.atomic():
            strategy.save(force_insert=True)
            audit_record(
                actor=actor,
                action="strategy.create",
                object_type="strategy",
                object_id=strategy.id,
                after={"id": strategy.id, "name": name},
            )
    except IntegrityError:
        raise Conflict(f"Strategy '{strategy_id}' already exists.") from None
    return strategy


def strategy_token_issue(*, strategy: Strategy, actor: Any) -> str:
    """Create a token and return its key. The key is shown once; only its hash is stored."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = StrategyToken.objects.create(
            strategy=strategy, key_hash=token_hash(key), prefix=key[:12]
        )
        audit_record(
            actor=actor,
            action="strategy_token.issue",
            object_type="strategy",
            object_id=strategy.id,
            after={"token": token.prefix},
        )
    return key


def strategy_token_revoke(*, token: StrategyToken, actor: Any, reason: str) -> None:
    reason = reason_clean(reason)
    with transaction.atomic():
        StrategyToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        audit_record(
            actor=actor,
            action="strategy_token.revoke",
            object_type="strategy",
            object_id=token.strategy_id,
            reason=reason,
            before={"token": token.prefix},
        )


_TOKEN_FIELDS = [f.attname for f in StrategyToken._meta.concrete_fields]
_STRATEGY_FIELDS = [f.attname for f in Strategy._meta.concrete_fields]
# Every API request reads its token with its strategy (one join, compiled once).
_TOKEN = CompiledQuery(
    lambda key_hash: (
        StrategyToken.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .order_by()
        .values_list(*_TOKEN_FIELDS, *(f"strategy__{name}" for name in _STRATEGY_FIELDS))[:1]
    ),
    key_hash=CharField(),
)


def strategy_token_lookup(key: str) -> StrategyToken | None:
    """The live token with this key, its strategy loaded (as ``select_related`` would)."""
    row = _TOKEN.first(key_hash=token_hash(key))
    if row is None:
        return None
    n = len(_TOKEN_FIELDS)
    token = StrategyToken.from_db(DEFAULT_DB_ALIAS, _TOKEN_FIELDS, row[:n])
    token.strategy = Strategy.from_db(DEFAULT_DB_ALIAS, _STRATEGY_FIELDS, row[n:])
    return token


def manual_strategy_ensure() -> Strategy:
    """The ``manual`` strategy the admin's "Place order" page defaults to (a migration creates
    it; a flushed test database does not have it)."""
    strategy, _ = Strategy.objects.get_or_create(
        id=MANUAL_STRATEGY_ID, defaults={"name": "Manual orders (operators)"}
    )
    return strategy
