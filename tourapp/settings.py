"""Settings, all read from the environment (this is the one place that reads it).

Development defaults match `scripts/services` (local PostgreSQL, Redis, RabbitMQ, Kafka).
With ``DJANGO_ENV=production`` the process refuses to start without ``DJANGO_SECRET_KEY``
and turns on the secure defaults that ``manage.py check --deploy`` asks for.
"""

import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENVIRONMENT = env.str("DJANGO_ENV", default="development")
PRODUCTION = ENVIRONMENT == "production"
TESTING = env.bool("TOURAPP_TESTING", default=False)

# Off unless asked for (``DEBUG=true``, development only): debug pages print settings and locals.
DEBUG = env.bool("DEBUG", default=False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production.")
# Error reports (debug pages, admin emails) mask credentials inside URLs too, e.g. amqp://user:pass@.
DEFAULT_EXCEPTION_REPORTER_FILTER = "tourapp.error_reports.CredentialMaskingReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "tourapp.error_reports.CredentialMaskingExceptionReporter"
_DEV_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production-000000"  # noqa: S105 - a known dev-only value, rejected in production below
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="" if PRODUCTION else _DEV_SECRET)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files, pinned, offline
    "axes",  # login failure lockout (admin and API), see accounts/lockout.py
    "messaging",
    "accounts",
    "availability",
    "bookings",
    "notifications",
    "payments",
    "django_filters",  # the bookings list's filters (and their form in the browsable API)
    "health_check",  # /health/live and /health/ready (ops/health.py)
    "django_prometheus",
    "ops.apps.OpsConfig",  # metrics, worker heartbeat, ops dashboard, system checks
]

MIDDLEWARE = [
    # First and last: the Prometheus middlewares count and time every other middleware too.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "tourapp.correlation.CorrelationIdMiddleware",
    "tourapp.middleware.RejectNulBytesMiddleware",
    "tourapp.middleware.RejectDisallowedHostMiddleware",
    "tourapp.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and API docs' static files from gunicorn (no separate web server needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "tourapp.middleware.CommonMiddleware",  # Django's, but a write to /api/x (no slash) is a JSON 404
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last of ours, as django-axes asks: turns a locked-out login into accounts.lockout.lockout_response (429).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tourapp.urls"
WSGI_APPLICATION = "tourapp.wsgi.application"
ASGI_APPLICATION = "tourapp.asgi.application"

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

# ------------------------------------------------------------------ data stores
DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://tourapp:tourapp@127.0.0.1:5432/tourapp"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Django turns psycopg's prepared statements off unless asked; the hot statements of tourapp.db ask
# (``prepare=True``), so allow them. ORM queries use client-side binding and are never prepared.
# Off (``false``) only behind a pooler that cannot keep them (PgBouncer < 1.21 in transaction mode).
if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
# Parallel test runs (several developers or CI jobs on one machine) each get their own test DB.
DATABASES["default"]["TEST"] = {"NAME": env.str("DATABASE_TEST_NAME", default="test_tourapp")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("REDIS_KEY_PREFIX", default="tourapp"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}

# ------------------------------------------------------------------ messaging
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="amqp://tourapp:tourapp@127.0.0.1:5672/tourapp")
# The tour_events exchange lives on the same RabbitMQ as Celery unless told otherwise.
EVENTS_AMQP_URL = env.str("EVENTS_AMQP_URL", default=CELERY_BROKER_URL)
EVENTS_EXCHANGE = env.str("EVENTS_EXCHANGE", default="tour_events")
EVENTS_QUEUE_PREFIX = env.str("EVENTS_QUEUE_PREFIX", default="")
EVENTS_QUORUM_QUEUES = env.bool("EVENTS_QUORUM_QUEUES", default=False)
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])
KAFKA_TOPIC = env.str("KAFKA_TOPIC", default="tour_events")
KAFKA_DLQ_TOPIC = env.str("KAFKA_DLQ_TOPIC", default=f"{KAFKA_TOPIC}.dlq")
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default="tourapp")
# Used when the app creates its topics (manage.py kafka_topics_ensure); 3 and 2 on a 3-broker cluster.
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
KAFKA_REPLICATION_FACTOR = env.int("KAFKA_REPLICATION_FACTOR", default=1)
KAFKA_MIN_INSYNC_REPLICAS = env.int("KAFKA_MIN_INSYNC_REPLICAS", default=1)

OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=1000)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=25)
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE_SECONDS", default=1.0)
OUTBOX_BACKOFF_MAX_SECONDS = env.float("OUTBOX_BACKOFF_MAX_SECONDS", default=300.0)
OUTBOX_SWEEP_SECONDS = env.float("OUTBOX_SWEEP_SECONDS", default=5.0)
# Each Celery worker drains the outbox when a commit NOTIFYs this channel, and at least every
# OUTBOX_WORKER_LOOP_SECONDS, without the Celery broker (see messaging/relay/loop.py); 0 turns it off.
OUTBOX_NOTIFY_CHANNEL = env.str("OUTBOX_NOTIFY_CHANNEL", default="tourapp_outbox")
# Also how soon a relay takes over the claim of a relay that died (messaging/relay/liveness.py).
OUTBOX_WORKER_LOOP_SECONDS = env.float("OUTBOX_WORKER_LOOP_SECONDS", default=2.0)
OUTBOX_RETENTION_DAYS = env.int("OUTBOX_RETENTION_DAYS", default=7)
# Destinations an event is relayed to; each has its own delivery state.
OUTBOX_DESTINATIONS = env.list("OUTBOX_DESTINATIONS", default=["rabbitmq", "kafka"])
# A claimed delivery is invisible to other relays for this long; a relay that dies mid-batch
# has its rows retried after it (at-least-once). Must exceed the longest publish of one batch.
OUTBOX_CLAIM_LEASE_SECONDS = env.float("OUTBOX_CLAIM_LEASE_SECONDS", default=60.0)
# A destination that cannot be reached is paused (no attempts counted) for this long, doubling up to the max.
OUTBOX_UNAVAILABLE_BACKOFF_SECONDS = env.float("OUTBOX_UNAVAILABLE_BACKOFF_SECONDS", default=2.0)
OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS = env.float("OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS", default=60.0)
# One sweep drains a destination until it is empty or this budget is spent.
OUTBOX_SWEEP_BUDGET_SECONDS = env.float("OUTBOX_SWEEP_BUDGET_SECONDS", default=50.0)
OUTBOX_PURGE_BATCH_SIZE = env.int("OUTBOX_PURGE_BATCH_SIZE", default=1000)

# Which transport feeds which handler: "rabbitmq", "kafka" or "both".
EVENT_HANDLER_ROUTES = {
    "notifications": env.str("NOTIFICATIONS_TRANSPORT", default="rabbitmq"),
    "availability": env.str("AVAILABILITY_TRANSPORT", default="kafka"),
    "payments": env.str("PAYMENTS_TRANSPORT", default="rabbitmq"),
}
IDEMPOTENCY_TTL_SECONDS = env.int("IDEMPOTENCY_TTL_SECONDS", default=24 * 3600)

# Consumers: limits, retries and batching of the RabbitMQ and Kafka consumers.
# Bodies above this size are dead-lettered unread (a protection, not a business rule).
EVENTS_MAX_BODY_BYTES = env.int("EVENTS_MAX_BODY_BYTES", default=64 * 1024)
EVENTS_PREFETCH_COUNT = env.int("EVENTS_PREFETCH_COUNT", default=50)
# RabbitMQ retry ladder (seconds): one retry queue per step, then the DLQ.
EVENTS_RETRY_DELAYS = [float(s) for s in env.list("EVENTS_RETRY_DELAYS", default=["1", "5", "30"])]
# Quorum queues only: broker-side redelivery cap (consumer crashes), set explicitly for 3.x == 4.x.
EVENTS_DELIVERY_LIMIT = env.int("EVENTS_DELIVERY_LIMIT", default=10)
KAFKA_CONSUMER_MAX_RECORDS = env.int("KAFKA_CONSUMER_MAX_RECORDS", default=500)
KAFKA_HANDLER_MAX_ATTEMPTS = env.int("KAFKA_HANDLER_MAX_ATTEMPTS", default=3)
# Bound of one attempt to copy poison records to the DLQ topic (retried with backoff until it works).
KAFKA_DLQ_SEND_TIMEOUT_SECONDS = env.float("KAFKA_DLQ_SEND_TIMEOUT_SECONDS", default=10.0)
KAFKA_PROGRESS_LOG_SECONDS = env.float("KAFKA_PROGRESS_LOG_SECONDS", default=10.0)

