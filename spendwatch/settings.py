"""SpendWatch settings: one module, every knob from the environment (documented in README "Configuration")."""

import os
from pathlib import Path

import dj_database_url

from spendwatch.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SPENDWATCH_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# The placeholder is refused by `check --deploy` (it starts with "django-insecure-"), so a deployment
# that forgets SECRET_KEY cannot pass its own pre-flight check.
SECRET_KEY = env_secret("SECRET_KEY", "django-insecure-development-only-set-SECRET_KEY-for-any-real-use")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.usersessions",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from static/, so /api/docs/ works under the CSP
    "csp",
    "apps.org",
    "apps.accounts",
    "apps.audit",
    "apps.catalog",
    "apps.ingestion",
    "apps.usage",
    "apps.dashboards",
    "apps.exports",
    "apps.overuse",
    "apps.budgets",
    "apps.metrics",
    "apps.digests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "apps.accounts.middleware.SessionLifetimeMiddleware",
    "apps.accounts.middleware.AccountPolicyMiddleware",
]

ROOT_URLCONF = "spendwatch.urls"
WSGI_APPLICATION = "spendwatch.wsgi.application"

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
                "apps.accounts.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# SQLite under var/ is the zero-setup default; PostgreSQL (the production database) through DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'spendwatch.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and scheduler share the file: WAL lets readers run beside the one writer, and
    # IMMEDIATE transactions queue writers instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not memory) so that processes a test starts can open it; one per test run, so that
    # test runs side by side do not share it. Child processes inherit the name.
    test_database = os.environ.setdefault(
        "SPENDWATCH_SQLITE_TEST_DATABASE", str(VAR_DIR / f"test-spendwatch-{os.getpid()}.sqlite3")
    )
    DATABASES["default"]["TEST"] = {"NAME": test_database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth (allauth, email login; there is no public sign-up) ------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "apps.accounts.adapters.NoSignupAccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
# Failed logins: 10 a minute per client IP and 5 per 5 minutes per account (a 6th is refused even with the
# right password). The client IP is REMOTE_ADDR unless a proxy is declared trusted: then the address that
# proxy appended to X-Forwarded-For (TRUSTED_PROXY_COUNT hops from the right), or a header it sets itself.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("SPENDWATCH_TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env_str("SPENDWATCH_TRUSTED_CLIENT_IP_HEADER", "") or None
# Rate limits and "TOTP code already used" live in the cache: processes that serve the same site must share
# it (SPENDWATCH_CACHE_URL=redis://...), or each process counts on its own.
_CACHE_URL = env_str("SPENDWATCH_CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
    if _CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Changing the email address, password or authenticators asks for the password (or a TOTP code) again.
ACCOUNT_REAUTHENTICATION_REQUIRED = True
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "SpendWatch"
# Roles that must have an authenticator before they see anything but MFA setup ("staff" = admin users);
# apps/accounts/middleware.py enforces it. README "Sign-in, SSO and MFA".
SPENDWATCH_MFA_REQUIRED_ROLES = env_list(
    "SPENDWATCH_MFA_REQUIRED_ROLES", ["cio", "finops", "manager", "staff"]
)
# Sessions end after this much inactivity; SESSION_COOKIE_AGE (below) is the absolute lifetime from login.
SPENDWATCH_SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_SECONDS", 30 * 60)
if env_bool("SPENDWATCH_HTTPS", False):
    # Host-only, Secure, Path=/ cookies that a sibling subdomain cannot set or overwrite.
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
# SSO: one SocialApp per organisation and IdP (OIDC or SAML), configured in the admin; no sign-up through
# SSO, no login by matching email alone (apps/accounts/adapters.py).
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.OrganisationSSOAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True}}
# Logins are recorded per session (the "Sessions" page, ending them on deactivation); no write per request.
USERSESSIONS_TRACK_ACTIVITY = False
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Time -----------------------------------------------------------------------------------------
# Stored in UTC; each organisation has its own display/reporting time zone (default below).
USE_TZ = True
TIME_ZONE = "UTC"
SPENDWATCH_TIME_ZONE = env_str("SPENDWATCH_TIME_ZONE", "UTC")
LANGUAGE_CODE = "en-us"
USE_I18N = False

