"""Failed-login throttling for the console and HTTP Basic: per username and per address."""

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, address: str | None) -> list[str]:
    keys = [f"login-fail:user:{(username or '').lower()}"]
    if address:
        keys.append(f"login-fail:addr:{address}")
    return keys


def client_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def is_blocked(username: str, address: str | None) -> bool:
    limit = settings.LOGIN_RATE_LIMIT
    return any((cache.get(key) or 0) >= limit for key in _keys(username, address))


def record_failure(username: str, address: str | None) -> None:
    window = settings.LOGIN_RATE_WINDOW_SECONDS
    for key in _keys(username, address):
        if not cache.add(key, 1, window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, window)


def reset(username: str, address: str | None) -> None:
    cache.delete_many(_keys(username, ""))  # a good login clears the user's count only
