"""Settings for the uvicorn process the live tests start against the test database."""

from project.settings import *  # noqa: F403
from project.settings import TASKYARD

# Test users' passwords are hashed with MD5 to keep HTTP Basic cheap in tests.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# A long re-check interval proves that PostgreSQL wake-ups come from LISTEN/NOTIFY.
TASKYARD = {**TASKYARD, "LONG_POLL_RECHECK_SECONDS": 60.0, "SQLITE_POLL_SECONDS": 0.1}
