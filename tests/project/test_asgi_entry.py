"""project.asgi.application, what uvicorn serves: ordinary requests, and the fetchAndLock
requests that cannot wait, through Django's WSGI handler on a pooled thread (a2wsgi); the
fetchAndLock requests that may wait through Django's ASGI handler."""

import asyncio
import base64
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from external_tasks import services
from external_tasks.models import ExternalTask
from project import asgi
from tests.conftest import make_user

# The bridge's threads use connections of their own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served_by(monkeypatch):
    """Which of Django's two handlers answered each request."""
    seen = []
    wsgi_handler = asgi.django_wsgi.app
    asgi_handler = asgi.django_asgi

    def wsgi(environ, start_response):
        seen.append("wsgi")
        return wsgi_handler(environ, start_response)

    async def asgi_(scope, receive, send):
        seen.append("asgi")
        await asgi_handler(scope, receive, send)

    monkeypatch.setattr(asgi.django_wsgi, "app", wsgi)
    monkeypatch.setattr(asgi, "django_asgi", asgi_)
    return seen


@pytest.fixture
def wsgi_views(monkeypatch):
    """The view each request through the WSGI handler resolved to (None: none was reached)."""
    seen = []
    get_response = asgi.Handler.get_response

    def recording(self, request):
        response = get_response(self, request)
        match = request.resolver_match
        seen.append(match.func.__name__ if match else None)
        return response

    monkeypatch.setattr(asgi.Handler, "get_response", recording)
    return seen


def auth(user) -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{user.username}:{user.username}-password".encode())
    return (b"authorization", b"Basic " + token)


async def request(path, method="GET", body=b"", headers=(), query=b"", app=None):
    """One request through the application (or `app`), as uvicorn makes it; the response's
    status, headers and body messages."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)  # the client neither sends more nor goes away

    async def send(message):
        sent.append(message)

    await (app or asgi.application)(scope, receive, send)
    start, bodies = sent[0], [m.get("body", b"") for m in sent[1:]]
    return start["status"], dict(start["headers"]), bodies


def call(path, method="GET", body=b"", headers=(), query=b"", app=None):
    return async_to_sync(request)(path, method, body, headers, query, app)


def test_an_api_request_is_served_by_the_wsgi_handler(served_by):
    user = make_user("alice", "admin")
    status, headers, bodies = call("/engine-rest/version", headers=[auth(user)])
    assert status == 200
    assert json.loads(b"".join(bodies)) == {"version": "7.16.0"}
    assert headers[b"content-type"] == b"application/json"
    assert served_by == ["wsgi"]


def test_a_refused_request_still_gets_camundas_error_format(served_by):
    status, _, bodies = call("/engine-rest/external-task")
    assert status == 401
    assert json.loads(b"".join(bodies))["type"] == "AuthenticationException"
    assert served_by == ["wsgi"]


def test_a_posted_query_reads_its_body_through_the_bridge(served_by):
    user = make_user("alice", "admin")
    ExternalTask.objects.create(topic_name="invoice")
    ExternalTask.objects.create(topic_name="shipping")
    body = json.dumps({"topicName": "invoice"}).encode()
    headers = [
        auth(user),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    status, _, bodies = call("/engine-rest/external-task/count", "POST", body, headers)
    assert (status, json.loads(b"".join(bodies))) == (200, {"count": 1})
    assert served_by == ["wsgi"]


def test_a_chunked_body_is_read_whole(served_by):
    """Django reads no further than Content-Length: without this, the filter went missing and
    the count covered every task."""
    user = make_user("alice", "admin")
    ExternalTask.objects.create(topic_name="invoice")
    ExternalTask.objects.create(topic_name="shipping")
    headers = [
        auth(user),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    body = json.dumps({"topicName": "invoice"}).encode()
    status, _, bodies = call("/engine-rest/external-task/count", "POST", body, headers)
    assert (status, json.loads(b"".join(bodies))) == (200, {"count": 1})
    assert served_by == ["wsgi"]


def test_an_oversized_chunked_body_is_refused(served_by, settings):
    settings.MAX_REQUEST_BODY_BYTES = 100
    user = make_user("alice", "admin")
    headers = [
        auth(user),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    body = json.dumps({"topicName": "x" * 500}).encode()
    status, _, bodies = call("/engine-rest/external-task/count", "POST", body, headers)
    assert status == 413
    assert json.loads(b"".join(bodies))["type"] == "InvalidRequestException"


# ---------------------------------------------------------------------------------------------
# fetchAndLock: the requests that cannot wait take the WSGI handler and the sync view, the
# others Django's ASGI handler and the async view.

FETCH = "/engine-rest/external-task/fetchAndLock"


def fetch_body(**fields) -> dict:
    return {
        "workerId": "w1",
        "maxTasks": 5,
        "topics": [{"topicName": "invoice", "lockDuration": 60000}],
        **fields,
    }


def fetch(user, body, *, chunked=False, headers=(), app=None, content_type=b"application/json"):
    """POST fetchAndLock; `body` a dict (sent as JSON) or bytes as they are."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = [auth(user), (b"content-type", content_type), *headers]
    if chunked:
        sent.append((b"transfer-encoding", b"chunked"))
    else:
        sent.append((b"content-length", str(len(raw)).encode()))
    return call(FETCH, "POST", raw, sent, app=app)


