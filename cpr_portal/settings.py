"""Django settings for CPR Portal, read from the environment.

With nothing set, the portal runs on its embedded defaults: a SQLite file in the
project folder, Celery in eager mode, email printed to the console, DEBUG on and a
development secret key. With DJANGO_DEBUG=false every production value must be given,
and a missing one stops start-up with ImproperlyConfigured naming the variable.
README.md lists every variable.
"""

from email.utils import parseaddr
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# CPR_READ_DOTENV=false ignores the .env file: bench/run sets it, so that a developer's .env
# cannot point the benchmark's server at real services.
if env.bool("CPR_READ_DOTENV", default=True) and (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=True)


def positive_int_env(name: str, default: int, *, minimum: int = 1) -> int:
    """Return a whole number of at least `minimum` from the environment, or stop start-up."""
    raw = env.str(name, default=str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of at least {minimum}, got {raw!r}."
        )
    return value


def required_env(name: str) -> str:
    """Return a variable that production needs, or stop start-up naming it."""
    value = env.str(name, default="").strip()
    if not value:
        raise ImproperlyConfigured(
            f"Set the {name} environment variable: it is missing or empty, "
            "and DJANGO_DEBUG=false requires it."
        )
    return value


if DEBUG:
    SECRET_KEY = env(
        "DJANGO_SECRET_KEY", default="django-insecure-development-key-not-for-production"
    )
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
    DATABASES = {
        "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
    }
else:
    SECRET_KEY = required_env("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = [
        host.strip() for host in required_env("DJANGO_ALLOWED_HOSTS").split(",") if host.strip()
    ]
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "Set DJANGO_ALLOWED_HOSTS to the site's host names, separated by commas; "
            "it contains no host name."
        )
    DATABASES = {"default": env.db_url_config(required_env("DATABASE_URL"))}

if not DATABASES["default"].get("ENGINE"):
    raise ImproperlyConfigured(
        "DATABASE_URL is not a database URL Django can use. Give one such as "
        "postgres://user:password@host:5432/name or sqlite:////path/to/db.sqlite3."
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock when a transaction starts, so two approvals of the
    # same application wait for each other instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )

DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0 if DEBUG else 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.mfa",
    "members",
    "billing",
    "access",
    "backup_restore",
    "odoo_import",
    "outbox",
    "bookings",
    "benchmarks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "members.middleware.StoredLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "members.middleware.StaffMFARequiredMiddleware",
]

ROOT_URLCONF = "cpr_portal.urls"
WSGI_APPLICATION = "cpr_portal.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cpr_portal.context_processors.site",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Authentication: django-allauth. Members sign in with Google or an emailed code; staff
# sign in with email and password, and must add a TOTP second factor.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "members:portal_dashboard"
ACCOUNT_ADAPTER = "members.accounts.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "members.accounts.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
# Sign-up is closed (see members.accounts), but allauth shows the password field on the
# sign-in form only when password1 is listed here.
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Code Puerto Rico] "
# Rate limits are allauth's defaults (ACCOUNT_RATE_LIMITS unset): for example 30 logins
# a minute per IP, 5 failed logins per 5 minutes per account, and 3 code requests a
# minute per email address. They are counted in the default cache.
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_FORMS = {"signup": "members.forms.GoogleApplicationForm"}
# Google credentials come from the environment only, so no SocialApp row and no secret
# lives in the database. Without them the Google button is hidden.
GOOGLE_CLIENT_ID = env("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env("GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": (
            [{"client_id": GOOGLE_CLIENT_ID, "secret": GOOGLE_CLIENT_SECRET, "key": ""}]
            if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET
            else []
        ),
        "SCOPE": ["openid", "profile", "email"],
        "AUTH_PARAMS": {"prompt": "select_account"},
        "OAUTH_PKCE_ENABLED": True,
        "EMAIL_AUTHENTICATION": True,
    },
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Code Puerto Rico"

# Internationalisation: English first, Puerto Rico Spanish as the second language.
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("es", _("Spanish")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Our own "es" formats: Spanish date words with US-style numbers ($1,250.00).
FORMAT_MODULE_PATH = ["cpr_portal.formats"]
# The session key that stores a signed-in person's language choice (see
# members.middleware.StoredLanguageMiddleware).
CPR_LANGUAGE_SESSION_KEY = "cpr_language"
TIME_ZONE = "America/Puerto_Rico"
USE_TZ = True

# Static files, served by whitenoise in every environment.
STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        ),
    },
}

# Folder for the archives of `manage.py backup` and the safety backups of `restore`.
CPR_BACKUP_DIR = env.path("CPR_BACKUP_DIR", default=BASE_DIR / "backups")

