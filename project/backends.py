"""The one place where passwords are checked: every door (console and admin login, HTTP Basic on
the faces and on /metrics) goes through django.contrib.auth.authenticate() and so through this
backend, which applies the login throttle (project.throttle) before anything else, the
verified-credentials cache included."""

import functools
import hashlib
import hmac
import json
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connections, router

from project import tenancy, throttle

# Verified credentials, per process: HMAC(username:password) -> (user pk, password hash, expiry).
# Workers send Basic on every request; re-running PBKDF2 each time would cap a worker at a few
# requests per second. An entry is only honoured while the stored password hash is unchanged,
# so a password change or deactivation takes effect immediately, and only after the throttle
# has let the attempt through, so a throttled pair cannot use it either.
_VERIFIED: dict[bytes, tuple[int, str, float]] = {}
_VERIFIED_TTL_SECONDS = 300
_VERIFIED_MAX = 10_000


@functools.cache
def _active_users():
    """Active accounts with their roles and tenants, built once per process: annotating the
    subqueries anew cost ~2 ms of every Basic-authenticated request, half of a trivial one."""
    return tenancy.with_roles_and_tenants(get_user_model().objects.filter(is_active=True))


_NO_PK = -1_987_654_321  # stands for the account id while the query is compiled (fits int4)


@functools.cache
def _account_sql(alias: str, vendor: str) -> tuple[str, tuple, int]:
    """`_active_users()` for one account id as SQL, compiled once per database: compiling the
    annotated query cost another ~1.5 ms of every Basic-authenticated request. Returns the SQL,
    its parameters and the position of the account id among them."""
    query = _active_users().filter(pk=_NO_PK).query
    sql, params = query.get_compiler(using=alias).as_sql()
    return sql, tuple(params), list(params).index(_NO_PK)


def _active_account(pk: int):
    """The active account `pk` with its roles and tenants (see tenancy.remember), or None."""
    model = get_user_model()
    alias = router.db_for_read(model)
    sql, params, at = _account_sql(alias, connections[alias].vendor)
    params = (*params[:at], pk, *params[at + 1 :])
    user = next(iter(model.objects.db_manager(alias).raw(sql, params)), None)
    if user is not None:
        for name in ("taskyard_role_names", "taskyard_tenant_ids"):
            value = getattr(user, name)
            if isinstance(value, str):  # JSON text, as raw rows leave it
                setattr(user, name, json.loads(value))
    return user


def _credential_key(username: str, password: str) -> bytes:
    secret = settings.SECRET_KEY.encode()
    text = f"{username}\0{password}".encode()
    return hmac.new(secret, text, hashlib.sha256).digest()


def _possible(text) -> bool:
    """A user name or password the database can even be asked about: a NUL (PostgreSQL refuses
    it in any string) or a lone surrogate (not encodable) can be no one's."""
    if not isinstance(text, str) or "\0" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _from_cache(key: bytes):
    cached = _VERIFIED.get(key)
    if not cached or cached[2] <= time.monotonic():
        return None
    # One query re-reads the account (a changed password or a deactivation refuses the next
    # request) together with its roles and tenants, which stay as current.
    user = _active_account(cached[0])
    if user is not None and user.password == cached[1]:
        return tenancy.remember(user)
    _VERIFIED.pop(key, None)
    return None


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend behind the login throttle and the verified-credentials cache."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if not _possible(username) or not _possible(password):
            return None
        address = throttle.client_address(request)
        if throttle.is_blocked(username, address):
            throttle.mark_throttled(request)
            raise PermissionDenied  # authenticate() stops here and answers None
        key = _credential_key(username, password)
        user = _from_cache(key)
        if user is not None:
            return user
        user = super().authenticate(request, username=username, password=password)
        if user is None:
            throttle.record_failure(username, address)
            return None
        throttle.record_success(username, address)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = (user.pk, user.password, time.monotonic() + _VERIFIED_TTL_SECONDS)
        return user

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        # ModelBackend's own async version would check the password without the throttle.
        return await sync_to_async(self.authenticate)(request, username, password, **kwargs)
