"""Failed-login throttling, applied where credentials are checked (project.backends), so every
door obeys it: the console and admin logins, HTTP Basic on every face and on /metrics.

Guessing is slowed without handing anyone who knows a user name a way to lock that user out:
- a (user, address) pair that failed LOGIN_RATE_LIMIT times within the window is refused, the
  right password included (otherwise the throttle would still answer "right" or "wrong");
- once a user has failed LOGIN_USER_SLOWDOWN_AFTER times from all addresses together (guessing
  spread over many addresses), a pair allows only LOGIN_RATE_LIMIT_UNDER_ATTACK failures, except
  from addresses where the user logged in before: the right password from another address still
  gets through on its first try;
- an address that failed LOGIN_ADDRESS_LIMIT times (one host trying many user names) is refused
  for the users that never logged in from it; users who did (colleagues behind the same NAT)
  keep working.
See project/docs/deployment.md ("Login throttling") for what this protects against and what not.
"""

import hashlib
import ipaddress
from functools import cache as memoize

from django.conf import settings
from django.core.cache import caches

_THROTTLED = "taskyard_login_throttled"


def _store():
    return caches[settings.LOGIN_THROTTLE_CACHE]


def _digest(*parts: str) -> str:
    # Hashed, so that any user name (spaces, NUL, 300 characters) makes a valid cache key.
    text = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:40]


def _keys(username: str, address: str) -> dict[str, str]:
    user = (username or "").lower()
    return {
        "pair": f"login:pair:{_digest(user, address)}",
        "user": f"login:user:{_digest(user)}",
        "address": f"login:addr:{_digest(address)}",
        "known": f"login:known:{_digest(user, address)}",
    }


@memoize
def _trusted_proxies(spec: tuple[str, ...]):
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _is_trusted(address: str) -> bool:
    networks = _trusted_proxies(tuple(settings.TASKYARD_TRUSTED_PROXIES))
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or, when that is one of TASKYARD_TRUSTED_PROXIES, the
    right-most X-Forwarded-For entry that is not a trusted proxy (entries further left are
    whatever the client chose to send, so they are never believed)."""
    if request is None:
        return ""
    address = request.META.get("REMOTE_ADDR") or ""
    if not settings.TASKYARD_TRUSTED_PROXIES or not _is_trusted(address):
        return address
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([item.strip() for item in forwarded.split(",") if item.strip()]):
        if not _is_trusted(hop):
            return hop
    return address


def is_blocked(username: str, address: str) -> bool:
    """Whether an attempt for `username` from `address` is refused without checking it."""
    keys = _keys(username, address)
    found = _store().get_many(keys.values())
    count = {name: found.get(key) or 0 for name, key in keys.items()}
    if count["pair"] >= settings.LOGIN_RATE_LIMIT:
        return True
    if count["known"]:
        return False
    if (
        count["user"] >= settings.LOGIN_USER_SLOWDOWN_AFTER
        and count["pair"] >= settings.LOGIN_RATE_LIMIT_UNDER_ATTACK
    ):
        return True
    return bool(address) and count["address"] >= settings.LOGIN_ADDRESS_LIMIT


def record_failure(username: str, address: str) -> None:
    window = settings.LOGIN_RATE_WINDOW_SECONDS
    store = _store()
    keys = _keys(username, address)
    for name in ("pair", "user", "address"):
        if not store.add(keys[name], 1, window):
            try:
                store.incr(keys[name])
            except ValueError:  # expired between add and incr
                store.set(keys[name], 1, window)


def record_success(username: str, address: str) -> None:
    """A verified password clears its pair's failures and makes the address a known one for
    the user; the user's and the address's totals stay (they measure guessing elsewhere)."""
    keys = _keys(username, address)
    store = _store()
    store.delete(keys["pair"])
    store.set(keys["known"], 1, settings.LOGIN_KNOWN_ADDRESS_SECONDS)


def mark_throttled(request) -> None:
    if request is not None:
        setattr(request, _THROTTLED, True)


def was_throttled(request) -> bool:
    """Whether the last authenticate() on this request was refused by the throttle, so the door
    can say "too many failed logins" instead of "wrong password"."""
    return bool(getattr(request, _THROTTLED, False))
