import base64
import io

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from rest_framework.exceptions import ParseError

from project.rest.parsers import LenientJSONParser


@pytest.fixture(autouse=True)
def clear_throttle():
    cache.clear()
    yield
    cache.clear()


def basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_console_pages_carry_a_strict_content_security_policy(client, viewer_user):
    client.login(username="carol", password="carol-password")
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_api_docs_are_served_without_a_cdn(admin_user, client):
    client.login(username="alice", password="alice-password")
    page = client.get("/api-docs/")
    assert page.status_code == 200
    assert b"cdn" not in page.content.lower()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/engine-rest/version" in schema.json()["paths"]


def test_oversized_bodies_get_413_in_the_faces_format(viewer_api, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1000
    body = b'{"x": "' + b"a" * 2000 + b'"}'
    response = viewer_api.generic("POST", "/engine-rest/version", body, "application/json")
    assert response.status_code == 413
    assert response.json()["type"] == "InvalidRequestException"
    flowable = viewer_api.generic(
        "POST", "/external-job-api/acquire/jobs", body, "application/json"
    )
    assert flowable.status_code == 413
    assert set(flowable.json()) == {"message", "exception"}


def test_deeply_nested_json_is_refused_cleanly():
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(ParseError, match="nested"):
        LenientJSONParser().parse(io.BytesIO(deep))
    with pytest.raises(ParseError, match="nested"):
        LenientJSONParser().parse(io.BytesIO(b'{"a":' * 40 + b"1" + b"}" * 40))


def test_console_login_is_throttled_after_repeated_failures(client, viewer_user, settings):
    settings.LOGIN_RATE_LIMIT = 3
    for _ in range(3):
        response = client.post("/login/", {"username": "carol", "password": "nope"})
        assert response.status_code == 200
    blocked = client.post("/login/", {"username": "carol", "password": "carol-password"})
    assert blocked.status_code == 429
    assert b"Too many failed logins" in blocked.content
    assert "_auth_user_id" not in client.session


def test_successful_login_before_the_limit_works(client, viewer_user, settings):
    settings.LOGIN_RATE_LIMIT = 3
    client.post("/login/", {"username": "carol", "password": "nope"})
    response = client.post("/login/", {"username": "carol", "password": "carol-password"})
    assert response.status_code == 302


def test_http_basic_is_throttled_after_repeated_failures(client, viewer_user, settings):
    settings.LOGIN_RATE_LIMIT = 3
    for _ in range(3):
        client.get("/engine-rest/version", HTTP_AUTHORIZATION=basic("carol", "nope"))
    response = client.get(
        "/engine-rest/version", HTTP_AUTHORIZATION=basic("carol", "carol-password")
    )
    assert response.status_code == 401
    assert "Too many failed logins" in response.json()["message"]


def test_console_post_without_csrf_token_is_refused(viewer_user):
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="carol", password="carol-password")
    assert browser.post("/logout/").status_code == 403


def _kill_own_backend():
    pid = connection.connection.info.backend_pid
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        dbname=settings_dict["NAME"],
        autocommit=True,
    ) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lost_database_connection_is_a_503_and_the_next_request_recovers(viewer_user):
    api = Client(raise_request_exception=False)
    auth = basic("carol", "carol-password")
    assert api.get("/engine-rest/version", HTTP_AUTHORIZATION=auth).status_code == 200
    connection.ensure_connection()
    _kill_own_backend()
    response = api.get("/engine-rest/version", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 503
    assert response.json()["type"] == "ServiceUnavailableException"
    assert response["Retry-After"] == "5"
    assert api.get("/engine-rest/version", HTTP_AUTHORIZATION=auth).status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_lost_database_connection_shows_a_plain_page_in_the_console(viewer_user):
    browser = Client(raise_request_exception=False)
    browser.login(username="carol", password="carol-password")
    connection.ensure_connection()
    _kill_own_backend()
    response = browser.get("/")
    assert response.status_code == 503
    assert b"database is unavailable" in response.content
    assert browser.get("/").status_code == 200
