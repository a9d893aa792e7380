"""Shared REST plumbing for every face: Camunda errors, dates, paging, sorting, auth, parsing."""

import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import connections, router
from django.db.models import F, OrderBy
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_duration
from rest_framework import authentication, exceptions, parsers, permissions, status
from rest_framework.response import Response

from project import tenancy, throttle

# ---------------------------------------------------------------------------------------------
# Errors: {"type": ..., "message": ...} with a 4xx status, exactly like Camunda's REST API.


class CamundaError(exceptions.APIException):
    """An error Camunda clients understand. Raise it anywhere below a REST view."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_type = "InvalidRequestException"

    def __init__(self, message: str, status_code: int | None = None, error_type: str | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type


class InvalidRequest(CamundaError):
    """400: a parameter or body value is wrong."""


class NotFound(CamundaError):
    """404: no such row, or not one the caller may see (other tenants look exactly the same)."""

    status_code = status.HTTP_404_NOT_FOUND


class BadUserRequest(CamundaError):
    """400: the request is well formed but the row's state forbids it (e.g. a foreign lock)."""

    error_type = "BadUserRequestException"


def error_body(error_type: str, message: str) -> dict:
    return {"type": error_type, "message": message}


def _flatten(detail) -> str:
    if isinstance(detail, Mapping):
        return "; ".join(
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in detail.items()
        )
    if isinstance(detail, list | tuple):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def camunda_exception_handler(exc, context):
    """DRF exception handler answering every error in Camunda's format."""
    if isinstance(exc, CamundaError):
        return Response(error_body(exc.error_type, exc.message), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("InvalidRequestException", str(exc) or "Not found"), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = Response(
            error_body("AuthenticationException", _flatten(exc.detail)),
            status=status.HTTP_401_UNAUTHORIZED,
        )
        request = context.get("request")
        view = context.get("view")
        header = view.get_authenticate_header(request) if view and request else None
        response["WWW-Authenticate"] = header or 'Basic realm="taskyard"'
        return response
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(error_body("AuthorizationException", _flatten(exc.detail)), status=403)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("InvalidRequestException", _flatten(exc.detail)), status=400)
    if isinstance(exc, exceptions.APIException):
        error_type = "InvalidRequestException" if exc.status_code < 500 else "RestException"
        response = Response(error_body(error_type, _flatten(exc.detail)), status=exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


# ---------------------------------------------------------------------------------------------
# Dates: out as yyyy-MM-dd'T'HH:mm:ss.SSSZ (UTC, "+0000"); in with any common offset form.

_DATE_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?))?"
    r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _utc_millis(value: datetime) -> str:
    # Not strftime: it drops the zero padding of years before 1000 on glibc.
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}"
    )


def format_date(value: datetime | None) -> str | None:
    """Camunda's date format, always in UTC: 2013-01-23T12:42:45.000+0000."""
    if value is None:
        return None
    return _utc_millis(value) + "+0000"


def format_date_z(value: datetime | None) -> str | None:
    """ISO 8601 with a Z suffix and milliseconds, as Flowable answers: 2021-05-04T16:35:10.474Z."""
    if value is None:
        return None
    return _utc_millis(value) + "Z"


def parse_date(value, name: str = "date") -> datetime:
    """Parse a date from a request; no offset means UTC. Bad values raise InvalidRequest."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    text = str(value).strip() if value is not None else ""
    match = _DATE_RE.match(text)
    if not match:
        raise InvalidRequest(
            f"Cannot convert value '{value}' of '{name}' to a date: expected "
            "yyyy-MM-dd'T'HH:mm:ss.SSSZ (e.g. 2013-01-23T14:42:45.000+0200)"
        )
    time_part = (match["time"] or "00:00:00").replace(",", ".")
    if len(time_part) == 5:
        time_part += ":00"
    if "." in time_part:
        base, fraction = time_part.split(".")
        time_part = f"{base}.{fraction[:6].ljust(6, '0')}"
    tz = match["tz"] or "+00:00"
    if tz in {"Z", "z"}:
        tz = "+00:00"
    elif len(tz) == 3:
        tz += ":00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    try:
        # Normalised to UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts.
        return datetime.fromisoformat(f"{match['date']}T{time_part}{tz}").astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidRequest(
            f"Cannot convert value '{value}' of '{name}' to a date: {error}"
        ) from None


def parse_iso_duration(value, name: str = "duration") -> timedelta:
    """ISO 8601 durations such as PT10M or P1DT2H, as Flowable and the seed API send them."""
    text = str(value or "").strip()
    duration = parse_duration(text) if text.upper().startswith("P") else None
    if duration is None:
        raise InvalidRequest(
            f"Cannot parse '{value}' of '{name}' as an ISO 8601 duration (e.g. PT10M)"
        )
    return duration


# ---------------------------------------------------------------------------------------------
# Request values: Camunda accepts comma-separated and repeated query keys, true/false flags.


def split_list(values: Iterable[str] | str | None) -> list[str]:
    """["a,b", "c"] or "a,b,c" -> ["a", "b", "c"] (empty items dropped)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [item.strip() for value in values for item in str(value).split(",") if item.strip()]


