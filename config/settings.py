"""serversync settings: every value comes from the environment with a safe default.

The README's configuration table documents each variable.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.env import env_bool, env_int, env_list, env_str

# Django's generic classes (ModelAdmin, ModelForm, Field, Paginator) accept type
# parameters at run time, as the type checker asks of their subclasses.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("SERVERSYNC_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)

# Fixed development keys: only ever used with DEBUG on, never in production.
_DEV_SECRET_KEY = "serversync-development-only-secret-key-do-not-use-in-production"  # noqa: S105
_DEV_CREDENTIAL_KEY = "c2VydmVyc3luYy1kZXZlbG9wbWVudC1vbmx5LWtleSE="

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE), or DEBUG=true for development."
        )
    SECRET_KEY = _DEV_SECRET_KEY

# Fernet keys for credentials at rest, newest first; older keys still decrypt
# until `manage.py rotate_credential_keys` has re-encrypted everything.
CREDENTIAL_KEYS = env_list("CREDENTIAL_KEYS")
if not CREDENTIAL_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "CREDENTIAL_KEYS is not set: serversync cannot encrypt mailbox credentials. "
            'Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())" and set CREDENTIAL_KEYS (or CREDENTIAL_KEYS_FILE).'
        )
    CREDENTIAL_KEYS = [_DEV_CREDENTIAL_KEY]

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost 127.0.0.1 [::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # django.contrib.admin with a site whose access follows the administrator role.
    "config.apps.ServersyncAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # htmx for the pages, from the package's own static files (no copy committed).
    "django_htmx",
    # Failed sign-ins, counted per account and per address (its tables come with it).
    "axes",
    "crm",
    "profiles",
    "mailboxes",
    "sync",
    # The web UI (pages, templates, static files): the top floor.
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "web.permissions_policy.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a body (sessions, CSRF): an oversized one is refused unread.
    "web.request_size.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "console.views.context.roles",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    default_url = f"sqlite:///{DATA_DIR / 'serversync.sqlite3'}"
    config: dict[str, Any] = dict(dj_database_url.parse(env_str("DATABASE_URL", default_url)))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # The embedded default: WAL lets the web app, worker and beat read while
        # one writes; IMMEDIATE transactions plus a busy timeout queue writers
        # instead of failing with "database is locked".
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
        }
    else:
        config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "media/"


def _storages() -> dict[str, Any]:
    backend = env_str("FILE_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
    raw_options = env_str("FILE_STORAGE_OPTIONS", "{}")
    try:
        options = json.loads(raw_options)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"FILE_STORAGE_OPTIONS is not valid JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ImproperlyConfigured("FILE_STORAGE_OPTIONS must be a JSON object.")
    return {
        "default": {"BACKEND": backend, "OPTIONS": options},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    }


STORAGES = _storages()

# The pages' own sign-in; the admin site keeps its login at /admin/login/.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
ADMINISTRATORS_GROUP = "Administrators"

# Security defaults; HTTPS=true behind a TLS-terminating proxy turns on the rest.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    # Load balancers probe the app itself over plain HTTP, without the proxy's header.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]

# Content-Security-Policy (django-csp): scripts only from our own static files, no
# inline script, no eval. Inline styles stay allowed: the dashboard's pygal charts
# carry their <style> inside the SVG, and htmx adds its indicator style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Browser features no page of serversync uses, switched off for every page
# (web.permissions_policy.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = env_str(
    "PERMISSIONS_POLICY",
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), "
    "screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()",
)

# Request bodies (web.request_size): every route refuses a body over REQUEST_MAX_BYTES
# with 413 before reading it; the upload routes (named here) allow UPLOAD_MAX_BYTES.
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 2621440, minimum=1024)  # 2.5 MiB, Django's own default
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 100 * 1024 * 1024, minimum=1024)
UPLOAD_URL_NAMES = frozenset({"migration", "profiles-new", "profiles-edit", "router-migration-list"})
# Django's own limit on a body read into memory (and form fields beside uploaded
# files) follows the same cap, so the two never disagree.
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES

# Failed sign-ins (django-axes, on /login/ and /admin/login/): after AXES_FAILURE_LIMIT
# failures an account is locked, and so, separately, is the address they came from,
# for AXES_COOLOFF_MINUTES or until an administrator runs `manage.py axes_reset`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "web.sign_in_lockout.locked_out"
# Unlocking is `manage.py axes_reset` (or axes_reset_username / axes_reset_ip); the
# attempt tables stay out of the admin site, whose pages follow the administrator role.
AXES_ENABLE_ADMIN = False
# A locked-out account's further tries do not push its unlock further away.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The address is the connection's own unless proxies in front set X-Forwarded-For:
# trusting the header without them would let a guesser pick a new address per try.
AXES_IPWARE_PROXY_COUNT = env_int("AXES_IPWARE_PROXY_COUNT", 0, minimum=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Shared by the processes of one installation (API throttle counts); unset, each
# process counts on its own.
CACHE_URL = env_str("CACHE_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Monitoring: the bearer token of /health/status/. Unset, only administrators'
# sessions may read it and everyone else gets 404.
SERVERSYNC_STATUS_TOKEN = env_str("SERVERSYNC_STATUS_TOKEN")
if SERVERSYNC_STATUS_TOKEN and len(SERVERSYNC_STATUS_TOKEN) < 24:
    raise ImproperlyConfigured(
        "SERVERSYNC_STATUS_TOKEN is too short (24 characters at least). Generate one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )

# System SMTP settings, used for notification email (never for mailbox mail).
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "serversync@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set at most one of EMAIL_USE_TLS and EMAIL_USE_SSL.")


def _throttle_rate(name: str, default: str) -> str:
    # DRF reads a rate only at the first request; a typo stops start-up here instead.
    rate = env_str(name, default)
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", rate):
        raise ImproperlyConfigured(
            f"{name}={rate!r} is not a rate like 300/minute (per second, minute, hour or day)."
        )
    return rate


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    # Every view carries web.api_base.ApiConventions; these defaults are the same, so a view
    # that forgot it still has the bounded JSON parser, the scoped filters and the error answers.
    "DEFAULT_PARSER_CLASSES": [
        "web.api_parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "web.api_filters.ApiFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "web.api_base.ApiSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # A runaway script slows down (429 with Retry-After); no person or integration
    # working normally comes near these rates.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": _throttle_rate("API_THROTTLE_ANON", "300/minute"),
        "user": _throttle_rate("API_THROTTLE_USER", "3000/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "serversync API",
    "DESCRIPTION": "Server-side synchronization between mail servers and the CRM.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI's files come from the installed drf-spectacular-sidecar
    # package, so the docs work offline and nothing third-party is committed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AuthProtocolEnum": "profiles.models.AuthProtocol",
        "IncomingMethodEnum": "crm.choices.IncomingMethod",
        "OutgoingMethodEnum": "crm.choices.OutgoingMethod",
        "ActMethodEnum": "crm.choices.ActMethod",
        "TrackIncomingEmailEnum": "crm.choices.TrackIncomingEmail",
        "SyncStatusEnum": "crm.choices.SyncStatus",
        "RouterMigrationStateEnum": "mailboxes.models.RouterMigrationState",
        "FieldDirectionEnum": "sync.models.FieldDirection",
        "RolloutStateEnum": "sync.models.Rollout.State",
    },
}

# Celery: JSON only, so tasks carry ids and never pickled model instances.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
_BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: one shared folder, no server to run.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_result_backend = f"file://{DATA_DIR / 'results'}"
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
    _default_result_backend = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_result_backend)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "incoming", "outgoing", "act")]
CELERY_TASK_ROUTES = {
    "sync.tasks.incoming_*": {"queue": "incoming"},
    "sync.tasks.outgoing_*": {"queue": "outgoing"},
    "sync.tasks.act_*": {"queue": "act"},
    "sync.tasks.test_and_enable_*": {"queue": "default"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker out of reach past Celery's default 100 retries (about 50 minutes) would end the
# worker, for someone to restart by hand; it keeps trying instead (tests/faults/test_services.py).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, Any] = {
    "dispatch-due-mailboxes": {
        "task": "sync.tasks.dispatch",
        "schedule": env_int("SYNC_DISPATCH_SECONDS", 30, minimum=1),
    },
    # Idempotent: recomputes the current and previous hour each time.
    "rollup-recent-hours": {"task": "sync.tasks.rollup_recent", "schedule": 300},
    "check-profile-health": {"task": "sync.tasks.check_profile_health", "schedule": 300},
    "cleanup-retention": {"task": "sync.tasks.cleanup", "schedule": 3600},
    # Paced rollouts: each run starts at most one due batch per rollout.
    "rollout-tick": {"task": "sync.tasks.rollout_tick", "schedule": 60},
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# The sync engine.
# A PEM bundle of CAs to trust for mail servers besides the system's (private CAs).
SYNC_CA_FILE = env_str("SYNC_CA_FILE") or None
SYNC_TRANSIENT_RETRY_LIMIT = env_int("SYNC_TRANSIENT_RETRY_LIMIT", 10, minimum=1)
SYNC_TRANSIENT_RETRY_MINUTES = env_int("SYNC_TRANSIENT_RETRY_MINUTES", 5, minimum=1)
# An app certificate (Exchange, Entra ID) is alerted on this many days before it expires.
SYNC_CERTIFICATE_WARNING_DAYS = env_int("SYNC_CERTIFICATE_WARNING_DAYS", 30, minimum=1)
# The longest a server's Retry-After (or EWS BackOffMilliseconds) makes a mailbox wait.
SYNC_THROTTLE_MAX_WAIT_SECONDS = env_int("SYNC_THROTTLE_MAX_WAIT_SECONDS", 900, minimum=1)
# A profile outage: this many mailboxes of one profile failing to connect within the
# window is the server, not the mailboxes; they wait without spending retries.
SYNC_OUTAGE_MIN_MAILBOXES = env_int("SYNC_OUTAGE_MIN_MAILBOXES", 3, minimum=2)
SYNC_OUTAGE_WINDOW_SECONDS = env_int("SYNC_OUTAGE_WINDOW_SECONDS", 300, minimum=1)
SYNC_RUN_MAX_MESSAGES = env_int("SYNC_RUN_MAX_MESSAGES", 200, minimum=1)
SYNC_RUN_MAX_SECONDS = env_int("SYNC_RUN_MAX_SECONDS", 120, minimum=1)
# Appointments, contacts and tasks read or written in one run (sync.act); the rest next run.
SYNC_ACT_RUN_MAX_ITEMS = env_int("SYNC_ACT_RUN_MAX_ITEMS", 200, minimum=1)
SYNC_MAX_MESSAGE_BYTES = env_int("SYNC_MAX_MESSAGE_BYTES", 50 * 1024 * 1024, minimum=1024)
# Header blocks beyond what any real mailer writes are quarantined before parsing
# (thousands of fields would otherwise cost the parser minutes).
SYNC_MAX_HEADER_COUNT = env_int("SYNC_MAX_HEADER_COUNT", 1000, minimum=50)
SYNC_MAX_HEADER_BYTES = env_int("SYNC_MAX_HEADER_BYTES", 1024 * 1024, minimum=16 * 1024)
# Incoming messages stored per transaction (each commit costs a disk flush, each batch
# a few statements; as many as an IMAP download brings); a crash loses at most one
# batch's work, which the next run reads again.
SYNC_BATCH_MESSAGES = env_int("SYNC_BATCH_MESSAGES", 50, minimum=1)
# A message that takes longer than this to parse and store is quarantined; the run goes on.
SYNC_MESSAGE_MAX_SECONDS = env_int("SYNC_MESSAGE_MAX_SECONDS", 60, minimum=1)
SYNC_IDLE_BACKOFF_MAX_MINUTES = env_int("SYNC_IDLE_BACKOFF_MAX_MINUTES", 30, minimum=1)
# Paced rollout of test & enable (Dynamics' best practice: 200 mailboxes per 5 hours).
SYNC_ROLLOUT_BATCH_SIZE = env_int("SYNC_ROLLOUT_BATCH_SIZE", 200, minimum=1)
SYNC_ROLLOUT_WINDOW_MINUTES = env_int("SYNC_ROLLOUT_WINDOW_MINUTES", 300, minimum=1)
# Email Router migration: migrated profiles and mailboxes "process email from" this
# many hours before the migration (a later router threshold is kept per mailbox).
ROUTER_MIGRATION_PROCESS_EMAIL_HOURS = env_int("ROUTER_MIGRATION_PROCESS_EMAIL_HOURS", 24, minimum=0)
SYNC_LEASE_SECONDS = env_int("SYNC_LEASE_SECONDS", 600, minimum=30)
# Due mailboxes one tick looks at per kind: above what 100,000 mailboxes need at their peak
# (6,000 a tick, bench/README.md's capacity model); a lower cap leaves them waiting, silently.
SYNC_DISPATCH_BATCH = env_int("SYNC_DISPATCH_BATCH", 10000, minimum=1)
SYNC_HEARTBEAT_SECONDS = env_int("SYNC_HEARTBEAT_SECONDS", 30, minimum=1)
# A profile is unhealthy when more than this share of its mailboxes that ran in the
# last hour failed (and at least this many ran): an Error alert, an email to its owner.
SYNC_PROFILE_ALERT_FAILING_PERCENT = env_int("SYNC_PROFILE_ALERT_FAILING_PERCENT", 50, minimum=0)
SYNC_PROFILE_ALERT_MIN_MAILBOXES = env_int("SYNC_PROFILE_ALERT_MIN_MAILBOXES", 2, minimum=1)
# Retention, in days; the hourly cleanup deletes in batches within a time budget.
SYNC_RETAIN_RAW_MESSAGES_DAYS = env_int("SYNC_RETAIN_RAW_MESSAGES_DAYS", 365, minimum=1)
SYNC_RETAIN_SYNC_RUNS_DAYS = env_int("SYNC_RETAIN_SYNC_RUNS_DAYS", 30, minimum=1)
SYNC_RETAIN_RESOLVED_ALERTS_DAYS = env_int("SYNC_RETAIN_RESOLVED_ALERTS_DAYS", 90, minimum=1)
SYNC_RETAIN_RECEIPTS_DAYS = env_int("SYNC_RETAIN_RECEIPTS_DAYS", 365, minimum=1)
SYNC_RETAIN_ACT_PROBLEMS_DAYS = env_int("SYNC_RETAIN_ACT_PROBLEMS_DAYS", 90, minimum=1)
SYNC_RETAIN_PENDING_MIGRATIONS_DAYS = env_int("SYNC_RETAIN_PENDING_MIGRATIONS_DAYS", 30, minimum=1)
SYNC_CLEANUP_BATCH = env_int("SYNC_CLEANUP_BATCH", 1000, minimum=1)
SYNC_CLEANUP_MAX_SECONDS = env_int("SYNC_CLEANUP_MAX_SECONDS", 300, minimum=1)

# Push (manage.py listen)
# A listener's hold on its mailboxes lapses this long after its last heartbeat; another takes them then.
PUSH_LEASE_SECONDS = env_int("PUSH_LEASE_SECONDS", 40, minimum=2)
PUSH_HEARTBEAT_SECONDS = env_int("PUSH_HEARTBEAT_SECONDS", 10, minimum=1)
# IDLE is ended and issued again this often: servers may drop it after 29 minutes (RFC 2177).
PUSH_IDLE_RENEW_MINUTES = min(env_int("PUSH_IDLE_RENEW_MINUTES", 25, minimum=1), 28)
# A server without IDLE: the listener asks with NOOP this often (and polling stays as usual).
PUSH_NOOP_SECONDS = env_int("PUSH_NOOP_SECONDS", 60, minimum=1)
# While push is live for a mailbox, the safety-net poll comes this often at most.
PUSH_SAFETY_POLL_MINUTES = env_int("PUSH_SAFETY_POLL_MINUTES", 30, minimum=1)
# Connections one listener process holds at most.
PUSH_MAX_CONNECTIONS = env_int("PUSH_MAX_CONNECTIONS", 1000, minimum=1)
# Microsoft Graph change notifications: the webhook's public https URL (empty: Graph
# mailboxes poll); a subscription's length (Graph allows 4230 minutes for messages).
PUSH_GRAPH_WEBHOOK_URL = env_str("PUSH_GRAPH_WEBHOOK_URL")
PUSH_GRAPH_SUBSCRIPTION_MINUTES = min(env_int("PUSH_GRAPH_SUBSCRIPTION_MINUTES", 4200, minimum=45), 4230)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"health_probes": {"()": "config.log_filters.SkipFailingHealthProbes"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["health_probes"]},
    },
}
