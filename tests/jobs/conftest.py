import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Every API request authenticates with HTTP Basic, which hashes the password; the default
    # PBKDF2 cost made these tests spend most of their time hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def test_handlers_allowed(settings):
    # Job handlers must come from configured modules; the tests' handlers live here.
    executor = dict(getattr(settings, "TASKYARD_EXECUTOR", {}))
    executor["HANDLER_MODULES"] = [*executor.get("HANDLER_MODULES", []), "tests.jobs.handlers"]
    settings.TASKYARD_EXECUTOR = executor