# --- Static files (plotly.js is served from here, never from a CDN) ------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Email ----------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "SpendWatch <spendwatch@localhost>")

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {"TITLE": "SpendWatch API", "VERSION": "1", "SERVE_INCLUDE_SCHEMA": False}

# --- Celery ---------------------------------------------------------------------------------------
# Default broker: kombu's filesystem transport under var/ (no server to install, shared by processes);
# production: Redis through CELERY_BROKER_URL.
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    (_BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (_BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),  # else kombu writes ./control in the cwd
        "store_processed": False,
    }
else:
    # Longer than the longest ingestion task, so Redis does not redeliver a task that is still running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Ingestion ------------------------------------------------------------------------------------
SPENDWATCH_INGEST_BATCH_ROWS = env_int("SPENDWATCH_INGEST_BATCH_ROWS", 20_000)
SPENDWATCH_MAX_LINE_BYTES = env_int("SPENDWATCH_MAX_LINE_BYTES", 1_000_000)
SPENDWATCH_UPLOAD_DIR = VAR_DIR / "uploads"
# Kept raw payloads (pushed bodies, uploads, pulled pages) are deleted this many days after their run
# was created, by a daily task (apps/ingestion/retention.py); 0 keeps them forever.
SPENDWATCH_PAYLOAD_RETENTION_DAYS = env_int("SPENDWATCH_PAYLOAD_RETENTION_DAYS", 90)
# A running run whose heartbeat (one per committed batch) is older than this is taken to be orphaned.
SPENDWATCH_RUN_STALE_SECONDS = env_int("SPENDWATCH_RUN_STALE_SECONDS", 600)
SPENDWATCH_RUN_MAX_ATTEMPTS = env_int("SPENDWATCH_RUN_MAX_ATTEMPTS", 5)
# A run interrupted by a transient error (database or broker unreachable) is retried after this, doubling
# each time (capped at 10 minutes), up to SPENDWATCH_RUN_MAX_ATTEMPTS executions in all.
SPENDWATCH_RUN_RETRY_BACKOFF_MS = env_int("SPENDWATCH_RUN_RETRY_BACKOFF_MS", 5000)
# Largest body the ingest API takes (after gzip inflation too); larger ones get 413 before being read.
SPENDWATCH_INGEST_MAX_BYTES = env_int("SPENDWATCH_INGEST_MAX_BYTES", 10 * 1024 * 1024)
# The ingest buffer (`Prefer: respond-async`, apps/ingestion/buffer.py): bodies up to _MAX_BYTES are stored
# and answered 202; a worker drains them _SECONDS later, at most _DRAIN_ROWS bodies / _DRAIN_BYTES per run.
# A larger body is ingested at once, as without the header. Drained receipts are kept _RECEIPT_DAYS.
SPENDWATCH_INGEST_BUFFER_MAX_BYTES = env_int("SPENDWATCH_INGEST_BUFFER_MAX_BYTES", 1024 * 1024)
SPENDWATCH_INGEST_BUFFER_SECONDS = env_int("SPENDWATCH_INGEST_BUFFER_SECONDS", 2)
SPENDWATCH_INGEST_BUFFER_DRAIN_ROWS = env_int("SPENDWATCH_INGEST_BUFFER_DRAIN_ROWS", 20_000)
SPENDWATCH_INGEST_BUFFER_DRAIN_BYTES = env_int("SPENDWATCH_INGEST_BUFFER_DRAIN_BYTES", 64 * 1024 * 1024)
SPENDWATCH_INGEST_RECEIPT_DAYS = env_int("SPENDWATCH_INGEST_RECEIPT_DAYS", 7)

