"""project.asgi.application, what uvicorn serves: ordinary requests through Django's WSGI
handler on a pooled thread (a2wsgi), waiting ones through Django's ASGI handler."""

import asyncio
import base64
import json

import pytest
from asgiref.sync import async_to_sync

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


def auth(user) -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{user.username}:{user.username}-password".encode())
    return (b"authorization", b"Basic " + token)


def call(path, method="GET", body=b"", headers=(), query=b""):
    """One request through the application, as uvicorn makes it; the response's status, headers
    and body messages."""

    async def run():
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

        await asgi.application(scope, receive, send)
        return sent

    sent = async_to_sync(run)()
    start, bodies = sent[0], [m.get("body", b"") for m in sent[1:]]
    return start["status"], dict(start["headers"]), bodies


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


def test_fetch_and_lock_stays_on_the_asgi_handler(served_by):
    user = make_user("walter", "worker", ["acme"])
    task = ExternalTask.objects.create(topic_name="invoice", tenant_id="acme")
    body = json.dumps(
        {
            "workerId": "w1",
            "maxTasks": 5,
            "topics": [{"topicName": "invoice", "lockDuration": 60000}],
        }
    ).encode()
    headers = [
        auth(user),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    status, _, bodies = call("/engine-rest/external-task/fetchAndLock", "POST", body, headers)
    assert status == 200
    assert [t["id"] for t in json.loads(b"".join(bodies))] == [str(task.id)]
    assert served_by == ["asgi"]


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
