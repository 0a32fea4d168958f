"""Settings for the test suite: fixed throwaway keys, real PostgreSQL and Redis on loopback."""

import os
import secrets

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A fixed throwaway key, so worker subprocesses started by tests decrypt what the tests wrote.
os.environ.setdefault("CREDENTIAL_KEYS", "dGVzdC1vbmx5LWNyZWRlbnRpYWwta2V5LTMyYnl0ZXM=")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/serversync")
# pytest-django gives each pytest-xdist worker its own PostgreSQL database; in
# Redis each keeps to its own key prefix (below, and tests/conftest.py).
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379")
os.environ.setdefault("CELERY_BROKER_URL", f"{os.environ['REDIS_URL']}/1")

from config.settings import *  # noqa: F403

# Test runs on one machine keep apart (two checkouts, or two runs in one):
# their own database names and their own Redis key prefix. pytest-xdist gives
# each run an id; a run without xdist makes one, which the processes it starts
# (Celery workers) inherit through the environment.
CHECKOUT_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:12] or os.environ.setdefault(
    "SERVERSYNC_TEST_RUN_ID", secrets.token_hex(4)
)
DATABASES["default"]["TEST"] = {"NAME": f"test_serversync_{CHECKOUT_ID}"}  # noqa: F405
# Threads a test starts (the live server) must not keep connections open past
# the test, or the test database cannot be dropped at the end.
# A Celery worker a test starts may keep its own for as long as the test asks (the worker is
# stopped before the test ends).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("SERVERSYNC_TEST_WORKER_CONN_MAX_AGE") or 0)  # noqa: F405
# tests/conftest.py narrows it to one pytest-xdist worker and hands it to the
# worker processes tests start, through this variable.
REDIS_KEY_PREFIX = os.environ.get("SERVERSYNC_TEST_REDIS_PREFIX") or f"serversync-test-{CHECKOUT_ID}:"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
