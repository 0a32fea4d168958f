"""Settings for the test suite: fixed throwaway keys, real PostgreSQL and Redis on loopback."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# A fixed throwaway key, so worker subprocesses started by tests decrypt what the tests wrote.
os.environ.setdefault("CREDENTIAL_KEYS", "dGVzdC1vbmx5LWNyZWRlbnRpYWwta2V5LTMyYnl0ZXM=")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/serversync")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

from config.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