def parse_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1"}:
        return True
    if text in {"false", "0", ""}:
        return False
    raise InvalidRequest(f"Cannot set query parameter '{name}' to value '{value}': not a boolean")


def parse_int(value, name: str, minimum: int | None = None, java_type: str = "int") -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"Cannot convert value {value} to java type {java_type} for '{name}'")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise InvalidRequest(
            f"Cannot set query parameter '{name}' to value '{value}': "
            f"Cannot convert value {value} to java type {java_type}"
        ) from None
    bits = 31 if java_type == "int" else 63
    if not -(2**bits) <= number < 2**bits:
        raise InvalidRequest(f"Value {value} of '{name}' is out of range for java type {java_type}")
    if minimum is not None and number < minimum:
        raise InvalidRequest(f"'{name}' must be at least {minimum}, got {value}")
    return number


# ---------------------------------------------------------------------------------------------
# Paging and sorting.


def paging(params: Mapping) -> tuple[int, int | None]:
    """firstResult / maxResults from query parameters (Camunda sends them there even on POST)."""
    first = params.get("firstResult")
    maximum = params.get("maxResults")
    first = 0 if first in (None, "") else parse_int(first, "firstResult", minimum=0)
    maximum = None if maximum in (None, "") else parse_int(maximum, "maxResults", minimum=0)
    limit = settings.TASKYARD["MAX_RESULTS_LIMIT"]
    if maximum is None or maximum > limit:
        maximum = limit
    return first, maximum


def page(queryset, params: Mapping):
    first, maximum = paging(params)
    return window(queryset, first, maximum)


def window(queryset, first: int, count: int):
    """queryset[first : first + count] (it must be ordered), cheap for deep pages too.

    OFFSET reads and discards `first` rows. A deferred join lets it discard them on the
    narrowest thing that can answer: the ids alone, from an index-only scan where an index
    covers the filter and the order; only the page's own rows are then read in full. One
    statement, so one snapshot."""
    if not first:
        return queryset[:count]
    return queryset.filter(pk__in=queryset.values("pk")[first : first + count])


def sorting_from_query(params: Mapping) -> list[dict]:
    """GET style: sortBy and sortOrder, both or neither."""
    sort_by = params.get("sortBy")
    sort_order = params.get("sortOrder")
    if not sort_by and not sort_order:
        return []
    if not sort_by or not sort_order:
        raise InvalidRequest(
            "Only a single sorting parameter specified. sortBy and sortOrder required"
        )
    return [{"sortBy": sort_by, "sortOrder": sort_order}]


def sorting_from_body(body: Mapping) -> list[dict]:
    """POST style: "sorting": [{"sortBy": ..., "sortOrder": ...}, ...]; null means none."""
    sorting = body.get("sorting")
    if sorting is None:
        return []
    if isinstance(sorting, Mapping):
        sorting = [sorting]
    if not isinstance(sorting, list):
        raise InvalidRequest("'sorting' must be a list of {sortBy, sortOrder} objects")
    for item in sorting:
        if not isinstance(item, Mapping) or not item.get("sortBy") or not item.get("sortOrder"):
            raise InvalidRequest(
                "Invalid sorting: every element needs sortBy and sortOrder, got " + json.dumps(item)
            )
    return list(sorting)


