"""Structured logs: a request id on every line, one line per request, JSON when configured.

`RequestLogMiddleware` gives each request an id (the load balancer's `X-Request-ID` when it sends
a sane one, otherwise a fresh one), returns it in the `X-Request-ID` response header, keeps it in
a context variable so every log line written while the request runs carries it (Django's own
error log for a 500 included), writes one `taskyard.request` line when the response is ready, and
records the request latency metric. It is sync and async capable, so an async long-poll view
keeps waiting without holding a thread.

`JsonFormatter` (LOG_FORMAT=json) writes one JSON object per line with the standard fields and
every `extra={...}` field the caller passed, which is what log shippers index.

Both formatters escape control characters, so no field of any logger (a URL path with %0d%0a, a
worker's error message, an exception's text) can end a line early and write a line that looks
like ours, or send escape sequences to the terminal reading the log: see `escape`. The plain
format writes a record's traceback on continuation lines that begin with "  | ", so every line
that does not is the start of a record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.utils.functional import empty

from project import metrics
from project.faces import current_request_face, face_of

# Nothing this module imports may load models: Django loads the formatter and the filter while
# configuring logging, before the app registry is ready (project.metrics and project.faces keep
# to that too).

request_log = logging.getLogger("taskyard.request")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taskyard_request_id", default=None
)

# What we accept from a proxy: short, printable, no spaces; anything else is replaced so a client
# cannot inject text into the logs.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@+/=-]{1,128}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _request_id(request) -> str:
    header = settings.TASKYARD_REQUEST_ID_HEADER
    incoming = request.headers.get(header, "")
    if _SANE_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def _username(request) -> str | None:
    # Only report a user the request already resolved: forcing a lazy user here would cost a
    # session query on requests that never needed one.
    user = getattr(request, "user", None)
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return user.username if getattr(user, "is_authenticated", False) else None


def _level(face: str, status: int) -> int:
    if face in ("ops", "static") and status < 400:
        return logging.DEBUG  # probes and assets every few seconds would drown the rest
    if status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


class RequestLogMiddleware:
    """Request id, one log line and the latency metric per request. Put it first."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        tokens, started = self._start(request)
        try:
            response = self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            self._reset(tokens)

    async def _acall(self, request):
        tokens, started = self._start(request)
        try:
            response = await self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            self._reset(tokens)

    def _start(self, request):
        request.request_id = _request_id(request)
        tokens = (
            current_request_id.set(request.request_id),
            current_request_face.set(face_of(request.path_info)),
        )
        return tokens, time.perf_counter()

    @staticmethod
    def _reset(tokens) -> None:
        id_token, face_token = tokens
        current_request_face.reset(face_token)
        current_request_id.reset(id_token)

    def _finish(self, request, response, started) -> None:
        seconds = time.perf_counter() - started
        # Django would log 4xx/5xx responses again after this middleware has returned, outside
        # the request id's context; this line already says it all. (Exceptions are still logged
        # with their traceback, inside the context, before we get here.)
        response._has_been_logged = True
        response[settings.TASKYARD_REQUEST_ID_HEADER] = request.request_id
        face = face_of(request.path_info)
        method = request.method if request.method in _METHODS else "OTHER"
        status = response.status_code
        metrics.record_request(face, method, status, seconds)
        request_log.log(
            _level(face, status),
            "%s %s %s %.1fms",
            method,
            request.path_info,
            status,
            seconds * 1000,
            extra={
                "event": "request",
                "request_id": request.request_id,
                "face": face,
                "method": method,
                "path": request.path_info,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "user": _username(request),
                "remote_addr": request.META.get("REMOTE_ADDR"),
            },
        )


# What may not reach a log line raw: C0 controls (CR, LF, NUL, ESC, TAB ...), DEL, C1 controls
# (NEL U+0085, CSI U+009B ...), the Unicode line and paragraph separators (some viewers break
# lines there), the explicit bidirectional controls (which reorder what a terminal shows) and
# lone surrogates (which a UTF-8 stream cannot even encode: the record would be lost).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every control character written as a Python-style escape (\\r, \\n, \\x00,
    \\x1b, \\x85, \\u2028, \\ud800): one line, printable, and still saying what was sent.
    Backslashes are left alone, so a literal "\\n" someone typed reads the same as an escaped
    newline: the point is that neither can start a line."""
    return _CONTROL.sub(_escaped, text)


# What JSON itself leaves raw (it escapes C0 already): written as \\uXXXX, which is valid JSON and
# decodes to the same string. These characters can only occur inside JSON strings.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _json_escaped(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


class PlainFormatter(logging.Formatter):
    """The plain text format, one line per record: every field escaped (`escape`), and the
    traceback or stack, if any, on continuation lines that begin with "  | " (escaped too)."""

    CONTINUATION = "  | "

    def format(self, record):
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        # The whole line is escaped after formatting, so fields of any type and any format
        # string (%(path)s, %(user)s ...) are covered, not only the message.
        line = escape(self.formatMessage(record))
        # Not cached in record.exc_text like logging.Formatter does: other handlers (the JSON
        # formatter, test capture) must get the traceback as it is.
        blocks = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        elif record.exc_text:
            blocks.append(record.exc_text)
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            for text in block.rstrip("\n").split("\n"):
                line += "\n" + self.CONTINUATION + escape(text)
        return line


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served ("-" outside requests)."""

    def filter(self, record):
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id.get() or "-"
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, process id and the
    extras. JSON escapes C0 controls; what it leaves raw that could still break or disguise a
    line (DEL, C1, U+2028/U+2029, bidi controls, lone surrogates) is escaped as \\uXXXX too."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id.get(),
            # Which of the server's processes wrote it (serve --workers N).
            "process": record.process,
        }
        if entry["request_id"] == "-":  # the plain format's placeholder; JSON says null
            entry["request_id"] = None
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # `request` (Django's error log) is an object, not data: keep only what identifies it.
        if "request" in entry:
            entry["request"] = str(entry["request"])
        return _JSON_RAW.sub(_json_escaped, json.dumps(entry, default=str, ensure_ascii=False))
