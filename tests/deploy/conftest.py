"""The signals fixtures (a model needs stored bars, a scratch MODEL_DIR and the test Redis)."""

from tests.signals.conftest import redis_db, signals_env, stored_bars

__all__ = ["redis_db", "signals_env", "stored_bars"]