# --- Scheduled pulls from provider admin APIs (apps/ingestion/pulls.py; README "Scheduled pulls") ---
# Fernet keys for stored provider credentials, comma-separated (or a file via _FILE): the first encrypts,
# all decrypt, so rotation is "new key first, re-encrypt, drop the old one". Never derived from SECRET_KEY.
SPENDWATCH_CREDENTIAL_KEYS = [
    k.strip() for k in env_secret("SPENDWATCH_CREDENTIAL_KEYS", "").split(",") if k.strip()
]
# Requests per second per provider key, across all workers; the margin absorbs send-time jitter.
SPENDWATCH_PULL_REQUESTS_PER_SECOND = float(env_str("SPENDWATCH_PULL_REQUESTS_PER_SECOND", "2"))
SPENDWATCH_PULL_RATE_MARGIN_MS = env_int("SPENDWATCH_PULL_RATE_MARGIN_MS", 100)
SPENDWATCH_PULL_MAX_ATTEMPTS = env_int("SPENDWATCH_PULL_MAX_ATTEMPTS", 8)  # per page, on 429/5xx/network
SPENDWATCH_PULL_BACKOFF_BASE_MS = env_int("SPENDWATCH_PULL_BACKOFF_BASE_MS", 1000)
SPENDWATCH_PULL_BACKOFF_CAP_MS = env_int("SPENDWATCH_PULL_BACKOFF_CAP_MS", 60_000)
SPENDWATCH_PULL_MAX_WAIT_SECONDS = env_int(
    "SPENDWATCH_PULL_MAX_WAIT_SECONDS", 300
)  # longest Retry-After obeyed
SPENDWATCH_PULL_TIMEOUT_SECONDS = env_int("SPENDWATCH_PULL_TIMEOUT_SECONDS", 60)
SPENDWATCH_PULL_MAX_PAGES = env_int("SPENDWATCH_PULL_MAX_PAGES", 500)  # per window: a safety cap on paging
# A bucket counts as complete (the cursor may pass it) once it ended this long ago: late data is re-read.
SPENDWATCH_PULL_SETTLE_HOURS = env_int("SPENDWATCH_PULL_SETTLE_HOURS", 24)
SPENDWATCH_PULL_LEASE_SECONDS = env_int(
    "SPENDWATCH_PULL_LEASE_SECONDS", 900
)  # a dead worker's pull lock expires

# --- Budgets --------------------------------------------------------------------------------------
# What the gateway check API answers when it cannot read the budget state (database unreachable):
# true = "allowed" (AI traffic keeps flowing, limits are not enforced meanwhile), false = "not allowed".
SPENDWATCH_BUDGET_CHECK_FAIL_OPEN = env_bool("SPENDWATCH_BUDGET_CHECK_FAIL_OPEN", True)
# How long each web process keeps gateway keys and the person/team/task directory in memory.
SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS = env_int("SPENDWATCH_BUDGET_CHECK_CACHE_SECONDS", 60)
# How often each web process asks whether the budget states changed (an ingestion shows within this).
SPENDWATCH_BUDGET_CHECK_POLL_MS = env_int("SPENDWATCH_BUDGET_CHECK_POLL_MS", 250)
# Alert delivery: SMTP and webhook timeout, and how many runs retry a failing channel.
SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS = env_int("SPENDWATCH_BUDGET_NOTIFY_TIMEOUT_SECONDS", 10)
SPENDWATCH_BUDGET_ALERT_MAX_ATTEMPTS = env_int("SPENDWATCH_BUDGET_ALERT_MAX_ATTEMPTS", 5)