# ------------------------------------------------------------------ bookings
BOOKING_PREMIUM_MULTIPLIER = Decimal(env.str("BOOKING_PREMIUM_MULTIPLIER", default="1.5"))
BOOKING_MAX_SEATS = env.int("BOOKING_MAX_SEATS", default=10)
BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE = env.int("BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE", default=10)
# Bookings whose confirmation goes to someone else than the account's email (or to any phone), per
# user and per recipient per UTC day: the system cannot be used to mail or text third parties at will.
BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY = env.int("BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY", default=20)
BOOKING_THIRD_PARTY_CONTACTS_PER_RECIPIENT_PER_DAY = env.int(
    "BOOKING_THIRD_PARTY_CONTACTS_PER_RECIPIENT_PER_DAY", default=5
)
# Demo data (manage.py seed_demo).
DEMO_USERNAME = env.str("DEMO_USERNAME", default="demo")
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="demo-password")
DEMO_ADMIN_USERNAME = env.str("DEMO_ADMIN_USERNAME", default="admin")
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="admin-password")

# ------------------------------------------------------------------ notifications
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    # Development: one masked log line per message (Django's console backend prints it whole).
    else "notifications.email_backends.MaskedLogEmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# Seconds per SMTP socket operation: a mail server that hangs fails the send (retried later).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tourapp <no-reply@tourapp.local>")
SMS_BACKEND = env.str("SMS_BACKEND", default="notifications.sms.LoggingSmsBackend")
SMS_TIMEOUT_SECONDS = env.float("SMS_TIMEOUT_SECONDS", default=10.0)
# Retries, the safety-net sweep and batching of notification sends.
NOTIFICATION_MAX_RETRIES = env.int("NOTIFICATION_MAX_RETRIES", default=5)
NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS = env.int("NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS", default=300)
# Pending notifications older than this are re-dispatched by the beat sweep (lost task safety net).
NOTIFICATION_SWEEP_AFTER_SECONDS = env.int("NOTIFICATION_SWEEP_AFTER_SECONDS", default=600)
# Notifications per Celery task when a Kafka batch dispatches many at once.
NOTIFICATION_DISPATCH_CHUNK = env.int("NOTIFICATION_DISPATCH_CHUNK", default=100)
# A send task holds a notification ("sending") at most this long; then the sweep hands it to another
# task (a worker that died between send and record). Must exceed the batch task's hard time limit.
NOTIFICATION_CLAIM_LEASE_SECONDS = env.float("NOTIFICATION_CLAIM_LEASE_SECONDS", default=300.0)
NOTIFICATION_BATCH_SOFT_TIME_LIMIT = env.float("NOTIFICATION_BATCH_SOFT_TIME_LIMIT", default=120.0)

# ------------------------------------------------------------------ payments
# "dummy": the deterministic HTTP dummy gateway (manage.py payments_gateway_dummy), outcome chosen by
# the booking's payment token (tok_success, tok_decline, tok_timeout, tok_slow).
PAYMENTS_GATEWAY = env.str("PAYMENTS_GATEWAY", default="dummy")
PAYMENTS_GATEWAY_URL = env.str("PAYMENTS_GATEWAY_URL", default="http://127.0.0.1:8765")
PAYMENTS_GATEWAY_TIMEOUT_SECONDS = env.float("PAYMENTS_GATEWAY_TIMEOUT_SECONDS", default=5.0)
PAYMENTS_DEFAULT_TOKEN = env.str("PAYMENTS_DEFAULT_TOKEN", default="tok_success")
PAYMENTS_DUMMY_DB = env.str("PAYMENTS_DUMMY_DB", default=".cache/dummy-gateway.sqlite3")
# Transient gateway errors (timeout, refused, 5xx): retries with full-jitter backoff, then "dead".
PAYMENTS_MAX_RETRIES = env.int("PAYMENTS_MAX_RETRIES", default=8)
PAYMENTS_RETRY_BACKOFF_MAX_SECONDS = env.float("PAYMENTS_RETRY_BACKOFF_MAX_SECONDS", default=60.0)
PAYMENTS_SWEEP_AFTER_SECONDS = env.int("PAYMENTS_SWEEP_AFTER_SECONDS", default=300)

