"""Django settings for the Backoffice site.

Every deploy-specific value comes from the environment (read through
django-environ); see the README's configuration table.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.urls import reverse_lazy
from django.utils.text import format_lazy

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Core -------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string "
            "(or set DJANGO_DEBUG=1 for local development only)."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 (debug only)

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [],
)

# --- Applications -----------------------------------------------------------
INSTALLED_APPS = [
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.import_export",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Trigram indexes for substring search (PostgreSQL only; harmless on SQLite).
    "django.contrib.postgres",
    "import_export",
    "axes",
    # The task queue's table, its admin list and `manage.py db_worker` (see TASKS below).
    "django_tasks_db",
    "backoffice",
]

MIDDLEWARE = [
    # First: answers /healthz before host validation, SSL redirect and CSRF (see health.py).
    "backoffice.views.health.HealthCheckMiddleware",
    "backoffice.request_logging.RequestIdMiddleware",
    # A refused or lost database connection answers 503 with Retry-After, not a bare 500.
    "backoffice.database_outage.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Stripe's webhooks skip everything below (no cookies, no HTML; see the class).
    "backoffice.views.webhooks.WebhookMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "backoffice.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database ---------------------------------------------------------------
# SQLite in var/ by default; DATABASE_URL=postgres://… in production.
DATABASES = {
    "default": env.db(
        "DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'var' / 'backoffice.sqlite3'}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh clone has no var/ folder yet; SQLite will not create it.
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE makes every atomic block take SQLite's write lock up front, so
    # the read-check-write in the payment services is serialised like a row lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Every statement waits at most this long for a lock (0: for ever), then fails with
    # SQLSTATE 55P03, answered 503 with Retry-After (database_outage.py): a locked table
    # frees each gunicorn thread in bounded time instead of pinning it (webhooks use
    # their own, shorter STRIPE_WEBHOOK_LOCK_TIMEOUT_MS).
    DB_LOCK_TIMEOUT_MS = env.int("DJANGO_DB_LOCK_TIMEOUT_MS", default=10_000)
    if DB_LOCK_TIMEOUT_MS:
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = (
            f"{_options.get('options', '')} -c lock_timeout={DB_LOCK_TIMEOUT_MS}".strip()
        )
# Services own their transactions: no request-long transaction around Stripe calls.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# The admin is the whole site: after logging in (even at /admin/login/ without ?next=), go there.
LOGIN_REDIRECT_URL = "admin:index"

# --- Internationalisation ---------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
# One date format for people across the admin, the checkout and e-mails ("29 Nov 2026",
# "29 Nov 2026, 13:30 CET"): config/formats/en/formats.py, read through the locale, which
# wins over DATE_FORMAT/DATETIME_FORMAT settings. Exports stay ISO 8601.
FORMAT_MODULE_PATH = ["config.formats"]
USE_TZ = True

# --- Static files -----------------------------------------------------------
# whitenoise serves collected files with hashed names and far-future cache headers.
# Hashed names need `manage.py collectstatic` (the Dockerfile runs it at build time);
# the test suite swaps in the plain storage (tests/conftest.py) and tests the manifest
# storage itself through collectstatic + a real gunicorn (tests/test_gunicorn.py).
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Uploaded and generated files (background exports) go to the default storage. Its
# files are never served from a URL: downloads go through a view that checks who asks.
# Web and worker processes must share it (one volume, or an object store in STORAGES).
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Admin (unfold) ---------------------------------------------------------
# Sidebar sections; other parts add their own items (e.g. Payments, Stripe events).
# "show_all_applications" keeps every registered model reachable from the sidebar.
UNFOLD = {
    "SITE_TITLE": "Backoffice",
    "SITE_HEADER": "Backoffice",
    "SITE_SUBHEADER": "Conference registration payments",
    "SITE_SYMBOL": "confirmation_number",
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_HISTORY": True,
    "ENVIRONMENT": "backoffice.admin.navigation.environment",
    # Column widths, dialogs, phone lists, Recent actions (backoffice/static/backoffice/admin.css).
    "STYLES": [lambda request: static("backoffice/admin.css")],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": [
            {
                "title": "Registrations",
                "separator": False,
                "items": [
                    {
                        "title": "Orders",
                        "icon": "receipt_long",
                        "link": reverse_lazy("admin:backoffice_order_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_orders",
                        "active": "backoffice.admin.navigation.orders_active",
                    },
                    {
                        # The orders list's preset: every order staff must look at, with why.
                        "title": "Needs attention",
                        "icon": "priority_high",
                        "link": format_lazy(
                            "{}?attention=yes", reverse_lazy("admin:backoffice_order_changelist")
                        ),
                        "permission": "backoffice.admin.navigation.can_view_orders",
                        "active": "backoffice.admin.navigation.attention_active",
                        "badge": "backoffice.admin.navigation.attention_badge",
                    },
                    {
                        "title": "Conferences",
                        "icon": "event",
                        "link": reverse_lazy("admin:backoffice_conference_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_conferences",
                    },
                ],
            },
            {
                "title": "Staff",
                "separator": True,
                "items": [
                    {
                        "title": "Users",
                        "icon": "person",
                        "link": reverse_lazy("admin:auth_user_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_users",
                    },
                    {
                        "title": "Groups",
                        "icon": "group",
                        "link": reverse_lazy("admin:auth_group_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_groups",
                    },
                    {
                        "title": "Background tasks",
                        "icon": "pending_actions",
                        "link": reverse_lazy("admin:django_tasks_database_dbtaskresult_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_tasks",
                    },
                    {
                        "title": "Scheduled jobs",
                        "icon": "schedule",
                        "link": reverse_lazy("admin:backoffice_scheduledjob_changelist"),
                        "permission": "backoffice.admin.navigation.can_view_scheduled_jobs",
                    },
                ],
            },
        ],
    },
}

# --- Finance: exports, imports, dashboard ------------------------------------
# Only staff holding backoffice.export_<model> / import_<model> may export or import
# (the library's default lets every staff user do both).
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "import"
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
# Escaping is done per cell by the Resources (backoffice/exports.py), for every format.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False
# An uploaded import file waits between the preview and the confirm step, which
# may reach another gunicorn worker (or host): keep it in the database cache.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "backoffice.import_storage.DatabaseCacheImportStorage"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "import_export": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "backoffice_import_tmp",
        "TIMEOUT": 24 * 3600,
    },
}
# CSV exports above this many rows stream (no worker timeout, flat memory).
BACKOFFICE_STREAMING_EXPORT_THRESHOLD = env.int(
    "BACKOFFICE_STREAMING_EXPORT_THRESHOLD", default=20_000
)
# XLSX files are built in memory inside the request up to this many rows (measured in
# bench/export.py to finish well inside the 30 s worker timeout); bigger ones, and CSV
# files asked for as a file, are written by the background worker (services/export_jobs.py).
# Formerly BACKOFFICE_XLSX_EXPORT_MAX_ROWS (above it XLSX was refused; now it goes to the
# worker): the old name is still read so existing deployments keep their value.
BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS = env.int(
    "BACKOFFICE_XLSX_IN_REQUEST_MAX_ROWS",
    default=env.int("BACKOFFICE_XLSX_EXPORT_MAX_ROWS", default=15_000),
)
# Files written by background exports are deleted this many days after they are ready.
BACKOFFICE_EXPORT_RETENTION_DAYS = env.int("BACKOFFICE_EXPORT_RETENTION_DAYS", default=7)
# Imports are previewed and then applied inside one request each: files above
# these limits are refused before their rows are read (see bench/import_preview.py
# for the measurement behind the defaults, well inside the 30 s worker timeout).
BACKOFFICE_IMPORT_MAX_BYTES = env.int("BACKOFFICE_IMPORT_MAX_BYTES", default=5 * 1024 * 1024)
BACKOFFICE_IMPORT_MAX_ROWS = env.int("BACKOFFICE_IMPORT_MAX_ROWS", default=20_000)
# A Stripe payment still pending or processing this many minutes after its last change
# is listed under "Needs attention" (a webhook may have been missed; re-sync it).
BACKOFFICE_STALE_PAYMENT_MINUTES = env.int("BACKOFFICE_STALE_PAYMENT_MINUTES", default=30)
# A card attempt still waiting for the attendee this long after it opened is cancelled at
# Stripe by the next re-sync (the pay link starts a new one); 0 keeps them open for good.
BACKOFFICE_ABANDONED_ATTEMPT_HOURS = env.int("BACKOFFICE_ABANDONED_ATTEMPT_HOURS", default=24)
# The sidebar's Needs attention badge reuses its count this long (0: count on every page).
BACKOFFICE_ATTENTION_BADGE_SECONDS = env.int("BACKOFFICE_ATTENTION_BADGE_SECONDS", default=30)
# Admin lists count filtered rows up to this many, then show "10,000+"; an unfiltered list
# of more rows shows PostgreSQL's estimate of the table's size (backoffice/admin/pagination.py).
BACKOFFICE_LIST_COUNT_CAP = env.int("BACKOFFICE_LIST_COUNT_CAP", default=10_000)
UNFOLD["DASHBOARD_CALLBACK"] = "backoffice.admin.dashboard.dashboard_callback"
UNFOLD["SIDEBAR"]["navigation"].insert(
    1,
    {
        "title": "Finance",
        "separator": True,
        "items": [
            {
                "title": "Payments",
                "icon": "payments",
                "link": reverse_lazy("admin:backoffice_payment_changelist"),
                "permission": "backoffice.admin.navigation.can_view_payments",
            },
            {
                "title": "Refunds",
                "icon": "currency_exchange",
                "link": reverse_lazy("admin:backoffice_refund_changelist"),
                "permission": "backoffice.admin.navigation.can_view_refunds",
            },
            {
                "title": "Disputes",
                "icon": "gavel",
                "link": reverse_lazy("admin:backoffice_dispute_changelist"),
                "permission": "backoffice.admin.navigation.can_view_disputes",
            },
            {
                "title": "Exports",
                "icon": "download",
                "link": reverse_lazy("admin:backoffice_exportfile_changelist"),
                "permission": "backoffice.admin.navigation.can_see_exports",
            },
        ],
    },
)

# --- Background tasks (Django's task framework) ------------------------------
# Tasks are rows in the database (django-tasks-db), run by `manage.py db_worker`;
# enqueued inside a transaction, a task commits with it or vanishes on rollback.
# DJANGO_TASKS_BACKEND moves the site to another backend of django.tasks (its
# worker then replaces db_worker) without code changes.
TASKS = {
    "default": {
        "BACKEND": env.str("DJANGO_TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
    }
}
# A failing task is tried this many times in all, waiting RETRY_DELAY seconds
# before the second try and twice as long before each next one (capped at an hour);
# then it is marked failed: a log line, and an entry on the order's history for
# order tasks (backoffice/services/background.py).
BACKOFFICE_TASK_MAX_ATTEMPTS = env.int("BACKOFFICE_TASK_MAX_ATTEMPTS", default=5)
BACKOFFICE_TASK_RETRY_DELAY_SECONDS = env.float("BACKOFFICE_TASK_RETRY_DELAY_SECONDS", default=30)
# Periodic jobs, run by the workers (`manage.py run_worker`; backoffice/services/schedule.py).
# The Stripe re-sync runs this often, for card payments open for more than
# RESYNC_STALE_MINUTES (below STALE_PAYMENT_MINUTES, so a missed webhook is
# repaired before the order is listed under "Needs attention").
BACKOFFICE_RESYNC_INTERVAL_MINUTES = env.int("BACKOFFICE_RESYNC_INTERVAL_MINUTES", default=15)
BACKOFFICE_RESYNC_STALE_MINUTES = env.int("BACKOFFICE_RESYNC_STALE_MINUTES", default=10)
# A task RUNNING this long whose worker has been silent as long is put back in the queue.
BACKOFFICE_TASK_STUCK_MINUTES = env.int("BACKOFFICE_TASK_STUCK_MINUTES", default=15)
# Finished task rows are deleted once this old (daily).
BACKOFFICE_TASK_RETENTION_DAYS = env.int("BACKOFFICE_TASK_RETENTION_DAYS", default=14)

# --- E-mail to attendees -----------------------------------------------------
# DJANGO_EMAIL_URL says how mail leaves the site, e.g. smtp://user:pass@host:25,
# smtp+tls://user:pass@host:587 (STARTTLS, "submission"), smtp+ssl://…:465, or
# consolemail:// (print to stdout). Without it, DJANGO_DEBUG=1 prints every mail
# on the console (`make run` shows them in the terminal); production warns at
# start-up (backoffice/checks.py) and tries an SMTP server on localhost:25.
# Django 6.1's MAILERS replaces EMAIL_BACKEND and the EMAIL_* settings.
EMAIL_URL = env.str("DJANGO_EMAIL_URL", default="")
if EMAIL_URL:
    _email = environ.Env.email_url_config(EMAIL_URL)
elif DEBUG:
    _email = environ.Env.email_url_config("consolemail://")
else:
    _email = environ.Env.email_url_config("smtp://localhost:25")
_mailer_options: dict = {}
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _mailer_options = {
        "host": _email["EMAIL_HOST"] or "localhost",
        "port": _email["EMAIL_PORT"] or 25,
        "username": _email["EMAIL_HOST_USER"] or "",
        "password": _email["EMAIL_HOST_PASSWORD"] or "",
        "use_tls": bool(_email.get("EMAIL_USE_TLS")),
        "use_ssl": bool(_email.get("EMAIL_USE_SSL")),
        # A hung mail server fails the task (retried later) instead of pinning the worker.
        "timeout": env.float("DJANGO_EMAIL_TIMEOUT_SECONDS", default=20.0),
    }
elif _email["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend":
    _mailer_options = {"file_path": _email["EMAIL_FILE_PATH"]}
MAILERS = {"default": {"BACKEND": _email["EMAIL_BACKEND"], "OPTIONS": _mailer_options}}
# The address mails are sent from; each conference puts its own sender name in front.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="registration@localhost")
SERVER_EMAIL = env.str("DJANGO_SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# The site's public address: the pay links in e-mails are absolute URLs on it.
# Required outside debug (a warning at start-up, backoffice.W002, when unset).
BACKOFFICE_SITE_URL = env.str(
    "BACKOFFICE_SITE_URL", default="http://127.0.0.1:8000" if DEBUG else ""
).rstrip("/")

# --- Logging ----------------------------------------------------------------
# One JSON object per line on stdout, each with the request id (request_logging.py);
# with DJANGO_DEBUG=1 (make run) the default is plain text lines instead.
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "backoffice.request_logging.RequestIdFilter"},
    },
    "formatters": {
        "json": {"()": "backoffice.request_logging.JsonFormatter"},
        "text": {
            "()": "backoffice.request_logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["request_id"],
            "formatter": "text" if LOG_FORMAT == "text" else "json",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # Exceptions reach the root handler once, as JSON, not also as an e-mail.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# --- Stripe -----------------------------------------------------------------
# Each conference stores its own keys; these settings only say how to reach Stripe.
# STRIPE_API_BASE empty = Stripe's real API; tests and local development point it
# at localstripe (e.g. http://127.0.0.1:8420).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
# Every try of a call may wait the full timeout: timeout × (retries + 1) plus the
# backoff must fit well inside the worker timeout, or a hung Stripe gets the attendee
# gunicorn's bare error instead of the "try again" page (checked at start-up:
# backoffice/checks.py). The defaults allow at most 16.5 s per call.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=8.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=1)
# The worker timeout gunicorn.conf.py reads from the same variable (same default).
GUNICORN_TIMEOUT = env.int("GUNICORN_TIMEOUT", default=30)
# How long a webhook waits for a row lock (an order a clerk is paying right now)
# before answering 503 so Stripe retries later (PostgreSQL only).
STRIPE_WEBHOOK_LOCK_TIMEOUT_MS = env.int("STRIPE_WEBHOOK_LOCK_TIMEOUT_MS", default=5000)
# How long any one statement of a webhook may run, lock waits included (PostgreSQL);
# longer than the lock timeout, so a lock wait is reported as such.
STRIPE_WEBHOOK_STATEMENT_TIMEOUT_MS = env.int("STRIPE_WEBHOOK_STATEMENT_TIMEOUT_MS", default=10_000)

# --- Security (HTTPS, cookies, headers) ---------------------------------------
# Production defaults are strict; `manage.py check --deploy` passes with them.
# Behind a TLS-terminating proxy set DJANGO_SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto
# (only if the proxy always sets that header); DJANGO_SECURE_SSL_REDIRECT=0 if the
# proxy itself redirects http to https.
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 60 * 60)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"

# --- Content Security Policy (Django's built-in CSP) --------------------------
# The strict policy for every page; backoffice/csp.py swaps in the admin policy
# (unfold needs 'unsafe-eval' for Alpine.js) and the checkout policy (Stripe's
# origins) by path. No page of this project has inline scripts.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "frame-src": ["'none'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# --- Brute-force protection (django-axes) --------------------------------------
# A username+IP pair is locked out after AXES_FAILURE_LIMIT failed logins for
# AXES_COOLOFF_TIME hours. Behind a proxy set DJANGO_AXES_PROXY_COUNT so the client
# address is read from X-Forwarded-For instead of the proxy's own address.
AUTHENTICATION_BACKENDS = [
    "backoffice.auth_backends.AxesLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("DJANGO_AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("DJANGO_AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("DJANGO_AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env.int("DJANGO_AXES_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# --- Secrets at rest (Stripe keys in the database) ----------------------------
# Comma-separated Fernet keys, newest first: the first encrypts, all decrypt.
# Rotate: put a new key in front, run `manage.py rotate_encryption_keys`, then drop
# the old one. With DJANGO_DEBUG=1 and no keys a development key is derived from
# SECRET_KEY (backoffice/encryption.py); without debug the variable is required.
BACKOFFICE_ENCRYPTION_KEYS = env.list("BACKOFFICE_ENCRYPTION_KEYS", default=[])
if not BACKOFFICE_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "BACKOFFICE_ENCRYPTION_KEYS is not set. Generate a key with "
        "`python manage.py generate_encryption_key` and set it "
        "(or set DJANGO_DEBUG=1 for local development only)."
    )
