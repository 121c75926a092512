"""TradeOps settings: one module, driven by environment variables (README, "Configuration").

Unset Alpaca keys select the built-in paper broker on loopback, so a fresh checkout runs with
no keys and no services (SQLite under var/). Thresholds carry the names of the fix plan.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tradeops.env import env_bool, env_cron, env_decimal, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TRADEOPS_VAR_DIR", str(BASE_DIR / "var")))

# --- Django core ---------------------------------------------------------------------------
INSECURE_DEV_SECRET_KEY = "tradeops-insecure-development-key-do-not-use-with-real-money"  # noqa: S105
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or INSECURE_DEV_SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django_prometheus",
    "tradeops.admin_config.TradeOpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # before django_q: its qcluster command shadows django-q2's (no system checks at start)
    "tradeops",
    "django_q",
    "orders",
    "reconciliation",
    "signals",
    "marketdata",
    "paperbroker",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tradeops.urls"
WSGI_APPLICATION = "tradeops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL is the system of record; SQLite only for the zero-setup demo ---------
DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'tradeops.sqlite3'}"
# Persistent connections (seconds a connection is kept between requests; 0 = one per
# request): opening a PostgreSQL connection costs more than a whole
# order's queries. deploy/gunicorn.conf.py defaults it to 60 for the web; health checks make
# a kept connection that the server dropped reconnect instead of failing one request.
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", True)
DB_POOL = env_bool("DB_POOL", False)
if DB_POOL and DB_CONN_MAX_AGE:
    raise ImproperlyConfigured(
        "DB_POOL and DB_CONN_MAX_AGE exclude each other (Django's pool keeps the connections)"
    )
_db = dj_database_url.parse(
    DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=DB_CONN_HEALTH_CHECKS
)
if _db["ENGINE"].endswith("postgresql"):
    _db["ENGINE"] = "django_prometheus.db.backends.postgresql"
    # Django's pool breaks forked django-q2 workers (DESIGN §9): enable it for the web only.
    if DB_POOL:
        _db.setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": 8, "timeout": 10}
elif _db["ENGINE"].endswith("sqlite3"):
    _db["ENGINE"] = "django_prometheus.db.backends.sqlite3"
    # IMMEDIATE serialises writers: SQLite ignores SELECT ... FOR UPDATE, so this is what keeps
    # read-check-write sequences (risk checks) honest on the demo database.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    # Shared across processes: django-q2 cluster status and DRF throttles need it (DESIGN §9).
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "tradeops_cache",
    }
}

REDIS_URL = env_str("REDIS_URL")

# --- Auth, admin, OTP ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "TradeOps")
# A verified step-up (fresh OTP code for an action that relaxes a control) may be reused by the
# same login session for this long; 0 = every such action asks for a new code.
STEP_UP_WINDOW_SECONDS = env_int("STEP_UP_WINDOW_SECONDS", 0, minimum=0)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Time: everything is UTC (a system check enforces it) --------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orders.auth.StrategyTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tradeops.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "tradeops.api_schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "tradeops.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TradeOps API",
    "DESCRIPTION": "Orders, TWAP plans, reconciliation and market data for one Alpaca account.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PlanStatusEnum": "orders.models.PlanStatus",
        "QuoteSourceEnum": "marketdata.quoting.SOURCES",
        "ErrorCodeEnum": "tradeops.errors.ERROR_CODE_NAMES",
    },
}

# --- Jobs (django-q2; pitfalls in DESIGN §9) -------------------------------------------------
Q_CLUSTER = {
    "name": "tradeops",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 240,
    "retry": 300,  # must exceed timeout, or a slow task runs twice
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    # How often an idle cluster asks the database for tasks: the startup reconciliation waits
    # up to this long to be picked up after the first worker queues it (bench/cold_start.py).
    "poll": env_float("Q_POLL_SECONDS", 0.2, minimum=0.05),
    "queue_limit": 4,
    "label": "Jobs",
}

# --- Broker (alpaca-py). Unset keys -> the built-in paper broker on loopback -------------------
PAPERBROKER_HOST = env_str("PAPERBROKER_HOST", "127.0.0.1")
PAPERBROKER_PORT = env_int("PAPERBROKER_PORT", 8765, minimum=1)
PAPERBROKER_API_KEY = "paper"
PAPERBROKER_SECRET_KEY = "paper"  # noqa: S105 - loopback simulator credential, not a secret
_paper_url = f"http://{PAPERBROKER_HOST}:{PAPERBROKER_PORT}"
_paper_ws = f"ws://{PAPERBROKER_HOST}:{PAPERBROKER_PORT}"

ALPACA_API_KEY = env_str("ALPACA_API_KEY")
ALPACA_SECRET_KEY = env_str("ALPACA_SECRET_KEY")
USING_PAPER_BROKER = not (ALPACA_API_KEY and ALPACA_SECRET_KEY)
if USING_PAPER_BROKER:
    ALPACA_API_KEY, ALPACA_SECRET_KEY = PAPERBROKER_API_KEY, PAPERBROKER_SECRET_KEY
ALPACA_PAPER = env_bool("ALPACA_PAPER", True)
ALPACA_BASE_URL = env_str("ALPACA_BASE_URL", _paper_url if USING_PAPER_BROKER else "")
ALPACA_DATA_URL = env_str("ALPACA_DATA_URL", _paper_url if USING_PAPER_BROKER else "")
ALPACA_STREAM_URL = env_str(
    "ALPACA_STREAM_URL", f"{_paper_ws}/stream" if USING_PAPER_BROKER else ""
)
ALPACA_DATA_STREAM_URL = env_str(
    "ALPACA_DATA_STREAM_URL", f"{_paper_ws}/v2/iex" if USING_PAPER_BROKER else ""
)
ALPACA_DATA_FEED = env_str("ALPACA_DATA_FEED", "iex")
# alpaca-py sets no HTTP timeout at all; a hung broker must not hang a worker forever.
ALPACA_CONNECT_TIMEOUT_SECONDS = env_float("ALPACA_CONNECT_TIMEOUT_SECONDS", 3.0, minimum=0.1)
ALPACA_HTTP_TIMEOUT_SECONDS = env_float("ALPACA_HTTP_TIMEOUT_SECONDS", 10.0, minimum=0.1)
ALPACA_RETRY_ATTEMPTS = env_int("ALPACA_RETRY_ATTEMPTS", 3, minimum=0)
ALPACA_RETRY_WAIT_SECONDS = env_float("ALPACA_RETRY_WAIT_SECONDS", 3.0, minimum=0)

# --- Orders and pre-trade risk ------------------------------------------------------------------
ORDER_MAX_QTY = env_int("ORDER_MAX_QTY", 1_000_000, minimum=1)  # input sanity, not a risk limit
ORDER_MAX_PRICE = env_decimal("ORDER_MAX_PRICE", "1000000", minimum="0.0001")
RISK_DEFAULT_MAX_ORDER_QTY = env_int("RISK_DEFAULT_MAX_ORDER_QTY", 10_000, minimum=1)
RISK_DEFAULT_MAX_ORDER_NOTIONAL = env_decimal(
    "RISK_DEFAULT_MAX_ORDER_NOTIONAL", "250000", minimum="0.01"
)
RISK_DEFAULT_MAX_POSITION_QTY = env_int("RISK_DEFAULT_MAX_POSITION_QTY", 50_000, minimum=1)
# Fat-finger tiers (orders.fat_finger; per-symbol overrides in the RiskLimit admin): above the
# warning notional or qty a human confirms; above the step-up notional a fresh OTP code too (a
# strategy: only within its max_unconfirmed_notional); a limit beyond the collar around the
# quote, or a share of the 20-day ADV above the maximum, is refused.
FAT_FINGER_WARN_NOTIONAL = env_decimal("FAT_FINGER_WARN_NOTIONAL", "5000", minimum="0")
FAT_FINGER_WARN_QTY = env_int("FAT_FINGER_WARN_QTY", 1000, minimum=0)
FAT_FINGER_STEP_UP_NOTIONAL = env_decimal("FAT_FINGER_STEP_UP_NOTIONAL", "10000", minimum="0")
FAT_FINGER_COLLAR_PCT = env_decimal("FAT_FINGER_COLLAR_PCT", "0.10", minimum="0")
FAT_FINGER_WARN_PCT_ADV = env_decimal("FAT_FINGER_WARN_PCT_ADV", "0.01", minimum="0")
FAT_FINGER_MAX_PCT_ADV = env_decimal("FAT_FINGER_MAX_PCT_ADV", "0.05", minimum="0")
# Checks run in order under the symbol's lock (like MIDDLEWARE). Each app contributes its own.
PRETRADE_CHECKS = [
    "orders.assets.check_asset",
    "orders.risk.check_kill_switch",
    "orders.risk.check_circuit_breaker",
    "reconciliation.risk.check_gate",
    "reconciliation.risk.check_quarantine",
    "orders.risk.check_max_order_qty",
    "orders.risk.check_max_order_notional",
    "orders.risk.check_position_limit",
    # Last: a market order without a fresh quote was answered 503 quote_stale above.
    "orders.fat_finger_checks.check_fat_finger",
]
# Hooks run before the risk transaction (they may call the network) to prepare check inputs.
PRETRADE_PREPARE = [
    "orders.assets.prepare_asset",
    "orders.risk.prepare_reference_price",
    "orders.fat_finger_checks.prepare_fat_finger",
    "reconciliation.risk.prepare_gate",
]
# Extra exposure (e.g. orphan orders) counted by the position-limit check.
PRETRADE_EXPOSURE_SOURCES = ["reconciliation.risk.orphan_exposure"]
CIRCUIT_BREAKER_REJECTS_TO_TRIP = env_int("CIRCUIT_BREAKER_REJECTS_TO_TRIP", 5, minimum=0)
CIRCUIT_BREAKER_WINDOW_SECONDS = env_int("CIRCUIT_BREAKER_WINDOW_SECONDS", 300, minimum=1)

# --- Reconciliation (plan §3) ---------------------------------------------------------------------
RECONCILIATION_INTERVAL_SECONDS = env_int("RECONCILIATION_INTERVAL_SECONDS", 300, minimum=30)
RECONCILIATION_MAX_AGE_SECONDS = env_int("RECONCILIATION_MAX_AGE_SECONDS", 900, minimum=60)
RECONCILIATION_TIMEOUT_SECONDS = env_int("RECONCILIATION_TIMEOUT_SECONDS", 300, minimum=1)
# A run slower than that must be reported (health, log), not killed by django-q before it can be;
# a startup or stream run may first wait that long for a run already going, then run itself.
Q_CLUSTER["timeout"] = max(Q_CLUSTER["timeout"], 2 * RECONCILIATION_TIMEOUT_SECONDS + 60)
Q_CLUSTER["retry"] = Q_CLUSTER["timeout"] + 60
RECONCILIATION_OVERLAP_SECONDS = env_int("RECONCILIATION_OVERLAP_SECONDS", 60, minimum=0)
RECONCILIATION_PAGE_SIZE = env_int("RECONCILIATION_PAGE_SIZE", 500, minimum=1)
RECONCILIATION_PROBE_LIMIT = env_int("RECONCILIATION_PROBE_LIMIT", 50, minimum=0)
RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS = env_int(
    "RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS", 120, minimum=0
)
ORPHAN_AUTO_CANCEL_SECONDS = env_int("ORPHAN_AUTO_CANCEL_SECONDS", 0, minimum=0)  # 0 = off
GATE_RETRY_AFTER_SECONDS = env_int("GATE_RETRY_AFTER_SECONDS", 30, minimum=1)

# --- Assets (the broker's list, cached: marketdata.assets) ---------------------------------------
# When the django-q2 job loads the whole list again (cron, UTC; before the US open by default).
ASSETS_REFRESH_CRON = env_cron("ASSETS_REFRESH_CRON", "0 11 * * *")

# --- TWAP (plan §1, §5) ---------------------------------------------------------------------------
MISFIRE_GRACE_SECONDS = env_int("MISFIRE_GRACE_SECONDS", 60, minimum=0)
MAX_SLICE_PCT_OF_ADV = env_decimal("MAX_SLICE_PCT_OF_ADV", "0.01", minimum="0")
LIQUIDITY_CHECK_ENABLED = env_bool("LIQUIDITY_CHECK_ENABLED", True)
ADV_LOOKBACK_DAYS = env_int("ADV_LOOKBACK_DAYS", 20, minimum=1)
ADV_CACHE_SECONDS = env_int("ADV_CACHE_SECONDS", 86_400, minimum=0)
# Input bounds of a plan (400 beyond them): one plan must stay a reviewable number of orders.
TWAP_MAX_SLICES = env_int("TWAP_MAX_SLICES", 2000, minimum=1)
TWAP_MAX_DURATION_MINUTES = env_int("TWAP_MAX_DURATION_MINUTES", 1440, minimum=1)
TWAP_MAX_INTERVAL_SECONDS = env_int("TWAP_MAX_INTERVAL_SECONDS", 3600, minimum=1)
# Run right before each slice is sent: check(order, plan, ctx) -> Rejection | None. Codes
# kill_switch / circuit_breaker block the slice, plan_inactive cancels it, any other code
# leaves it pending for a later tick. Other apps append theirs (reconciliation: gate, quarantine).
SLICE_PRESEND_CHECKS = [
    "orders.dispatch.slice_check_plan_active",
    "orders.dispatch.slice_check_kill_switch",
    "orders.dispatch.slice_check_circuit_breaker",
    "orders.assets.slice_check_asset",
    "reconciliation.risk.slice_check_gate",
    "reconciliation.risk.slice_check_quarantine",
    "orders.dispatch.slice_check_quote",
]
# run_slices: longest sleep between looks for due slices (it wakes earlier for a known due time),
# slices claimed per transaction, and threads sending them.
TWAP_DISPATCH_POLL_SECONDS = env_float("TWAP_DISPATCH_POLL_SECONDS", 0.25, minimum=0.01)
TWAP_DISPATCH_BATCH = env_int("TWAP_DISPATCH_BATCH", 50, minimum=1)
TWAP_DISPATCH_WORKERS = env_int("TWAP_DISPATCH_WORKERS", 2, minimum=1)
# A plan whose slice was deferred (gate, quarantine, unknown clock...) is not retried sooner.
TWAP_DISPATCH_RETRY_SECONDS = env_float("TWAP_DISPATCH_RETRY_SECONDS", 5.0, minimum=0)
# How long run_slices trusts one answer of the broker clock (one GET /v2/clock per period).
TWAP_CLOCK_CACHE_SECONDS = env_float("TWAP_CLOCK_CACHE_SECONDS", 5.0, minimum=0)
# Recovery looks up a claimed, unsent slice whose claim is older than this (or older than the
# latest dispatcher start): its claimer probably died. Longer than the slowest possible submit.
TWAP_CLAIM_STALE_SECONDS = env_int("TWAP_CLAIM_STALE_SECONDS", 120, minimum=1)

# --- Daily bars and signals (plan §2, §4; docs/signals.md) -------------------------------------
# Symbols the signal model ranks (also part of stream_quotes' universe).
SIGNAL_UNIVERSE = env_list(
    "SIGNAL_UNIVERSE",
    ["AAPL", "AMZN", "GOOGL", "JNJ", "JPM", "META", "MSFT", "NVDA", "TSLA", "XOM"],
)
BARS_SYNC_BATCH_SYMBOLS = env_int("BARS_SYNC_BATCH_SYMBOLS", 100, minimum=1)
MODEL_DIR = Path(env_str("MODEL_DIR", str(VAR_DIR / "models")))
MODEL_RELOAD_SECONDS = env_int("MODEL_RELOAD_SECONDS", 30, minimum=0)
FEATURE_HYDRATION_ENABLED = env_bool("FEATURE_HYDRATION_ENABLED", True)
FEATURE_HYDRATION_DAYS = env_int("FEATURE_HYDRATION_DAYS", 60, minimum=1)
FEATURE_HYDRATION_TIMEOUT_SECONDS = env_int("FEATURE_HYDRATION_TIMEOUT_SECONDS", 300, minimum=1)
# Re-hydrate after the close: 22:15 UTC is after 16:00 New York in winter and in summer.
FEATURE_HYDRATION_CRON = env_str("FEATURE_HYDRATION_CRON", "15 22 * * 1-5")
# Entries outlive the daily refresh by days (a missed day must not empty the cache); a cache
# found empty (Redis restarted, evicted) is refilled, never served cold.
FEATURE_CACHE_TTL_SECONDS = env_int("FEATURE_CACHE_TTL_SECONDS", 7 * 86_400, minimum=60)
SIGNALS_RETRY_AFTER_SECONDS = env_int("SIGNALS_RETRY_AFTER_SECONDS", 30, minimum=1)
SIGNAL_TOP_N = env_int("SIGNAL_TOP_N", 3, minimum=0)
SIGNAL_BOTTOM_N = env_int("SIGNAL_BOTTOM_N", 3, minimum=0)
SHADOW_VALIDATION_ENABLED = env_bool("SHADOW_VALIDATION_ENABLED", True)
SKIP_SHADOW_VALIDATION = env_bool("SKIP_SHADOW_VALIDATION", False)
SHADOW_SAMPLE_COUNT = env_int("SHADOW_SAMPLE_COUNT", 100, minimum=3)
SHADOW_MIN_CORRELATION = env_float("SHADOW_MIN_CORRELATION", 0.5, minimum=-1.0)
SHADOW_MAX_DIVERGENCE = env_float("SHADOW_MAX_DIVERGENCE", 0.5, minimum=0.0)
SHADOW_VALIDATION_TIMEOUT_SECONDS = env_int("SHADOW_VALIDATION_TIMEOUT_SECONDS", 600, minimum=10)
Q_CLUSTER["timeout"] = max(Q_CLUSTER["timeout"], FEATURE_HYDRATION_TIMEOUT_SECONDS + 60)
Q_CLUSTER["retry"] = max(Q_CLUSTER["retry"], Q_CLUSTER["timeout"] + 60)

# --- Quotes (issue 11; docs/marketdata.md) ---------------------------------------------------
# stream_quotes watches these symbols plus every symbol in play (open orders, positions, active
# TWAP plans: QUOTE_UNIVERSE_SOURCES, each app adds its own) and the signal universe.
QUOTE_SYMBOLS = env_list("QUOTE_SYMBOLS", [])
QUOTE_UNIVERSE_SOURCES = ["orders.selectors.symbols_in_play"]
QUOTE_UNIVERSE_REFRESH_SECONDS = env_float("QUOTE_UNIVERSE_REFRESH_SECONDS", 30.0, minimum=0.1)
# A quote older than this is never used: a market order is refused 503 quote_stale instead.
QUOTE_MAX_AGE_SECONDS = env_float("QUOTE_MAX_AGE_SECONDS", 60.0, minimum=0.1)
QUOTE_RETRY_AFTER_SECONDS = env_int("QUOTE_RETRY_AFTER_SECONDS", 5, minimum=1)
# The ingestor's ring buffer (per symbol) and its own HTTP endpoint serving it.
QUOTE_BUFFER_SIZE = env_int("QUOTE_BUFFER_SIZE", 100, minimum=1)
QUOTE_FALLBACK_HOST = env_str("QUOTE_FALLBACK_HOST", "127.0.0.1")
QUOTE_FALLBACK_PORT = env_int("QUOTE_FALLBACK_PORT", 8766, minimum=0)
QUOTE_FALLBACK_URL = env_str(
    "QUOTE_FALLBACK_URL", f"http://{QUOTE_FALLBACK_HOST}:{QUOTE_FALLBACK_PORT or 8766}"
)
# Each hop of QuoteClient has its own short timeout: no hop can hang a request.
QUOTE_REDIS_TIMEOUT_SECONDS = env_float("QUOTE_REDIS_TIMEOUT_SECONDS", 0.25, minimum=0.01)
QUOTE_FALLBACK_TIMEOUT_SECONDS = env_float("QUOTE_FALLBACK_TIMEOUT_SECONDS", 0.5, minimum=0.01)
QUOTE_BROKER_TIMEOUT_SECONDS = env_float("QUOTE_BROKER_TIMEOUT_SECONDS", 2.0, minimum=0.1)
# The ingestor's heartbeat row (state visible to the web even while Redis is down) and its
# Redis retry back-off cap.
QUOTE_HEARTBEAT_SECONDS = env_float("QUOTE_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
QUOTE_REDIS_RETRY_MAX_SECONDS = env_float("QUOTE_REDIS_RETRY_MAX_SECONDS", 5.0, minimum=0.01)

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"level": LOG_LEVEL}
        for name in ("tradeops", "orders", "reconciliation", "signals", "marketdata", "paperbroker")
    },
}

# Decimal places of notional amounts (prices keep 4: DESIGN §3).
NOTIONAL_PLACES = Decimal("0.01")

# --- Health ------------------------------------------------------------------------------------
HEALTH_CHECKS = [
    "tradeops.health.check_database",
    "tradeops.health.check_broker",
    "reconciliation.health.check_gate",
    "orders.health.check_twap_dispatch",
    "signals.health.check_signals",
    "marketdata.health.check_quotes",
]
# Gauges read from the database at scrape time (tradeops.metrics): each app lists its own.
METRICS_DB_GAUGES = [
    "orders.health.order_gauges",
    "reconciliation.health.gate_gauges",
    "signals.health.signals_gauges",
    "marketdata.health.ingestor_gauges",
]
