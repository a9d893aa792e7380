"""The ASGI application: Django's WSGI handler for every request that cannot wait, its ASGI
handler for the fetchAndLock requests that may.

Django's ASGI handler runs a sync view (all of ours but fetchAndLock) by hopping between the
event loop and a thread eight times per request, and it starts a new thread for every request
and another one to join it when the request ends. Behind uvicorn that was two thirds of a
trivial API request's time. a2wsgi runs Django's WSGI handler for the whole request on a
pooled thread instead: the same middleware and views, in the mode the test suite exercises,
one hand-off per request (and per streamed chunk). The trivial view went from ~120 to
~200–290 requests/s on two busy cores (bench/README.md).

fetchAndLock may wait up to 30 minutes for tasks (long polling): its waiting happens on the
event loop, in external_tasks.notify, through Django's ASGI handler and the async view
`fetch_and_lock`; its short sync steps run on one shared thread, so 200 waiting workers hold no
thread. Most fetches cannot wait, though: those without asyncResponseTimeout (or with null or
0), and those whose body is no JSON object (a 400 either way). For them this module reads the
body (it is replayed to Django), checks it, and sends the request through the WSGI handler
like any other, with a scope key (no header can set one) that makes the request resolve to the
sync view `fetch_and_lock_now` (external_tasks.urls_nowait): the same first attempt, the same
answer, half the cost. When in doubt (a body too large to check on the event loop, a charset or
parse the check does not share with the view) the request goes the ASGI way, which is always
right.

A body sent without Content-Length (chunked) is read here first and passed on with its length:
Django, under either handler, reads no further than Content-Length, so such a body used to
arrive empty (a POSTed query without its filters counted everything).
"""

import codecs
import io
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from a2wsgi import WSGIMiddleware
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils.http import parse_header_parameters

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi = get_asgi_application()

from rest_framework.exceptions import ParseError  # noqa: E402  (needs the settings)

from project.rest.parsers import LenientJSONParser  # noqa: E402

FETCH_AND_LOCK = "/engine-rest/external-task/fetchAndLock"
LONG_POLL_PATHS = frozenset({FETCH_AND_LOCK})
# The scope key that sends a fetchAndLock which cannot wait to the sync view. a2wsgi passes the
# scope on as environ["asgi.scope"]; headers only ever become HTTP_* environ keys.
NO_WAIT = "taskyard.fetch_no_wait"
NO_WAIT_URLCONF = "external_tasks.urls_nowait"
# fetchAndLock bodies are a few hundred bytes; parsing a large one on the event loop would stall
# every waiting request, so larger ones go the ASGI way unchecked.
CHECK_BYTES = 64 * 1024


class Request(WSGIRequest):
    """Django's WSGI request; a fetchAndLock the router found cannot wait resolves in
    external_tasks.urls_nowait (BaseHandler honours request.urlconf)."""

    def __init__(self, environ):
        super().__init__(environ)
        if environ.get("asgi.scope", {}).get(NO_WAIT):
            self.urlconf = NO_WAIT_URLCONF


class Handler(WSGIHandler):
    request_class = Request


# Requests served at once by one process (the rest queue). Each thread keeps its own database
# connection object; with the pool (DB_POOL_MAX) they share the pool's connections.
THREADS = int(os.environ.get("ASGI_THREADS", "16"))
django_wsgi = WSGIMiddleware(Handler(), workers=THREADS)

_long_poll_sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-poll-sync")


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


async def _with_body(scope, receive, *, fetch: bool):
    """(scope, receive, body). A chunked body is read (up to one byte over the size limit, so
    that RequestSizeLimitMiddleware refuses it) and passed on with its Content-Length set; with
    `fetch`, a body of at most CHECK_BYTES sent with Content-Length is read too. What was read
    is replayed to the handler; body is None when nothing was read."""
    length = _header(scope, b"content-length")
    chunked = length is None and _header(scope, b"transfer-encoding") is not None
    if not chunked:
        if not fetch:
            return scope, receive, None
        try:
            if length is not None and int(length) > CHECK_BYTES:
                return scope, receive, None
        except ValueError:
            return scope, receive, None
    body, limit = bytearray(), settings.MAX_REQUEST_BODY_BYTES
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return scope, receive, None  # gone: the handler notices on its own receive
        body += message.get("body", b"")
        if not message.get("more_body") or len(body) > limit:
            break
    body = bytes(body[: limit + 1])
    if chunked:
        headers = [(n, v) for n, v in scope["headers"] if n != b"transfer-encoding"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    replay = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return replay.pop() if replay else await receive()

    return scope, replayed, body


def _may_wait(scope, body: bytes | None) -> bool:
    """Whether a fetchAndLock request may long-poll: False only when sure it cannot, that is
    when the body (parsed as the view will parse it) is no JSON object, or one whose
    asyncResponseTimeout is missing, null or 0. Such a request answers at once, the same on
    either route; anything else may wait, or is rare enough to take the ASGI route anyway."""
    if scope["method"] != "POST" or body is None or len(body) > CHECK_BYTES:
        return True
    try:
        _, params = parse_header_parameters(
            (_header(scope, b"content-type") or b"").decode("latin-1")
        )
        encoding = params.get("charset") or settings.DEFAULT_CHARSET
        codecs.lookup(encoding)  # Django ignores a charset it does not know, and so do we
    except LookupError:
        encoding = settings.DEFAULT_CHARSET
    except ValueError:
        return True
    try:
        data = LenientJSONParser().parse(io.BytesIO(body), parser_context={"encoding": encoding})
    except ParseError:
        return False  # the view answers 400
    except Exception:
        return True
    return isinstance(data, Mapping) and bool(data.get("asyncResponseTimeout"))


# Every Nth response of this process asks the client to reconnect (0: never); see _recycling.
KEEPALIVE_REQUESTS = settings.TASKYARD_KEEPALIVE_REQUESTS
_answered = 0


def _recycling(send):
    """`send`, adding "Connection: close" to every KEEPALIVE_REQUESTS-th response.

    `serve --workers N` processes share one listening socket, and whichever process wakes
    first accepts every connection that is waiting: eight workers connecting at once often all
    landed in one process, which then ran on one core while the other process idled (measured:
    12.4 against 0.0 CPU seconds, 246–358 instead of ~450 tasks/s). Workers keep their
    connections open for good, so the split never changed. Recycling a connection now and then
    (nginx's keepalive_requests) lets it land again, and it lands mostly in the idle process:
    that one's event loop is waiting in epoll while the busy one's waits for its GIL. A busier
    process also closes more connections, so the load evens out within seconds. The client
    just opens a new connection (HTTP clients do that by themselves)."""
    global _answered
    _answered += 1  # only ever on the event loop's thread
    if not KEEPALIVE_REQUESTS or _answered % KEEPALIVE_REQUESTS:
        return send

    async def closing(message):
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await send(message)

    return closing


async def application(scope, receive, send):
    if scope["type"] != "http":
        await django_asgi(scope, receive, send)
        return
    send = _recycling(send)
    fetch = scope["path"] in LONG_POLL_PATHS
    scope, receive, body = await _with_body(scope, receive, fetch=fetch)
    if fetch:
        if _may_wait(scope, body):
            async with ThreadSensitiveContext(executor=_long_poll_sync_executor):
                await django_asgi(scope, receive, send)
            return
        scope = {**scope, NO_WAIT: True}
    await django_wsgi(scope, receive, send)
