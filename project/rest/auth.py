"""Authentication (HTTP Basic with a verified-credentials cache, the console's session) and the
role permissions every face checks."""

import functools
import hashlib
import hmac
import json
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, router
from rest_framework import authentication, exceptions, permissions

from project import tenancy, throttle

# Verified Basic credentials, per process: HMAC(username:password) -> (user pk, password hash).
# Workers send Basic on every request; re-running PBKDF2 each time would cap a worker at a few
# requests per second. An entry is only honoured while the stored password hash is unchanged,
# so a password change or deactivation takes effect immediately.
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


def _credential_key(userid: str, password: str) -> bytes:
    secret = settings.SECRET_KEY.encode()
    return hmac.new(secret, f"{userid}\0{password}".encode(), hashlib.sha256).digest()


class BasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, what Camunda and Flowable clients send; a failed login answers 401, and
    repeated failures are throttled like console logins."""

    www_authenticate_realm = "taskyard"

    def authenticate_credentials(self, userid, password, request=None):
        key = _credential_key(userid, password)
        cached = _VERIFIED.get(key)
        if cached and cached[2] > time.monotonic():
            # One query re-reads the account (a changed password or a deactivation refuses
            # the next request) together with its roles and tenants, which stay as current.
            user = _active_account(cached[0])
            if user is not None and user.password == cached[1]:
                return (tenancy.remember(user), None)
            _VERIFIED.pop(key, None)
        address = throttle.client_address(request) if request is not None else None
        if throttle.is_blocked(userid, address):
            raise exceptions.AuthenticationFailed("Too many failed logins; try again later.")
        try:
            user, auth = super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(userid, address)
            raise
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[key] = (user.pk, user.password, time.monotonic() + _VERIFIED_TTL_SECONDS)
        return user, auth


class SessionAuthentication(authentication.SessionAuthentication):
    """The console's session, so the browser can call the API too (CSRF enforced)."""


class CanView(permissions.BasePermission):
    """Viewers, operators and admins may read; worker accounts only use worker endpoints."""

    message = "You are not allowed to read jobs or external tasks."

    def has_permission(self, request, view):
        return tenancy.can_view(request.user)


class CanOperate(permissions.BasePermission):
    message = "Only operators and admins may change jobs or external tasks."

    def has_permission(self, request, view):
        return tenancy.can_operate(request.user)


class CanDelete(permissions.BasePermission):
    message = "Only admins may delete."

    def has_permission(self, request, view):
        return tenancy.can_delete(request.user)


class CanWork(permissions.BasePermission):
    message = "Only worker accounts, operators and admins may fetch and complete work."

    def has_permission(self, request, view):
        return tenancy.can_work(request.user)


# ---------------------------------------------------------------------------------------------