def order_by(sorting: list[dict], keys: Mapping[str, str], tie_breaker: str = "id") -> list:
    """Translate Camunda sort criteria to ORDER BY expressions; unknown keys -> 400.

    `keys` maps a Camunda sortBy value to a model field. Nulls sort as the smallest value
    (first ascending, last descending) on every database, and the primary key breaks ties so
    paging is stable.
    """
    expressions = []
    descending = False
    for item in sorting:
        sort_by, sort_order = item["sortBy"], str(item["sortOrder"])
        # A list or object as sortBy is a bad value, not an unhashable-type crash.
        if not isinstance(sort_by, str) or sort_by not in keys:
            raise InvalidRequest(f"Cannot set query parameter 'sortBy' to value '{sort_by}'")
        if sort_order not in {"asc", "desc"}:
            raise InvalidRequest(f"Cannot set query parameter 'sortOrder' to value '{sort_order}'")
        descending = sort_order == "desc"
        expressions.append(nulls_smallest(F(keys[sort_by]), descending))
    # Ties go in the direction of the last key (Camunda leaves their order open), so one index
    # `(key ASC NULLS FIRST, id)` delivers the whole order read forwards or backwards.
    expressions.append(F(tie_breaker).desc() if descending else F(tie_breaker).asc())
    return expressions


def nulls_smallest(expression, descending: bool) -> OrderBy:
    """ORDER BY one key with nulls as the smallest value (dropped on NOT NULL columns)."""
    if descending:
        return _NullsSmallest(expression, descending=True, nulls_last=True)
    return _NullsSmallest(expression, descending=False, nulls_first=True)


class _NullsSmallest(OrderBy):
    """ORDER BY with nulls as the smallest value, spelled only where a column can be null.

    `ASC NULLS FIRST` / `DESC NULLS LAST` differ from PostgreSQL's defaults, so a plain btree
    index cannot deliver that order and every sorted page sorted the whole match (0.8 s for a
    topic's newest 50 of 1M tasks). On NOT NULL columns the clause changes nothing but the
    plan, so it is dropped there and the index on the column serves the sort."""

    def resolve_expression(self, *args, **kwargs):
        resolved = super().resolve_expression(*args, **kwargs)
        target = getattr(resolved.expression, "target", None)
        if target is not None and not target.null:
            resolved.nulls_first = resolved.nulls_last = None
        return resolved


# ---------------------------------------------------------------------------------------------
# Authentication and roles.


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
# Parsing.

_STRING_OR_COMMAS = re.compile(r'"(?:\\.|[^"\\])*"|,(?:\s*,)+|,(?=\s*[\]}])')


def _drop_stray_commas(text: str) -> str:
    def replace(match):
        token = match.group(0)
        if token.startswith('"'):
            return token
        return "," if not token.rstrip().endswith(("]", "}")) and "," in token[1:] else ""

    return _STRING_OR_COMMAS.sub(replace, text)


MAX_JSON_DEPTH = 32


def _depth(data) -> int:
    """Nesting depth without recursion (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, level + 1) for child in children)
    return deepest


def has_nul(data) -> bool:
    """Whether a NUL character hides in any string (or key) of the data. PostgreSQL text cannot
    store one (psycopg refuses the statement), so such input is refused up front with a 400 on
    every database, never a 500."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in values"


class LenientJSONParser(parsers.JSONParser):
    """JSON, forgiving the stray and trailing commas of hand-written bodies (Camunda's docs
    example for POST /job has one), so the documented examples work as written."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise exceptions.ParseError(f"Request body is not valid {encoding}: {error}") from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            try:
                data = json.loads(_drop_stray_commas(text))
            except ValueError as error:
                raise exceptions.ParseError(f"Invalid JSON in request body: {error}") from None
            except RecursionError:
                raise exceptions.ParseError("JSON nested too deeply") from None
        except RecursionError:
            raise exceptions.ParseError("JSON nested too deeply") from None
        if _depth(data) > MAX_JSON_DEPTH:
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if has_nul(data):
            raise exceptions.ParseError(f"Invalid request body: {NUL_MESSAGE}")
        return data


def json_body(request) -> dict:
    """The request's JSON object body; null or missing means {}; anything else is a 400."""
    data = request.data
    if data is None or data == {}:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequest("The request body must be a JSON object")
    return data
