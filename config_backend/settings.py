"""Settings, read from the environment (12-factor).

Every variable is listed in `.env.example`. A bad value fails loudly at start-up with
ImproperlyConfigured naming the variable. Unset, the defaults are safe for production
(`DEBUG` off) and fall back to the embedded SQLite file and local-memory cache.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config_backend.environment import (
    env_bool,
    env_int,
    env_list,
    env_sentinel_service,
    env_sentinels,
    env_url,
    shown,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set (or DEBUG=1 for a local development run)."
        )
    SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Three floors, each importing only from those listed before it (README "Layout").
    "core",
    "tools",
    "snippets",
    "assistants",
    "threads",
    "webhooks",
    "outcomes",
    "config_backend",
]

MIDDLEWARE = [
    # First: its id, line and timing cover everything the others do (config hits that the
    # cache answers skip all middleware; core.reads.fast_path logs them the same way).
    "core.ops.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin in the browser's language (en, ru); the API stays in LANGUAGE_CODE.
    "core.ops.admin_language.AdminLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.ops.middleware.CacheUnavailableMiddleware",
    "core.ops.middleware.ChangeContextMiddleware",
]

ROOT_URLCONF = "config_backend.urls"
WSGI_APPLICATION = "config_backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Database: DATABASE_URL, else the embedded SQLite file for a first local run.
DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
# PostgreSQL connections come from a pool in each process (psycopg-pool, through Django's
# OPTIONS["pool"]; off with DATABASE_POOL=0): a request borrows one and gives it back, so a burst
# of misses and writes opens no connections. At most DATABASE_POOL_MAX_SIZE per process
# (docs/production-server.md, "Sizing PostgreSQL's max_connections"); a request that finds them
# all busy waits up to DATABASE_POOL_TIMEOUT_MS, then is answered 503 (as with the database
# down). Django checks a connection before lending it (CONN_HEALTH_CHECKS: the pool's `check`),
# so one cut by a PostgreSQL restart is replaced, never handed out.
DATABASE_POOL = env_bool("DATABASE_POOL", True)
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 2)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10)
DATABASE_POOL_TIMEOUT_MS = env_int("DATABASE_POOL_TIMEOUT_MS", 500)
if not 0 <= DATABASE_POOL_MIN_SIZE <= DATABASE_POOL_MAX_SIZE or DATABASE_POOL_MAX_SIZE < 1:
    raise ImproperlyConfigured(
        "DATABASE_POOL_MIN_SIZE must be 0 or more and at most DATABASE_POOL_MAX_SIZE, which must "
        f"be at least 1 (got {DATABASE_POOL_MIN_SIZE} and {DATABASE_POOL_MAX_SIZE})."
    )
if DATABASE_POOL_TIMEOUT_MS < 1:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_TIMEOUT_MS must be at least 1 (got {DATABASE_POOL_TIMEOUT_MS})."
    )
if DATABASE_URL:
    try:
        DATABASES = {
            "default": dj_database_url.parse(
                DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
            )
        }
    except ValueError as exc:  # dj_database_url.ParseError: a part not properly quoted
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a valid URL: {exc} (got {shown(DATABASE_URL)})."
        ) from None
    if DATABASE_POOL and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them (Django requires 0)
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "name": "config-backend",
            "min_size": DATABASE_POOL_MIN_SIZE,
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": DATABASE_POOL_TIMEOUT_MS / 1000,
            # A reconnection that keeps failing (PostgreSQL down) gives up after this long
            # (the pool's back-off is a second, doubling), and the next request that waits
            # starts a new one at once: so requests, not a back-off, pace the attempts, and
            # the first request after PostgreSQL is back gets a connection.
            "reconnect_timeout": 0.2,
        }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
    }

# Each worker of the production server (core.asgi_app) works on at most this many requests in
# Django at once (cache hits, answered in the event loop, and health probes don't count); the
# rest wait in the event loop, holding no database connection, up to DJANGO_QUEUE_WAIT_MS, then
# are answered 503. So a burst (made-up API keys, a stampede of misses) costs no more than this
# many requests at a time, and cache hits go on being answered beside it. Default: one per
# pooled database connection, so a request in Django never waits for one.
MAX_DJANGO_REQUESTS_PER_WORKER = env_int("MAX_DJANGO_REQUESTS_PER_WORKER", DATABASE_POOL_MAX_SIZE)
DJANGO_QUEUE_WAIT_MS = env_int("DJANGO_QUEUE_WAIT_MS", 5000)
if MAX_DJANGO_REQUESTS_PER_WORKER < 1 or DJANGO_QUEUE_WAIT_MS < 1:
    raise ImproperlyConfigured(
        "MAX_DJANGO_REQUESTS_PER_WORKER and DJANGO_QUEUE_WAIT_MS must be at least 1 (got "
        f"{MAX_DJANGO_REQUESTS_PER_WORKER} and {DJANGO_QUEUE_WAIT_MS})."
    )

# Config entries are cached unless this is 0 (for benchmarks and debugging; revisions, API-key
# records and consistency work the same either way).
CONFIG_CACHE_ENTRIES = env_bool("CONFIG_CACHE_ENTRIES", True)

# Concurrent misses of one config entry: one request builds it, the others wait at most this
# long for it (then build themselves); also how long the builder's lock lives (core.reads.build).
CONFIG_BUILD_WAIT_MS = env_int("CONFIG_BUILD_WAIT_MS", 2000)
if CONFIG_BUILD_WAIT_MS < 0:
    raise ImproperlyConfigured(
        f"CONFIG_BUILD_WAIT_MS must be 0 or more (got {CONFIG_BUILD_WAIT_MS})."
    )

# A cached API-key record lives at most this long: a key revoked other than through the admin,
# a command or the API (a bare UPDATE, an operator's SQL) or while Redis was unreachable stops
# working within it. It also bounds how long cached configs are served to a key while the
# database is down.
API_KEY_RECORD_SECONDS = env_int("API_KEY_RECORD_SECONDS", 60)
if API_KEY_RECORD_SECONDS < 1:
    raise ImproperlyConfigured(
        f"API_KEY_RECORD_SECONDS must be at least 1 (got {API_KEY_RECORD_SECONDS})."
    )

# Labels only staff with `move_protected_label` (or API keys created with --protected) may
# move (docs/contract.md "Labels"; config_backend.history.labels).
PROTECTED_LABELS = env_list("PROTECTED_LABELS", "production")

# Four-eyes approvals (docs/approvals.md): when above 0, every change to a protected label
# becomes a request that needs this many approvals by other staff; requests expire after
# LABEL_REQUEST_TTL seconds (default 7 days).
LABEL_APPROVALS = env_int("LABEL_APPROVALS", 0)
LABEL_REQUEST_TTL = env_int("LABEL_REQUEST_TTL", 7 * 24 * 3600)
if not 0 <= LABEL_APPROVALS <= 10:
    raise ImproperlyConfigured(f"LABEL_APPROVALS must be 0 (off) to 10 (got {LABEL_APPROVALS}).")
if LABEL_REQUEST_TTL < 60:
    raise ImproperlyConfigured(
        f"LABEL_REQUEST_TTL must be at least 60 seconds (got {LABEL_REQUEST_TTL})."
    )

# Cache: REDIS_URL, or Redis Sentinel (REDIS_SENTINELS), else an in-process local-memory cache
# (one process only).
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
REDIS_SENTINELS = env_sentinels("REDIS_SENTINELS")
REDIS_SENTINEL_SERVICE = env_sentinel_service("REDIS_SENTINEL_SERVICE", "mymaster")
if REDIS_URL and REDIS_SENTINELS:
    raise ImproperlyConfigured(
        "Set REDIS_URL (one Redis) or REDIS_SENTINELS (Redis behind Sentinel), not both."
    )
# Short timeouts: a dead or hung Redis must not hold a request.
_REDIS_TIMEOUTS = {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25}
if REDIS_SENTINELS:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def _check_master_on_connect(connection):
        """Each new connection to the master re-seeds the revision mirrors first if that server
        did not seed them (a promoted replica; README "Redis Sentinel"; core.store)."""
        from core.store import check_master_on_connect

        check_master_on_connect(connection)

    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            # django-redis's form: the host is the Sentinel service name (its master), then db.
            "LOCATION": f"redis://{REDIS_SENTINEL_SERVICE}/0",
            "KEY_PREFIX": "cfg",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": REDIS_SENTINELS,
                # Asking the sentinels for the master is as short, and not retried (redis-py
                # would retry a dead sentinel ten times with back-off): the next one is asked.
                "SENTINEL_KWARGS": {
                    "socket_connect_timeout": 0.25,
                    "socket_timeout": 0.25,
                    "retry": Retry(NoBackoff(), 0),
                },
                "CONNECTION_POOL_KWARGS": {"redis_connect_func": _check_master_on_connect},
                **_REDIS_TIMEOUTS,
            },
        }
    }
elif REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cfg",
            "OPTIONS": _REDIS_TIMEOUTS,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "config-backend",
            "KEY_PREFIX": "cfg",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The admin follows the browser's language among these (core.ops.admin_language); our strings'
# Russian is in locale/ (docs/admin.md "Translations"), Django's own admin has its own.
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Requests: a config body is small; anything larger is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# A tool's input schema, however it arrives (API object or string, admin, import file), is
# bounded before the JSON Schema metaschema walk (tools.metaschema, jsonschema-rs), so any
# schema is accepted or refused within a second (bench/schema_bench.py). 5,000 values (objects,
# arrays and scalars) hold OpenAI's 5,000-property strict limit's worth of simple properties;
# checking a `pattern` is Python's regex parser, about 7 µs a character at worst, hence its own
# bound.
SCHEMA_MAX_DEPTH = env_int("SCHEMA_MAX_DEPTH", 32)
SCHEMA_MAX_VALUES = env_int("SCHEMA_MAX_VALUES", 5_000)
SCHEMA_MAX_BYTES = env_int("SCHEMA_MAX_BYTES", 262_144)
SCHEMA_MAX_PATTERN_CHARACTERS = env_int("SCHEMA_MAX_PATTERN_CHARACTERS", 65_536)
# A request body or config file may nest a little deeper than the schemas it carries.
JSON_MAX_DEPTH = SCHEMA_MAX_DEPTH + 8

# Strict tools (docs/contract.md "Tool schema strictness", rules 8 and 9). The schema limits
# default to what OpenAI publishes for strict function calling / structured outputs ("Supported
# schemas": 5,000 object properties in all, 10 levels of nesting, 1,000 enum values, 120,000
# characters of property names, definition names, enum and const values, and 15,000 characters
# for one string enum of more than 250 values); lower them if your provider's are lower.
STRICT_SCHEMA_MAX_PROPERTIES = env_int("STRICT_SCHEMA_MAX_PROPERTIES", 5_000)
STRICT_SCHEMA_MAX_NESTING = env_int("STRICT_SCHEMA_MAX_NESTING", 10)
STRICT_SCHEMA_MAX_ENUM_VALUES = env_int("STRICT_SCHEMA_MAX_ENUM_VALUES", 1_000)
STRICT_SCHEMA_MAX_STRING_LENGTH = env_int("STRICT_SCHEMA_MAX_STRING_LENGTH", 120_000)
STRICT_SCHEMA_LARGE_ENUM_VALUES = env_int("STRICT_SCHEMA_LARGE_ENUM_VALUES", 250)
STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH = env_int("STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH", 15_000)
# Rule 9: active tools (active links to active tools) per assistant. OpenAI's API takes at
# most 128 tools in one request.
MAX_TOOLS_PER_ASSISTANT = env_int("MAX_TOOLS_PER_ASSISTANT", 128)
# Rule 12's size bound: an assistant's (expanded) instructions, in UTF-8 bytes. The history
# keeps every version, and each is read back by diffs, pages and configs at a revision.
MAX_INSTRUCTIONS_BYTES = env_int("MAX_INSTRUCTIONS_BYTES", 262_144)
# Model settings (docs/agent-config.md): the bounds assistants/model_settings.schema.json takes
# from here at load. 128,000 is the largest output any current OpenAI model allows.
MAX_OUTPUT_TOKENS = env_int("MAX_OUTPUT_TOKENS", 128_000)
REASONING_EFFORTS = env_list("REASONING_EFFORTS", "none,minimal,low,medium,high")
for _name in (
    "STRICT_SCHEMA_MAX_PROPERTIES",
    "STRICT_SCHEMA_MAX_NESTING",
    "STRICT_SCHEMA_MAX_ENUM_VALUES",
    "STRICT_SCHEMA_MAX_STRING_LENGTH",
    "STRICT_SCHEMA_LARGE_ENUM_VALUES",
    "STRICT_SCHEMA_MAX_LARGE_ENUM_LENGTH",
    "MAX_TOOLS_PER_ASSISTANT",
    "MAX_INSTRUCTIONS_BYTES",
    "MAX_OUTPUT_TOKENS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1 (got {globals()[_name]}).")

# TLS, usually terminated by a proxy that sets X-Forwarded-Proto.
HTTPS = env_bool("HTTPS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Logs (README "Logs and metrics"): one line per request and whatever the code logs, on stderr.
# `json`: one JSON object per line (the container's default); `console`: readable lines.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or "console"
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console (got {shown(LOG_FORMAT)}).")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.ops.log_formats.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "core.ops.log_formats.json_formatter"},
        "console": {"()": "core.ops.log_formats.ConsoleFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Prometheus metrics at /metrics (core.ops.metrics): off unless METRICS_ENABLED (then 404); when
# METRICS_TOKEN is set, a scrape must send `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()

# Config change events (`GET /api/v1/config/events/`, core.events): a reconnect that missed more
# than SSE_MAX_REPLAY events gets one `reset` instead; a stream with nothing to say writes a
# keep-alive comment every SSE_HEARTBEAT_SECONDS (and its key is re-checked twice as often).
SSE_MAX_REPLAY = env_int("SSE_MAX_REPLAY", 100)
SSE_HEARTBEAT_SECONDS = env_int("SSE_HEARTBEAT_SECONDS", 15)
if SSE_MAX_REPLAY < 0 or SSE_HEARTBEAT_SECONDS < 1:
    raise ImproperlyConfigured(
        "SSE_MAX_REPLAY must be 0 or more and SSE_HEARTBEAT_SECONDS at least 1 "
        f"(got {SSE_MAX_REPLAY} and {SSE_HEARTBEAT_SECONDS})."
    )

# Outcomes (docs/outcomes.md): hourly buckets are rolled into daily ones after
# OUTCOMES_HOURLY_DAYS and deleted after OUTCOMES_RETENTION_DAYS (`prune_outcomes`); a POST may
# report hours at most OUTCOMES_MAX_AGE_HOURS old (so it never adds to an hour already rolled
# up); an Idempotency-Key is remembered OUTCOMES_IDEMPOTENCY_HOURS.
OUTCOMES_RETENTION_DAYS = env_int("OUTCOMES_RETENTION_DAYS", 400)
OUTCOMES_HOURLY_DAYS = env_int("OUTCOMES_HOURLY_DAYS", 30)
OUTCOMES_MAX_AGE_HOURS = env_int("OUTCOMES_MAX_AGE_HOURS", 168)
OUTCOMES_IDEMPOTENCY_HOURS = env_int("OUTCOMES_IDEMPOTENCY_HOURS", 48)
if not OUTCOMES_MAX_AGE_HOURS < OUTCOMES_HOURLY_DAYS * 24 <= OUTCOMES_RETENTION_DAYS * 24:
    raise ImproperlyConfigured(
        "Need OUTCOMES_MAX_AGE_HOURS < OUTCOMES_HOURLY_DAYS × 24 ≤ OUTCOMES_RETENTION_DAYS × 24."
    )
if OUTCOMES_IDEMPOTENCY_HOURS < 24:
    raise ImproperlyConfigured("OUTCOMES_IDEMPOTENCY_HOURS must be at least 24.")

# Webhooks (docs/webhooks.md): the delays before each retry of a failed delivery (seconds,
# comma-separated; after the last the delivery is marked failed), and the hosts a destination
# may name although they resolve to loopback, private or link-local addresses.
_retry_delays = env_list("WEBHOOK_RETRY_DELAYS", "15,60,240,960,3840,15360,61440")
try:
    WEBHOOK_RETRY_DELAYS = [float(delay) for delay in _retry_delays]
except ValueError:
    WEBHOOK_RETRY_DELAYS = None
if WEBHOOK_RETRY_DELAYS is None or not all(0 <= d <= 604_800 for d in WEBHOOK_RETRY_DELAYS):
    raise ImproperlyConfigured(
        "WEBHOOK_RETRY_DELAYS must be seconds (0 to 604800, a week) separated by commas "
        f"(got {shown(os.environ.get('WEBHOOK_RETRY_DELAYS', ''))})."
    )
WEBHOOK_ALLOWED_HOSTS = [host.lower() for host in env_list("WEBHOOK_ALLOWED_HOSTS", "")]

# REST API (`/api/v1/`): API keys (Bearer) for clients, the admin session for staff.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.auth.BearerKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.auth.ScopeOrModelPermission"],
    "DEFAULT_PARSER_CLASSES": ["core.api.views.StorableJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.views.ApiPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Assistant config backend API",
    "DESCRIPTION": (
        "Resolved runtime configs of the assistants, config writes, and users' threads.\n\n"
        "Send `Authorization: Bearer <key>`. Scopes: `read` = every GET; `runtime` = read + "
        "thread writes; `write` = read + config writes.\n\n"
        "A PATCH changes only the fields it sends; a POST or PUT gives an omitted field the "
        "default its description names. Request schemas declare no `default`, so that a "
        "generated client sends only what its caller set.\n\n"
        'Errors have one body schema per status: 400 `BadRequest` (`{"field": ["message"]}`, '
        'or `{"detail": "..."}` when the body is not usable JSON), 409 `ReferencedError`, '
        'every other status `Error` (`{"detail": "..."}`). A 403\'s `detail` names the scope '
        "(API key) or the Django permission (staff session) needed."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.errors.add_error_components",
    ],
}
