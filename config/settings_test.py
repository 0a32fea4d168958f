"""Settings for the test suite: fixed throwaway keys, real PostgreSQL and Redis on loopback."""

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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns when it is missing
# A test that needs a worker to die at a precise point names it here (in the
# worker's environment); production settings never read this variable.
SYNC_CRASH_POINTS = frozenset(os.environ.get("SYNC_CRASH_POINTS", "").split(",")) - {""}
