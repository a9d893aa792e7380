"""Reading requests: the lenient JSON body parser and Camunda's query values (comma-separated
and repeated keys, true/false flags, Java-ranged integers)."""

import json
import re
from collections.abc import Iterable, Mapping

from django.conf import settings
from rest_framework import exceptions, parsers

from project.errors import InvalidRequest
from project.middleware import NUL_MESSAGE


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


SURROGATE_MESSAGE = (
    "lone UTF-16 surrogates (\\ud800-\\udfff without their pair) are not allowed in values"
)


def unstorable_text(data) -> str | None:
    """Why some string (or key) of the data cannot be stored as text, or None. JSON may spell
    a NUL (\\u0000) or half a surrogate pair (\\ud800); neither survives the trip to the
    database (PostgreSQL refuses NUL, and no UTF-8 encoder takes a lone surrogate)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return NUL_MESSAGE
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return SURROGATE_MESSAGE
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return None


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
        problem = unstorable_text(data)
        if problem:
            raise exceptions.ParseError(f"Invalid request body: {problem}")
        return data


def json_body(request) -> dict:
    """The request's JSON object body; null or missing means {}; anything else is a 400."""
    data = request.data
    if data is None or data == {}:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequest("The request body must be a JSON object")
    return data