# ------------------------------------------------------------------ Celery
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Celery's own task queue as a quorum queue on a RabbitMQ cluster ("classic" or "quorum"; Celery
# then turns off global QoS itself). Changing it needs the old queue deleted first (see runbook).
CELERY_TASK_DEFAULT_QUEUE_TYPE = env.str("CELERY_TASK_DEFAULT_QUEUE_TYPE", default="classic")
# Quorum queues cannot hold a task until its countdown: Celery then delays it in RabbitMQ (native
# delayed delivery), which routes only through topic exchanges; on the default direct exchange a
# retried task is held in the worker instead, blocking a process slot until its countdown ends.
CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic" if CELERY_TASK_DEFAULT_QUEUE_TYPE == "quorum" else "direct"
# Charges and refunds have a task queue of their own: the worker takes from both queues in turn, so
# a backlog of charges (a slow gateway, a flash sale) never holds back the confirmation emails.
CELERY_TASK_PAYMENTS_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}.payments"
CELERY_TASK_QUEUES = [
    Queue(
        name,
        Exchange(CELERY_TASK_DEFAULT_QUEUE, type=CELERY_TASK_DEFAULT_EXCHANGE_TYPE),
        routing_key=name,
        queue_arguments={"x-queue-type": "quorum"} if CELERY_TASK_DEFAULT_QUEUE_TYPE == "quorum" else None,
    )
    for name in (CELERY_TASK_DEFAULT_QUEUE, CELERY_TASK_PAYMENTS_QUEUE)
]
CELERY_TASK_ROUTES = {
    "payments.tasks.payment_charge_task": {"queue": CELERY_TASK_PAYMENTS_QUEUE},
    "payments.tasks.payment_refund_task": {"queue": CELERY_TASK_PAYMENTS_QUEUE},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Every task has a soft limit (SoftTimeLimitExceeded: the task cleans up) and a hard one (the child
# is killed); tasks that legitimately run longer get theirs in CELERY_TASK_ANNOTATIONS below.
CELERY_TASK_SOFT_TIME_LIMIT = env.float("CELERY_TASK_SOFT_TIME_LIMIT", default=60.0)
CELERY_TASK_TIME_LIMIT = env.float("CELERY_TASK_TIME_LIMIT", default=90.0)
CELERY_TASK_ANNOTATIONS = {
    # A sweep drains for up to OUTBOX_SWEEP_BUDGET_SECONDS, then completes its last batches.
    "messaging.tasks.outbox_sweep_task": {
        "soft_time_limit": OUTBOX_SWEEP_BUDGET_SECONDS + 30,
        "time_limit": OUTBOX_SWEEP_BUDGET_SECONDS + 60,
    },
    # Purge commits batch by batch: a purge cut short resumes where it stopped.
    "messaging.tasks.outbox_purge_task": {"soft_time_limit": 300.0, "time_limit": 330.0},
    "notifications.tasks.notification_send_batch_task": {
        "soft_time_limit": NOTIFICATION_BATCH_SOFT_TIME_LIMIT,
        "time_limit": NOTIFICATION_BATCH_SOFT_TIME_LIMIT + 30,
    },
}
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {
        "task": "messaging.tasks.outbox_sweep_task",
        "schedule": timedelta(seconds=OUTBOX_SWEEP_SECONDS),
    },
    "outbox-purge": {
        "task": "messaging.tasks.outbox_purge_task",
        "schedule": timedelta(minutes=10),
    },
    "notifications-sweep": {
        "task": "notifications.tasks.notification_sweep_task",
        "schedule": timedelta(seconds=60),
    },
    "payments-sweep": {
        "task": "payments.tasks.payments_sweep_task",
        "schedule": timedelta(seconds=60),
    },
}

# ------------------------------------------------------------------ API
# Largest request body accepted (bytes), chunked or not: larger is a 413 before anything reads it.
REQUEST_MAX_BODY_BYTES = env.int("REQUEST_MAX_BODY_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES
API_MAX_PAGE_SIZE = env.int("API_MAX_PAGE_SIZE", default=100)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tourapp.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # ?page= and ?page_size= (capped at API_MAX_PAGE_SIZE; 0 or negative is a 400): tourapp/pagination.py
    "DEFAULT_PAGINATION_CLASS": "tourapp.pagination.PageNumberWithSizePagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tourapp.exceptions.api_exception_handler",
    # The browsable API shows each view's docstring as paragraphs (tourapp/openapi.py).
    "VIEW_DESCRIPTION_FUNCTION": "tourapp.openapi.view_description",
    # Bounded reads, UTF-8 only, bounded JSON depth, no duplicate keys (tourapp/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "tourapp.parsers.JSONParser",
        "tourapp.parsers.FormParser",
        "tourapp.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "bookings": env.str("BOOKING_THROTTLE_RATE", default="120/min"),
        # accounts.api.views: per client address, and per username sent (whatever the address)
        "auth_token": env.str("AUTH_TOKEN_THROTTLE_RATE", default="30/min"),
        "auth_token_username": env.str("AUTH_TOKEN_THROTTLE_RATE_PER_USERNAME", default="10/min"),
        "auth_register": env.str("AUTH_REGISTER_THROTTLE_RATE", default="20/hour"),
        "auth_register_username": env.str("AUTH_REGISTER_THROTTLE_RATE_PER_USERNAME", default="5/hour"),
    },
    # The client address is REMOTE_ADDR unless TRUSTED_PROXY_COUNT proxies put it in X-Forwarded-For;
    # DRF's default (None) would trust any client's X-Forwarded-For and let it dodge the throttles.
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tourapp API",
    "DESCRIPTION": "Book tours; every booking leaves as a tour.booked event through a transactional outbox.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl: Swagger UI would otherwise send the schema to swagger.io's online validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tourapp.openapi.add_error_responses",
    ],
}