# --- Weekly digests (apps/digests; README "Weekly digests") ---------------------------------------
# Absolute links in emails point here (the address people open SpendWatch at).
SPENDWATCH_BASE_URL = env_str("SPENDWATCH_BASE_URL", "http://127.0.0.1:8000")
# A figure about fewer people than this (a team's spend, non-work use, people over a limit) is hidden.
SPENDWATCH_DIGEST_MIN_GROUP_SIZE = env_int("SPENDWATCH_DIGEST_MIN_GROUP_SIZE", 3)
# Hours after the scheduled moment (default Monday 08:00, organisation time) a digest may still go out.
SPENDWATCH_DIGEST_SEND_WINDOW_HOURS = env_int("SPENDWATCH_DIGEST_SEND_WINDOW_HOURS", 24)
SPENDWATCH_DIGEST_MAX_ATTEMPTS = env_int("SPENDWATCH_DIGEST_MAX_ATTEMPTS", 5)  # per recipient and week
# A run that died while building a digest leaves a claim that another run may take over after this.
SPENDWATCH_DIGEST_CLAIM_SECONDS = env_int("SPENDWATCH_DIGEST_CLAIM_SECONDS", 900)
SPENDWATCH_DIGEST_SMTP_TIMEOUT_SECONDS = env_int("SPENDWATCH_DIGEST_SMTP_TIMEOUT_SECONDS", 30)
# Charts are drawn by this browser (kaleido); empty: digests without images. Nothing is downloaded.
SPENDWATCH_CHROMIUM_PATH = env_str("SPENDWATCH_CHROMIUM_PATH", "/usr/bin/chromium")
SPENDWATCH_DIGEST_DRY_RUN_DIR = Path(env_str("SPENDWATCH_DIGEST_DRY_RUN_DIR", str(VAR_DIR / "digests")))

# --- Security (check --deploy passes with DEBUG=0, SPENDWATCH_HTTPS=1 and a real SECRET_KEY) -------
SPENDWATCH_HTTPS = env_bool("SPENDWATCH_HTTPS", False)
SECURE_SSL_REDIRECT = SPENDWATCH_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # a load balancer's probe may come over plain HTTP
SESSION_COOKIE_SECURE = SPENDWATCH_HTTPS
CSRF_COOKIE_SECURE = SPENDWATCH_HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if SPENDWATCH_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SPENDWATCH_HTTPS
SECURE_HSTS_PRELOAD = SPENDWATCH_HTTPS
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SPENDWATCH_BEHIND_PROXY", False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
# Content-Security-Policy (django-csp) on every response. Scripts: our own files only; no inline script
# (charts travel as JSON, apps/dashboards/embed.py), no eval. Styles allow 'unsafe-inline' because plotly.js
# writes <style> elements and style attributes as it draws (README "Secrets, headers and supply chain").
from csp import constants as csp_keywords  # noqa: E402 - lower case, so not a setting itself

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_keywords.SELF],
        # A nonce is added only for a page that asks for request.csp_nonce (none does today).
        "script-src": [csp_keywords.SELF, csp_keywords.NONCE],
        "style-src": [csp_keywords.SELF, csp_keywords.UNSAFE_INLINE],
        "img-src": [csp_keywords.SELF, "data:"],
        "font-src": [csp_keywords.SELF],
        "connect-src": [csp_keywords.SELF],
        "object-src": [csp_keywords.NONE],
        "base-uri": [csp_keywords.NONE],
        "form-action": [csp_keywords.SELF],
        "frame-ancestors": [csp_keywords.NONE],
    }
}
# /api/schema/ and /api/docs/ for signed-in people only; Swagger UI from the installed sidecar, not a CDN.
SPECTACULAR_SETTINGS |= {
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Every log record is scrubbed of key-shaped strings when it is made (spendwatch/logging.py), whichever
# handler writes it, Celery's included; the console handler's filter says so where the handlers are.
LOGGING_CONFIG = "spendwatch.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "spendwatch.logging.RedactSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "apps.dashboards.staticfinders.PlotlyFinder",
]