async def on_the_asgi_handler(scope, receive, send):
    """Today's route for every fetchAndLock: Django's ASGI handler and the async view."""
    await asgi.django_asgi(scope, receive, send)


async def on_the_sync_view(scope, receive, send):
    """The route the router picks for a fetch that cannot wait, forced."""
    await asgi.django_wsgi({**scope, asgi.NO_WAIT: True}, receive, send)


@pytest.fixture
def walter(db):
    return make_user("walter", "worker", ["acme"])


@pytest.mark.parametrize(
    "no_wait", [{}, {"asyncResponseTimeout": None}, {"asyncResponseTimeout": 0}]
)
def test_a_fetch_that_cannot_wait_is_served_by_the_sync_view(
    served_by, wsgi_views, walter, no_wait
):
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    status, headers, bodies = fetch(walter, fetch_body(**no_wait))
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    [fetched] = json.loads(b"".join(bodies))
    assert (fetched["id"], fetched["workerId"], fetched["topicName"]) == (task.id, "w1", "invoice")
    assert served_by == ["wsgi"]
    assert wsgi_views == ["fetch_and_lock_now"]


def test_the_sync_view_answers_as_the_async_view_did(walter):
    """Same keys, values and headers as the route every fetch used to take."""
    variables = {"amount": {"type": "Integer", "value": 3, "valueInfo": {}}}
    for _ in range(2):
        ExternalTask.objects.create(topic_name="invoice", tenant_id="acme", variables=variables)
    one = fetch_body(maxTasks=1)
    sync_status, sync_headers, sync_bodies = fetch(walter, one)
    async_status, async_headers, async_bodies = fetch(walter, one, app=on_the_asgi_handler)
    assert sync_status == async_status == 200
    [by_sync], [by_async] = json.loads(b"".join(sync_bodies)), json.loads(b"".join(async_bodies))
    assert by_sync["id"] != by_async["id"]
    different = {"id", "lockExpirationTime", "createTime"}
    assert {k: v for k, v in by_sync.items() if k not in different} == {
        k: v for k, v in by_async.items() if k not in different
    }
    assert by_sync.keys() == by_async.keys()
    # Django's ASGI handler keeps the names' case, a2wsgi lowers it: HTTP does not care.
    ignore = {b"x-request-id", b"content-length"}
    sync_headers = {k.lower(): v for k, v in sync_headers.items() if k.lower() not in ignore}
    async_headers = {k.lower(): v for k, v in async_headers.items() if k.lower() not in ignore}
    assert sync_headers == async_headers


def test_a_fetch_that_may_wait_but_finds_tasks_answers_at_once_from_the_asgi_handler(
    served_by, wsgi_views, walter
):
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    status, _, bodies = fetch(walter, fetch_body(asyncResponseTimeout=60000))
    assert status == 200
    assert [t["id"] for t in json.loads(b"".join(bodies))] == [task.id]
    assert served_by == ["asgi"]
    assert wsgi_views == []