# ------------------------------------------------------------------ i18n, static
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "accounts.validators.MaximumLengthValidator"},  # 128: hashing stays cheap
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Usernames match whatever their case (unique that way in the database, accounts/migrations/0001).
# django-axes first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.CaseInsensitiveModelBackend"]
# Login lockout (admin and /api/auth/token/): AUTH_LOCKOUT_FAILURES failures for one username, or from
# one client address, lock it out for AUTH_LOCKOUT_MINUTES after the last failure (each try during
# the lockout restarts it). Counted in the database; docs/runbook.md says how to unlock.
AXES_FAILURE_LIMIT = env.int("AUTH_LOCKOUT_FAILURES", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AUTH_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are not recorded (no per-login write, less PII kept)
AXES_VERBOSE = False  # no start-up banner; its log lines mask usernames and addresses (AXES_SENSITIVE_PARAMETERS)
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.lockout_client_address"  # the throttles' address (TRUSTED_PROXY_COUNT)

# ------------------------------------------------------------------ security (production)
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# ------------------------------------------------------------------ logging
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION or TESTING else "console")
LOG_ROLE = env.str("TOURAPP_ROLE", default="web")
# A mistyped LOG_LEVEL or LOG_FORMAT is reported by the system check (ops.checks), which names
# it: logging uses the defaults meanwhile, or Django's logging setup would fail first with a traceback.
_LOG_LEVEL = LOG_LEVEL.upper() if LOG_LEVEL.upper() in logging.getLevelNamesMapping() else "INFO"
_LOG_FORMAT = LOG_FORMAT if LOG_FORMAT in ("json", "console") else "json"
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "tourapp.logging.ContextFilter"},
        # Periodic housekeeping (beat's due tasks, Celery's received/succeeded of the sweeps) is DEBUG.
        "housekeeping": {"()": "tourapp.logging.HousekeepingFilter"},
    },
    "formatters": {
        "json": {"()": "tourapp.logging.JsonFormatter"},
        # Development: one line per record, with extras (event_id, booking_id, ...) as key=value.
        "console": {"()": "tourapp.logging.ConsoleFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": _LOG_FORMAT,
            "filters": ["context", "housekeeping"],
        },
    },
    "root": {"handlers": ["default"], "level": _LOG_LEVEL},
    "loggers": {
        "kafka": {"level": "WARNING"},
        "amqp": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # 4xx WARNINGs repeat the access log's line for the request (with no correlation id): errors only.
        "django.request": {"level": "ERROR"},
        # Django's DEFAULT_LOGGING gives these their own plain handlers in DEBUG: ours only, so no
        # process prints a line twice or in another format.
        "django": {"handlers": [], "level": _LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": _LOG_LEVEL, "propagate": True},
    },
}

# ------------------------------------------------------------------ operations (health, metrics, dashboard)
# /health/ready goes red when the oldest pending outbox delivery is older than this.
OUTBOX_HEALTH_MAX_AGE_SECONDS = env.int("OUTBOX_HEALTH_MAX_AGE_SECONDS", default=300)
# Each Celery worker writes a heartbeat to Redis this often; readiness wants one seen within 3x.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=2.0)
# Where the ops dashboard links to: RabbitMQ's management UI and Flower (Celery tasks; `make run`).
RABBITMQ_MANAGEMENT_URL = env.str("RABBITMQ_MANAGEMENT_URL", default="http://127.0.0.1:15672/")
FLOWER_URL = env.str("FLOWER_URL", default="http://127.0.0.1:5555/")
# Per-dependency timeout of a readiness check; checks run in parallel, so the total stays ~this.
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=1.0)
HEALTH_CHECK = {"WARNINGS_AS_ERRORS": True, "DISABLE_THREADING": False}
# Set for every process (Procfile, docker compose): they write samples there and /metrics sums them.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# /metrics answers clients in these networks, or a request with "Authorization: Bearer <METRICS_TOKEN>".
METRICS_ALLOWED_CIDRS = env.list("METRICS_ALLOWED_CIDRS", default=["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
