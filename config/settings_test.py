"""Settings for the test suite: fixed throwaway keys, real PostgreSQL and Redis on loopback."""

import hashlib
import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A fixed throwaway key, so worker subprocesses started by tests decrypt what the tests wrote.
os.environ.setdefault("CREDENTIAL_KEYS", "dGVzdC1vbmx5LWNyZWRlbnRpYWwta2V5LTMyYnl0ZXM=")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/serversync")
# Each pytest-xdist worker gets its own Redis database (1, 2, ...); pytest-django
# already gives each its own PostgreSQL database (test_serversync_gw0, ...).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw-1").removeprefix("gw")
REDIS_TEST_DB = (int(_WORKER) if _WORKER.isdigit() else -1) % 15 + 1
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379")
os.environ.setdefault("CELERY_BROKER_URL", f"{os.environ['REDIS_URL']}/{REDIS_TEST_DB}")

from config.settings import *  # noqa: E402, F403

# Test runs on one machine keep apart (two checkouts, or two runs in one):
# their own database names and their own Redis key prefix. pytest-xdist gives
# each run an id; a run without xdist is told apart by its checkout.
CHECKOUT_ID = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]  # noqa: F405, S324
CHECKOUT_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:12] or CHECKOUT_ID
DATABASES["default"]["TEST"] = {"NAME": f"test_serversync_{CHECKOUT_ID}"}  # noqa: F405
# Threads a test starts (the live server) must not keep connections open past
# the test, or the test database cannot be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
REDIS_KEY_PREFIX = f"serversync-test-{CHECKOUT_ID}:"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
# A test that needs a worker to die at a precise point names it here (in the
# worker's environment); production settings never read this variable.
SYNC_CRASH_POINTS = frozenset(os.environ.get("SYNC_CRASH_POINTS", "").split(",")) - {""}