def test_a_fetch_that_may_wait_wakes_when_a_task_is_created(served_by, walter):
    body = json.dumps(fetch_body(asyncResponseTimeout=30000)).encode()
    headers = [
        auth(walter),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def scenario():
        waiting = asyncio.create_task(request(FETCH, "POST", body, headers))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        [task] = await sync_to_async(services.create)(
            walter, {"topicName": "invoice", "tenantId": "acme"}
        )
        created = time.monotonic()
        answer = await waiting
        return task, answer, time.monotonic() - created

    task, (status, _, bodies), woke_after = async_to_sync(scenario)()
    assert status == 200
    assert [t["id"] for t in json.loads(b"".join(bodies))] == [task.id]
    assert woke_after < 10  # not the 30 s timeout
    assert served_by == ["asgi"]


def test_a_fetch_that_may_wait_times_out_with_an_empty_list(served_by, walter):
    started = time.monotonic()
    status, _, bodies = fetch(walter, fetch_body(asyncResponseTimeout=300))
    assert (status, json.loads(b"".join(bodies))) == (200, [])
    assert time.monotonic() - started >= 0.3
    assert served_by == ["asgi"]


@pytest.mark.parametrize(
    ("body", "route"),
    [
        (b'{"workerId": ', "wsgi"),
        (b"[1, 2]", "wsgi"),
        (b'"fetch"', "wsgi"),
        (b"\xff\xfe{}", "wsgi"),
        (json.dumps(fetch_body(asyncResponseTimeout=False)).encode(), "wsgi"),
        (json.dumps(fetch_body(asyncResponseTimeout="")).encode(), "wsgi"),
        (json.dumps(fetch_body(asyncResponseTimeout=-1)).encode(), "asgi"),
        (json.dumps(fetch_body(asyncResponseTimeout=1.5)).encode(), "asgi"),
        (json.dumps(fetch_body(asyncResponseTimeout="1000")).encode(), "asgi"),
        (json.dumps(fetch_body(asyncResponseTimeout=1_800_001)).encode(), "asgi"),
        (json.dumps(fetch_body(maxTasks=-1)).encode(), "wsgi"),
    ],
)
def test_a_bad_fetch_gets_the_same_400_on_every_route(served_by, walter, body, route):
    ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    routed = fetch(walter, body)
    assert served_by == [route]
    before = fetch(walter, body, app=on_the_asgi_handler)
    forced = fetch(walter, body, app=on_the_sync_view)
    status, _, bodies = routed
    assert status == 400
    assert json.loads(b"".join(bodies))["type"] == "InvalidRequestException"
    assert [(s, b"".join(b)) for s, _, b in (routed, before, forced)] == [
        (status, b"".join(bodies))
    ] * 3
    assert ExternalTask.objects.filter(worker_id__isnull=False).count() == 0


@pytest.mark.parametrize(
    ("timeout", "route", "view"), [(None, "wsgi", "fetch_and_lock_now"), (60000, "asgi", None)]
)
def test_a_chunked_fetch_is_read_whole_on_either_route(
    served_by, wsgi_views, walter, timeout, route, view
):
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    status, _, bodies = fetch(walter, fetch_body(asyncResponseTimeout=timeout), chunked=True)
    assert status == 200
    assert [t["id"] for t in json.loads(b"".join(bodies))] == [task.id]
    assert served_by == [route]
    assert wsgi_views == ([view] if view else [])


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("timeout", [None, 60000])
def test_an_oversized_fetch_is_refused(served_by, walter, settings, chunked, timeout):
    settings.MAX_REQUEST_BODY_BYTES = 100
    ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    body = fetch_body(asyncResponseTimeout=timeout, workerId="x" * 200)
    status, _, bodies = fetch(walter, body, chunked=chunked)
    assert status == 413
    assert json.loads(b"".join(bodies))["type"] == "InvalidRequestException"
    assert ExternalTask.objects.filter(worker_id__isnull=False).count() == 0


def test_a_large_fetch_body_is_not_parsed_on_the_event_loop(served_by, walter, monkeypatch):
    monkeypatch.setattr(asgi, "CHECK_BYTES", 50)
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    status, _, bodies = fetch(walter, fetch_body())
    assert status == 200
    assert [t["id"] for t in json.loads(b"".join(bodies))] == [task.id]
    assert served_by == ["asgi"]


@pytest.mark.parametrize(
    "header", [b"taskyard.fetch_no_wait", b"taskyard-fetch-no-wait", b"asgi.scope"]
)
def test_a_header_cannot_choose_the_route(served_by, wsgi_views, walter, header):
    started = time.monotonic()
    status, _, bodies = fetch(
        walter, fetch_body(asyncResponseTimeout=300), headers=[(header, b"1")]
    )
    assert (status, json.loads(b"".join(bodies))) == (200, [])
    assert time.monotonic() - started >= 0.3  # it waited
    assert served_by == ["asgi"]
    assert wsgi_views == []


def test_a_fetch_the_router_misjudged_still_waits_on_the_sync_view(walter):
    """Cannot happen while the router parses as the view does; if it did, the request would
    wait (holding its thread) rather than answer before its time."""
    started = time.monotonic()
    status, _, bodies = fetch(walter, fetch_body(asyncResponseTimeout=300), app=on_the_sync_view)
    assert (status, json.loads(b"".join(bodies))) == (200, [])
    assert time.monotonic() - started >= 0.3


def test_an_export_streams_through_the_bridge_in_chunks(served_by, client):
    admin = make_user("alice", "admin")
    ExternalTask.objects.bulk_create(ExternalTask(topic_name=f"t{i}") for i in range(2500))
    client.force_login(admin)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    status, headers, bodies = call(
        "/external-tasks/export/", headers=[(b"cookie", cookie)], query=b"format=csv"
    )
    assert status == 200
    assert headers[b"content-type"].startswith(b"text/csv")
    lines = b"".join(bodies).decode().splitlines()
    assert len(lines) == 2501
    assert len([b for b in bodies if b]) == 3  # 1,000-line chunks, neither rows nor one blob
    assert served_by == ["wsgi"]


def test_every_nth_response_asks_the_client_to_reconnect(monkeypatch):
    monkeypatch.setattr(asgi, "KEEPALIVE_REQUESTS", 3)
    monkeypatch.setattr(asgi, "_answered", 0)
    answers = [call("/health/live") for _ in range(7)]
    assert [status for status, _, _ in answers] == [200] * 7
    closing = [headers.get(b"connection") for _, headers, _ in answers]
    assert closing == [None, None, b"close", None, None, b"close", None]


def test_zero_keeps_every_connection_open(monkeypatch):
    monkeypatch.setattr(asgi, "KEEPALIVE_REQUESTS", 0)
    answers = [call("/health/live") for _ in range(5)]
    assert all(b"connection" not in headers for _, headers, _ in answers)
