"""Every URL of every face refuses anonymous callers: 401 in the face's format for the APIs, a
login redirect for console pages. The URL list is walked from the resolver, so a new endpoint is
covered the moment it is routed."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Deliberately public: the login page itself and the probes load balancers call.
PUBLIC = {"/login/", "/healthz", "/readyz", "/livez", "/health/live", "/health/ready"}
# /metrics is for Prometheus, not people: like the APIs it answers 401, never a login page.
API_PREFIXES = ("/engine-rest/", "/external-job-api/", "/api/", "/metrics")


def walk(patterns, prefix=""):
    for entry in patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route.startswith("admin/"):
                continue  # Django admin has its own login, checked separately below
            yield from walk(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            yield prefix + route


def concrete(route: str) -> str:
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"<(?:\w+:)?(\w+)>", "some-id", route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "some-id", route)
    return "/" + route.replace("\\", "")


def all_urls():
    urls = sorted({concrete(route) for route in walk(get_resolver().url_patterns)})
    return [url for url in urls if url not in PUBLIC and "(" not in url and "[" not in url]


@pytest.mark.parametrize("url", all_urls())
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_callers_are_refused_everywhere(client, db, url, method):
    response = getattr(client, method)(url)
    if url.startswith(API_PREFIXES):
        assert response.status_code in (401, 405), (url, response.status_code)
        if response.status_code == 401:
            # The schema view renders errors in its own media type; the words are what count.
            assert b"Authentication" in response.content or b"credentials" in response.content
    else:
        assert response.status_code in (302, 405), (url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/login/")


def test_django_admin_asks_for_a_login(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