CACHES = {
    "default": env.cache("CACHE_URL", default="locmemcache://cpr-portal"),
    # Rendered HTML that is the same for every visitor, cached in each process's memory,
    # so a hit costs no network round trip. Each fragment's key contains everything it shows
    # that can change while the process runs (the language, or the plans through
    # members.views.plans_cache_key), so no fragment goes out of date.
    "fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "cpr-portal-fragments",
        "TIMEOUT": 3600,
        "OPTIONS": {"MAX_ENTRIES": 1000},
    },
}

# Email: printed to the console in development, SMTP to the Postfix relay in production.
# EMAIL_URL is parsed by django-environ and handed to Django's MAILERS setting.
EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
SMTP_OPTIONS = {
    "host": EMAIL_CONFIG.get("EMAIL_HOST"),
    "port": EMAIL_CONFIG.get("EMAIL_PORT"),
    "username": EMAIL_CONFIG.get("EMAIL_HOST_USER"),
    "password": EMAIL_CONFIG.get("EMAIL_HOST_PASSWORD"),
    "use_tls": EMAIL_CONFIG.get("EMAIL_USE_TLS"),
    "use_ssl": EMAIL_CONFIG.get("EMAIL_USE_SSL"),
    # In production the Celery worker sends every email, so a slow relay delays no web
    # request. The timeout stays well below GUNICORN_TIMEOUT all the same, for
    # `sendtestemail` and for development, where tasks run inline.
    "timeout": env.int("EMAIL_TIMEOUT", default=10),
}
MAILERS = {
    "default": {
        "BACKEND": EMAIL_CONFIG["EMAIL_BACKEND"],
        # Only the SMTP backend takes connection options; the others reject unknown ones.
        "OPTIONS": (
            {key: value for key, value in SMTP_OPTIONS.items() if value not in (None, "")}
            if EMAIL_CONFIG["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
            else {}
        ),
    },
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Code Puerto Rico <info@code.pr>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The address public pages show people for questions.
CPR_CONTACT_EMAIL = env("CPR_CONTACT_EMAIL", default=parseaddr(DEFAULT_FROM_EMAIL)[1])
# Outbox (outbox app): staff who get a notice of each new application, and the retry
# policy of the send task. A failed attempt waits CPR_OUTBOX_RETRY_BASE_SECONDS, doubled
# after each further failure up to CPR_OUTBOX_RETRY_MAX_SECONDS. After
# CPR_OUTBOX_MAX_ATTEMPTS attempts the email is marked failed for staff. A worker claims an
# email for CPR_OUTBOX_LEASE_SECONDS while sending it. The default is longer than the SMTP
# timeouts of one send add up to, so only a dead worker loses its claim to the sweep.
CPR_STAFF_NOTIFY_EMAILS = env.list("CPR_STAFF_NOTIFY_EMAILS", default=[CPR_CONTACT_EMAIL])
CPR_OUTBOX_MAX_ATTEMPTS = positive_int_env("CPR_OUTBOX_MAX_ATTEMPTS", 20)
CPR_OUTBOX_LEASE_SECONDS = positive_int_env("CPR_OUTBOX_LEASE_SECONDS", 600)
CPR_OUTBOX_RETRY_BASE_SECONDS = 60
CPR_OUTBOX_RETRY_MAX_SECONDS = 3600
# Maximum retry countdown given to the broker. The outbox sweep takes longer waits.
CPR_OUTBOX_MAX_COUNTDOWN_SECONDS = 900

# Celery: eager (tasks run inline) unless a broker is configured.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL.startswith("memory://")
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis hands an unacknowledged task to another worker after the visibility timeout,
# and a task with a countdown stays unacknowledged until it runs. So every countdown
# must stay well below it: the longest are billing's 3600 s cancellation retry and the
# outbox's CPR_OUTBOX_MAX_COUNTDOWN_SECONDS. A task of a worker that died runs again
# after this time; the outbox and webhook sweeps recover their rows sooner.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
# Periodic jobs, run by `celery -A cpr_portal beat` in CELERY_TIMEZONE. Each job is
# idempotent, so running hourly catches up after downtime. The minutes are staggered so
# that the jobs do not compete for the same rows.
CELERY_BEAT_SCHEDULE = {
    "apply-scheduled-cancellations": {
        "task": "billing.tasks.apply_scheduled_cancellations",
        "schedule": crontab(minute=5),
    },
    "apply-term-ends": {"task": "billing.tasks.apply_term_ends", "schedule": crontab(minute=10)},
    "activate-due-memberships": {
        "task": "billing.tasks.activate_due_memberships",
        "schedule": crontab(minute=15),
    },
    "suspend-overdue-memberships": {
        "task": "billing.tasks.suspend_overdue_memberships",
        "schedule": crontab(minute=20),
    },
    "expire-credit": {"task": "billing.tasks.expire_credit", "schedule": crontab(minute=25)},
    "process-stuck-webhook-events": {
        "task": "billing.tasks.process_stuck_webhook_events",
        "schedule": crontab(minute="*/10"),
    },
    "reconcile-access-keys": {
        "task": "access.tasks.reconcile_all_task",
        "schedule": crontab(minute="*/15"),
    },
    "sweep-outbox": {"task": "outbox.tasks.sweep_outbox", "schedule": crontab(minute="*/5")},
    "queue-commitment-reminders": {
        "task": "billing.tasks.queue_commitment_reminders",
        "schedule": crontab(hour=9, minute=0),
    },
}

# Billing. The fake gateway (a local pay page) is the default, so the portal runs with
# no payment account. Production sets the Stripe gateway and its keys.
PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="billing.gateways.fake.FakeGateway")
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
# Seconds a signed webhook stays valid after Stripe signed it (stripe-python's default).
STRIPE_WEBHOOK_TOLERANCE = positive_int_env("STRIPE_WEBHOOK_TOLERANCE", 300)
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
# Customer Portal configuration with self-cancellation off; empty: one is found or created.
STRIPE_PORTAL_CONFIGURATION_ID = env("STRIPE_PORTAL_CONFIGURATION_ID", default="")
# Days a member keeps access after a failed payment before the membership is suspended.
CPR_GRACE_PERIOD_DAYS = positive_int_env("CPR_GRACE_PERIOD_DAYS", 7)
# Public address of the site, for links in emails and gateway return URLs.
CPR_SITE_URL = env("CPR_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# Benchmarks: CPR_BENCHMARK_VIEWS=true mounts the bare view at /bench/bare/, the floor
# that bench/run measures pages against. Off in production.
CPR_BENCHMARK_VIEWS = env.bool("CPR_BENCHMARK_VIEWS", default=False)

# Meeting rooms. A booking cancelled at least this many hours before it starts gets its
# credit back and its overage charge removed; a later cancellation keeps both.
CPR_BOOKING_CANCEL_CUTOFF_HOURS = positive_int_env("CPR_BOOKING_CANCEL_CUTOFF_HOURS", 24, minimum=0)
# How many days ahead members can book a room.
CPR_BOOKING_HORIZON_DAYS = positive_int_env("CPR_BOOKING_HORIZON_DAYS", 90)

# Door access. The tracking backend records keys and calls nothing. Production may use
# Salto KS, whose OAuth2 client and the access groups our integration manages come from
# the environment.
ACCESS_BACKEND = env("ACCESS_BACKEND", default="access.backends.tracking.TrackingBackend")
# No default hosts: the Salto backend reports missing URLs instead of guessing them.
SALTO_API_BASE = env("SALTO_API_BASE", default="")
SALTO_TOKEN_URL = env("SALTO_TOKEN_URL", default="")
SALTO_CLIENT_ID = env("SALTO_CLIENT_ID", default="")
SALTO_CLIENT_SECRET = env("SALTO_CLIENT_SECRET", default="")
SALTO_SITE_ID = env("SALTO_SITE_ID", default="")
SALTO_ACCESS_GROUP_IDS = env.list("SALTO_ACCESS_GROUP_IDS", default=[])
SALTO_TIMEOUT_SECONDS = positive_int_env("SALTO_TIMEOUT_SECONDS", 10)
# Failed sync attempts of one key before it shows as failed to staff. The periodic
# reconciliation keeps retrying failed keys after that.
ACCESS_SYNC_MAX_ATTEMPTS = positive_int_env("ACCESS_SYNC_MAX_ATTEMPTS", 8)

# Public application form: accepted submissions per client IP address in a fixed window.
CPR_APPLY_RATE_LIMIT = positive_int_env("CPR_APPLY_RATE_LIMIT", 5)
CPR_APPLY_RATE_WINDOW_SECONDS = positive_int_env("CPR_APPLY_RATE_WINDOW_SECONDS", 3600)
# The request header that contains the client address when a trusted proxy sits in front
# (for example HTTP_CF_CONNECTING_IP behind Cloudflare). Empty: REMOTE_ADDR.
CPR_CLIENT_IP_HEADER = env("CPR_CLIENT_IP_HEADER", default="")

# Security. Production defaults are strict. A proxy that terminates TLS must send
# X-Forwarded-Proto, because Django treats only such requests as secure.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
