"""Taskyard settings. Everything that differs between machines comes from the environment."""

import os
import warnings
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# The fallback key only suits a development checkout; production sets SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "taskyard-insecure-development-key-change-me")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Trigram indexes (project.indexes.TrigramIndex) on PostgreSQL; inert on SQLite.
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "project",
    "jobs",
    "external_tasks",
    "console",
]

MIDDLEWARE = [
    "project.middleware.RequestSizeLimitMiddleware",
    "project.middleware.BadInputMiddleware",
    "project.middleware.SecurityMiddleware",
    "project.middleware.ContentSecurityPolicyMiddleware",
    "project.middleware.StaticFilesMiddleware",
    "project.middleware.SessionMiddleware",
    "project.middleware.CommonMiddleware",
    "project.middleware.CsrfViewMiddleware",
    "project.middleware.AuthenticationMiddleware",
    "project.middleware.LoginRequiredMiddleware",
    "project.middleware.MessageMiddleware",
    "project.middleware.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = "project.wsgi.application"

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

# Unset DATABASE_URL = the embedded SQLite file, so a fresh checkout runs with zero setup.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN, which serialises claims: two workers
    # can never read the same free row and both lock it. WAL lets readers continue meanwhile.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
# JIT compiles 30-40 ms of code for big sorts and counts, longer than those queries run on
# their own; this is an OLTP workload. PG_OPTIONS="" keeps the server's own settings.
PG_OPTIONS = os.environ.get("PG_OPTIONS", "-c jit=off")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and PG_OPTIONS:
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = PG_OPTIONS


def pool_options(database: dict) -> dict:
    """PostgreSQL: a per-process connection pool (psycopg_pool), so a request borrows an open
    connection instead of forking a backend and authenticating (several ms per request under
    ASGI, where every request runs in a new thread). Off with DB_POOL_MAX=0 or CONN_MAX_AGE > 0:
    Django allows either persistent connections or a pool, not both."""
    max_size = int(os.environ.get("DB_POOL_MAX", "4"))
    if database["ENGINE"] != "django.db.backends.postgresql" or database["CONN_MAX_AGE"]:
        return {}
    if max_size <= 0:
        return {}
    from psycopg_pool import ConnectionPool

    pool = {
        "min_size": min(int(os.environ.get("DB_POOL_MIN", "1")), max_size),
        "max_size": max_size,
        # A request waits this long for a free connection, then fails with a 500.
        "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
        # Test a connection as it leaves the pool (an empty query, one round trip) and replace
        # a dead one: a database restart, a failover or a killed backend then fails no request
        # that merely drew a connection which died while idle.
        "check": ConnectionPool.check_connection,
    }
    return {"pool": pool}


DATABASES["default"].setdefault("OPTIONS", {}).update(pool_options(DATABASES["default"]))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# INCLUDE columns of covering indexes only matter on PostgreSQL; SQLite ignores them, correctly.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed file names (long browser caching) need `collectstatic` first, so production opts in
# with STATIC_MANIFEST=true; a fresh checkout serves the files straight from static/.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("STATIC_MANIFEST", False)
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True
# Until `collectstatic` has run, STATIC_ROOT does not exist and the finders serve static/.
warnings.filterwarnings("ignore", message="No directory at")

# Browser security. The console uses no inline scripts, so the policy forbids them.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],  # htmx sets indicator styles inline
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO.
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (os.environ["SECURE_PROXY_SSL_HEADER"], "https")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))  # sent over HTTPS only
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_REFERRER_POLICY = "same-origin"
# Request bodies above this size are refused with 413 before anything parses them.
MAX_REQUEST_BODY_BYTES = int(os.environ.get("MAX_REQUEST_BODY_BYTES", str(10 * 2**20)))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Every password check (console, admin, HTTP Basic on every face and on /metrics) goes through
# this backend, which applies the login throttle (project/throttle.py, deployment.md).
AUTHENTICATION_BACKENDS = ["project.backends.ThrottledModelBackend"]
# Failed logins allowed per (user, address) within the window; then that pair is refused.
LOGIN_RATE_LIMIT = int(os.environ.get("LOGIN_RATE_LIMIT", "10"))
LOGIN_RATE_WINDOW_SECONDS = int(os.environ.get("LOGIN_RATE_WINDOW_SECONDS", "300"))
# A user failing this often from all addresses together is under attack: a pair then allows
# only LOGIN_RATE_LIMIT_UNDER_ATTACK failures, except from addresses the user logged in from.
LOGIN_USER_SLOWDOWN_AFTER = int(os.environ.get("LOGIN_USER_SLOWDOWN_AFTER", "30"))
LOGIN_RATE_LIMIT_UNDER_ATTACK = int(os.environ.get("LOGIN_RATE_LIMIT_UNDER_ATTACK", "3"))
# An address failing this often (many user names) is refused for users new to it.
LOGIN_ADDRESS_LIMIT = int(os.environ.get("LOGIN_ADDRESS_LIMIT", "100"))
# How long a successful login makes its address a known one for the user.
LOGIN_KNOWN_ADDRESS_SECONDS = int(os.environ.get("LOGIN_KNOWN_ADDRESS_SECONDS", str(30 * 86400)))
LOGIN_THROTTLE_CACHE = os.environ.get("LOGIN_THROTTLE_CACHE", "default")
# Proxies (addresses or networks) whose X-Forwarded-For is believed for the client address.
TASKYARD_TRUSTED_PROXIES = env_list("TASKYARD_TRUSTED_PROXIES", "")
CACHES = {
    # Per process; login throttling state. Multi-host deployments can point this at the
    # database cache table (`createcachetable`) with CACHE_BACKEND=database.
    "default": (
        {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "taskyard_cache"}
        if os.environ.get("CACHE_BACKEND") == "database"
        else {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            # Room for the throttle's counters: a full cache evicts, and an attacker spraying
            # user names must not be able to evict the counters that hold them back.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    )
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # HTMX reads the token from the page, not the cookie.
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "project.rest.auth.BasicAuthentication",
        "project.rest.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["project.rest.auth.CanView"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["project.rest.parsers.LenientJSONParser"],
    "EXCEPTION_HANDLER": "project.rest.errors.camunda_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Taskyard API",
    "DESCRIPTION": "Camunda 7 job and external task REST API, Flowable external worker API "
    "and the acquire-external-worker-jobs API.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Everything requires a login, the API description included.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI served from our own static files: no CDN, and it works under our CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Paths answered by DRF (or by views that authenticate like DRF): 401 JSON, never a login page.
API_PATH_PREFIXES = ("/engine-rest/", "/external-job-api/", "/api/")

TASKYARD = {
    # Upper bound for Camunda's asyncResponseTimeout (long polling), in milliseconds.
    "MAX_ASYNC_RESPONSE_TIMEOUT_MS": 1_800_000,
    # Largest page a list endpoint returns when maxResults is missing or bigger.
    "MAX_RESULTS_LIMIT": int(os.environ.get("TASKYARD_MAX_RESULTS", "10000")),
}

# LOG_FORMAT=json writes one JSON object per line (for log shippers); every line carries the
# id of the request it belongs to, which is also sent back in the X-Request-ID header.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "project.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "()": "project.logs.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "project.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("LOG_FORMAT", "").lower() == "json" else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's default config gives these their own unformatted (unescaped) handlers; send
        # them through ours like every other logger. (uvicorn's go there too: manage.py serve.)
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        # Django logs every task's start and success at INFO: two lines per job, hundreds of
        # jobs a second, and a TaskResult built for each. Like the executor's own success line
        # they show at DEBUG; failures (ERROR) always show.
        "django.tasks": {
            "level": "DEBUG" if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG" else "WARNING"
        },
    },
}

# ---------------------------------------------------------------------------------------------
# OPERATIONS (issue #11): metrics, health, request logs, retention. See project/docs/deployment.md.

# The request log middleware goes first so its id and timing cover everything below it.
MIDDLEWARE.insert(0, "project.logs.RequestLogMiddleware")
# Every Nth response of a web process closes its connection, so that the clients' reconnects
# spread the load over the processes of `serve --workers N` (project/asgi.py). 0: never.
TASKYARD_KEEPALIVE_REQUESTS = max(int(os.environ.get("TASKYARD_KEEPALIVE_REQUESTS", "100")), 0)
# Header carrying the request id in and out (a proxy's id is kept when it sends one).
TASKYARD_REQUEST_ID_HEADER = os.environ.get("TASKYARD_REQUEST_ID_HEADER", "X-Request-ID")

# /metrics: a bearer token for Prometheus, or a viewer account by HTTP Basic. Set
# TASKYARD_METRICS_PUBLIC only when a network rule keeps the path away from the world.
TASKYARD_METRICS_TOKEN = os.environ.get("TASKYARD_METRICS_TOKEN", "")
TASKYARD_METRICS_PUBLIC = env_bool("TASKYARD_METRICS_PUBLIC", False)
# Backlog gauges are recounted at most this often, in the background; scrapes read the last
# snapshot. It is also kept in this Django cache: a shared one (database, Redis) lets the server
# processes take turns instead of each counting.
TASKYARD_METRICS_REFRESH_SECONDS = float(os.environ.get("TASKYARD_METRICS_REFRESH_SECONDS", "15"))
TASKYARD_METRICS_CACHE = os.environ.get("TASKYARD_METRICS_CACHE", "default")
# A process's first scrape waits this long for the first count, then answers without backlog
# gauges that once (None: count in the scraping thread, however long it takes).
TASKYARD_METRICS_FIRST_WAIT_SECONDS = float(
    os.environ.get("TASKYARD_METRICS_FIRST_WAIT_SECONDS", "0.5")
)
# A state with more rows than this is estimated on PostgreSQL from a block sample of about
# TASKYARD_METRICS_SAMPLE_ROWS rows instead of being counted.
TASKYARD_METRICS_EXACT_LIMIT = int(os.environ.get("TASKYARD_METRICS_EXACT_LIMIT", "10000"))
TASKYARD_METRICS_SAMPLE_ROWS = int(os.environ.get("TASKYARD_METRICS_SAMPLE_ROWS", "50000"))
# Topics / handlers past this many get summed up under the label "__other__".
TASKYARD_METRICS_MAX_GROUPS = int(os.environ.get("TASKYARD_METRICS_MAX_GROUPS", "200"))

# Retention for `manage.py prune_history`, in days; empty = keep forever. The worker history
# (JobLog, ExternalTaskLog of finished work) goes first; the audit trail is kept longer.
TASKYARD_HISTORY_RETENTION_DAYS = os.environ.get("TASKYARD_HISTORY_RETENTION_DAYS", "30") or None
TASKYARD_AUDIT_RETENTION_DAYS = os.environ.get("TASKYARD_AUDIT_RETENTION_DAYS", "365") or None
# Rows deleted per statement (each batch is its own short transaction).
TASKYARD_PRUNE_BATCH_SIZE = int(os.environ.get("TASKYARD_PRUNE_BATCH_SIZE", "5000"))
# Optional streaming replica for reads that tolerate lag (views opt in; see project/db_routers).
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        os.environ["DATABASE_REPLICA_URL"],
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
    DATABASES["replica"].setdefault("OPTIONS", {}).update(pool_options(DATABASES["replica"]))
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["project.db_routers.ReplicaRouter"]
# ------------------------------------------------------------------------- end of OPERATIONS

# =============================================================================================
# Job executor and django.tasks backend (jobs/backends.py, `manage.py runjobs`)
# =============================================================================================
# Enqueued django.tasks become Job rows that `runjobs` executes. QUEUES empty = any queue name.
TASKS = {
    "default": {
        "BACKEND": "jobs.backends.DatabaseBackend",
        "QUEUES": env_list("TASKYARD_TASK_QUEUES", ""),
    }
}
TASKYARD_EXECUTOR = {
    # Camunda's failedJobRetryTimeCycle: R<retries>/<interval> or a list of intervals.
    "RETRY_CYCLE": os.environ.get("TASKYARD_RETRY_CYCLE", "R3/PT5M"),
    # R<n>/<interval> waits interval * BACKOFF_FACTOR ** (failure - 1), at most MAX_RETRY_DELAY.
    "BACKOFF_FACTOR": float(os.environ.get("TASKYARD_BACKOFF_FACTOR", "2")),
    "MAX_RETRY_DELAY": os.environ.get("TASKYARD_MAX_RETRY_DELAY", "PT1H"),
    # A claimed job's lock; running jobs renew it, a dead executor's jobs run again after it.
    "LOCK_TIME": os.environ.get("TASKYARD_JOB_LOCK_TIME", "PT5M"),
    "POLL_INTERVAL": float(os.environ.get("TASKYARD_JOB_POLL_INTERVAL", "1")),
    # Fail a handler running longer than this (seconds or ISO 8601); unset = no limit.
    "TIMEOUT": os.environ.get("TASKYARD_JOB_TIMEOUT") or None,
    # Handlers are django.tasks tasks of installed apps; plain callables only from these modules
    # (whoever may create a job picks its handler: never let that be any importable function).
    "HANDLER_MODULES": env_list("TASKYARD_HANDLER_MODULES", ""),
}
# runjobs logs one line per job itself (logger "taskyard.executor"); django.tasks' records of
# each start and finish would repeat it. Its warnings and errors (with tracebacks) still show.
LOGGING.setdefault("loggers", {})["django.tasks"] = {"level": "WARNING"}
