import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Every API request authenticates with HTTP Basic, which hashes the password; the default
    # PBKDF2 cost made these tests spend most of their time hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
