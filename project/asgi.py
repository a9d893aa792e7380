"""The ASGI application: Django's WSGI handler for ordinary requests, its ASGI handler for the
requests that wait.

Django's ASGI handler runs a sync view (all of ours but fetchAndLock) by hopping between the
event loop and a thread eight times per request, and it starts a new thread for every request
and another one to join it when the request ends. Behind uvicorn that was two thirds of a
trivial API request's time. a2wsgi runs Django's WSGI handler for the whole request on a
pooled thread instead: the same middleware and views, in the mode the test suite exercises,
one hand-off per request (and per streamed chunk). The trivial view went from ~120 to
~200–290 requests/s on two busy cores (bench/README.md).

fetchAndLock stays on Django's ASGI handler: it may wait up to 30 minutes for tasks (long
polling). Its waiting happens on the event loop, in external_tasks.notify; its short sync steps
run on one shared thread, so 200 waiting workers hold no thread.

A body sent without Content-Length (chunked) is read here first and passed on with its length:
Django, under either handler, reads no further than Content-Length, so such a body used to
arrive empty (a POSTed query without its filters counted everything).
"""

import os
from concurrent.futures import ThreadPoolExecutor

from a2wsgi import WSGIMiddleware
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi = get_asgi_application()
# Requests served at once by one process (the rest queue). Each thread keeps its own database
# connection object; with the pool (DB_POOL_MAX) they share the pool's connections.
THREADS = int(os.environ.get("ASGI_THREADS", "16"))
django_wsgi = WSGIMiddleware(get_wsgi_application(), workers=THREADS)

LONG_POLL_PATHS = frozenset({"/engine-rest/external-task/fetchAndLock"})
_long_poll_sync_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="long-poll-sync")


async def _with_length(scope, receive):
    """A chunked request with the body read (up to one byte over the size limit, so that
    RequestSizeLimitMiddleware refuses it) and its Content-Length set."""
    names = {name for name, _ in scope.get("headers") or ()}
    if b"content-length" in names or b"transfer-encoding" not in names:
        return scope, receive
    body, limit = bytearray(), settings.MAX_REQUEST_BODY_BYTES
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return scope, receive  # gone: the handler notices on its own receive
        body += message.get("body", b"")
        if not message.get("more_body") or len(body) > limit:
            break
    body = bytes(body[: limit + 1])
    headers = [(n, v) for n, v in scope["headers"] if n != b"transfer-encoding"]
    scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
    replay = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return replay.pop() if replay else await receive()

    return scope, replayed


async def application(scope, receive, send):
    if scope["type"] != "http":
        await django_asgi(scope, receive, send)
        return
    scope, receive = await _with_length(scope, receive)
    if scope["path"] in LONG_POLL_PATHS:
        async with ThreadSensitiveContext(executor=_long_poll_sync_executor):
            await django_asgi(scope, receive, send)
    else:
        await django_wsgi(scope, receive, send)
