"""One login throttle for every way in (issue 20, "Authentication"): the console and admin
logins, HTTP Basic on the Camunda, Flowable and seed faces and on /metrics. Guessing from one
address is stopped; the right password from another address keeps working; the cache of
verified passwords obeys the throttle; /metrics is no password oracle; malformed credentials
are a 401 in the face's own format."""

import base64

import pytest
from django.test import Client

from tests.conftest import make_user

ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_hashes(settings):
    # Dozens of failed logins per test: PBKDF2 at production strength would take a second each.
    # The throttle is what is under test, not the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def basic(username, password) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def raw_basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


# Each door: how to try a password from an address, and whether the attempt got in.


def console_login(username, password, address):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


def admin_login(username, password, address):
    client = Client(REMOTE_ADDR=address)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}
    )
    return response, "_auth_user_id" in client.session


def basic_on(path):
    def attempt(username, password, address):
        response = Client(REMOTE_ADDR=address).get(
            path, HTTP_AUTHORIZATION=basic(username, password)
        )
        return response, response.status_code == 200

    return attempt


DOORS = {
    "console": (console_login, "carol"),
    "admin": (admin_login, "alice"),
    "camunda": (basic_on("/engine-rest/external-task/count"), "carol"),
    "flowable": (basic_on("/external-job-api/jobs"), "carol"),
    "seed": (basic_on("/api/external-jobs"), "carol"),
    "metrics": (basic_on("/metrics"), "alice"),
}


@pytest.fixture
def accounts(admin_user, viewer_user, worker_user):
    return {"alice": admin_user, "carol": viewer_user, "walter": worker_user}


@pytest.mark.parametrize("door", DOORS)
def test_fifteen_wrong_passwords_then_the_right_one_is_refused(door, accounts):
    attempt, username = DOORS[door]
    for _ in range(15):
        _, got_in = attempt(username, "guess", ATTACKER)
        assert not got_in
    response, got_in = attempt(username, f"{username}-password", ATTACKER)
    assert not got_in
    assert response.status_code in (200, 401, 429)  # a refusal, never a 500


@pytest.mark.parametrize("door", DOORS)
def test_the_right_password_from_another_address_keeps_working(door, accounts):
    attempt, username = DOORS[door]
    for _ in range(15):
        attempt(username, "guess", ATTACKER)
    _, got_in = attempt(username, f"{username}-password", ELSEWHERE)
    assert got_in


@pytest.mark.parametrize("door", DOORS)
def test_a_password_verified_before_does_not_pass_a_throttled_address(door, accounts):
    attempt, username = DOORS[door]
    _, got_in = attempt(username, f"{username}-password", ATTACKER)
    assert got_in  # now in the cache of verified passwords
    for _ in range(15):
        attempt(username, "guess", ATTACKER)
    _, got_in = attempt(username, f"{username}-password", ATTACKER)
    assert not got_in


def test_console_login_says_why_it_refuses(accounts):
    for _ in range(10):
        response, _ = console_login("carol", "guess", ATTACKER)
        assert response.status_code == 200
    response, got_in = console_login("carol", "carol-password", ATTACKER)
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert not got_in


def test_admin_login_says_why_it_refuses(accounts):
    for _ in range(10):
        admin_login("alice", "guess", ATTACKER)
    response, got_in = admin_login("alice", "alice-password", ATTACKER)
    assert b"Too many failed logins" in response.content
    assert not got_in


def test_basic_says_why_it_refuses_in_the_faces_format(accounts):
    for _ in range(10):
        basic_on("/engine-rest/version")("carol", "guess", ATTACKER)
    camunda, _ = basic_on("/engine-rest/version")("carol", "carol-password", ATTACKER)
    assert camunda.status_code == 401
    assert camunda.json()["type"] == "AuthenticationException"
    assert "Too many failed logins" in camunda.json()["message"]
    flowable, _ = basic_on("/external-job-api/jobs")("carol", "carol-password", ATTACKER)
    assert flowable.status_code == 401
    assert flowable.json()["message"] == "Unauthorized"
    assert "Too many failed logins" in flowable.json()["exception"]


def test_one_door_counts_for_all_the_others(accounts):
    for _ in range(5):
        admin_login("carol", "guess", ATTACKER)
    for _ in range(5):
        basic_on("/metrics")("carol", "guess", ATTACKER)
    _, got_in = basic_on("/engine-rest/external-task/count")("carol", "carol-password", ATTACKER)
    assert not got_in
    _, got_in = console_login("carol", "carol-password", ATTACKER)
    assert not got_in


def test_failures_for_one_user_do_not_lock_out_other_users_of_that_address(accounts):
    for _ in range(15):
        console_login("mallory", "guess", ATTACKER)
    _, got_in = console_login("carol", "carol-password", ATTACKER)
    assert got_in
    _, got_in = basic_on("/engine-rest/external-task/count")("walter", "walter-password", ATTACKER)
    assert not got_in  # workers may not read the list: a 403, but their password was taken
    response = Client(REMOTE_ADDR=ATTACKER).get(
        "/engine-rest/version", HTTP_AUTHORIZATION=basic("walter", "walter-password")
    )
    assert response.status_code != 401


def test_a_worker_fleet_keeps_working_while_someone_guesses_its_password(accounts):
    fleet = Client(REMOTE_ADDR=ELSEWHERE, HTTP_AUTHORIZATION=basic("walter", "walter-password"))
    body = {"workerId": "w1", "maxTasks": 1, "topics": [{"topicName": "t", "lockDuration": 1000}]}
    for round_ in range(4):
        for _ in range(12):
            Client(REMOTE_ADDR=f"192.0.2.{round_}").get(
                "/engine-rest/version", HTTP_AUTHORIZATION=basic("walter", "guess")
            )
        response = fleet.post(
            "/engine-rest/external-task/fetchAndLock", body, content_type="application/json"
        )
        assert response.status_code == 200


def test_guessing_spread_over_many_addresses_is_slowed_for_new_addresses(accounts, settings):
    settings.LOGIN_USER_SLOWDOWN_AFTER = 30
    settings.LOGIN_RATE_LIMIT_UNDER_ATTACK = 3
    _, got_in = console_login("carol", "carol-password", "192.0.2.200")  # carol's office
    assert got_in
    for n in range(10):  # 30 failures from 10 addresses: under the per-address limit each
        for _ in range(3):
            console_login("carol", "guess", f"192.0.2.{n}")
    for _ in range(3):
        console_login("carol", "guess", "192.0.2.100")
    _, got_in = console_login("carol", "carol-password", "192.0.2.100")
    assert not got_in  # a fresh attacker address gets only three guesses now
    _, got_in = console_login("carol", "carol-password", "192.0.2.101")
    assert got_in  # the right password from a new address still works at once
    for _ in range(3):
        console_login("carol", "typo", "192.0.2.200")
    _, got_in = console_login("carol", "carol-password", "192.0.2.200")
    assert got_in  # and a known address keeps the full allowance


def test_an_address_trying_many_user_names_is_refused_for_users_new_to_it(accounts, settings):
    settings.LOGIN_ADDRESS_LIMIT = 20
    _, got_in = console_login("carol", "carol-password", ATTACKER)  # carol works there
    assert got_in
    for n in range(20):
        console_login(f"user{n}", "guess", ATTACKER)
    _, got_in = console_login("alice", "alice-password", ATTACKER)
    assert not got_in
    _, got_in = console_login("carol", "carol-password", ATTACKER)
    assert got_in
    _, got_in = console_login("alice", "alice-password", ELSEWHERE)
    assert got_in


def test_a_trusted_proxy_forwards_the_client_address(accounts, settings):
    settings.TASKYARD_TRUSTED_PROXIES = ["10.0.0.0/8"]

    def via_proxy(password, forwarded):
        client = Client(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded)
        client.post("/login/", {"username": "carol", "password": password})
        return "_auth_user_id" in client.session

    for n in range(15):  # the attacker forges a fresh left-most entry each time: not believed
        via_proxy("guess", f"10.9.9.{n}, {ATTACKER}")
    assert not via_proxy("carol-password", f"1.1.1.1, {ATTACKER}")
    assert via_proxy("carol-password", ELSEWHERE)  # another client behind the same proxy


def test_forwarded_for_is_ignored_from_an_untrusted_peer(accounts, settings):
    settings.TASKYARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(15):
        Client(REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            "/login/", {"username": "carol", "password": "guess"}
        )
    _, got_in = console_login("carol", "carol-password", ATTACKER)
    assert not got_in


# ---------------------------------------------------------------------------------------------
# /metrics: a deployment endpoint, and no password oracle.


def _refusal(response):
    return response.status_code, response.content, response.get("WWW-Authenticate")


def test_metrics_answer_a_workers_right_password_like_a_wrong_one(accounts):
    right = Client().get("/metrics", HTTP_AUTHORIZATION=basic("walter", "walter-password"))
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION=basic("walter", "walter-wrong"))
    unknown = Client().get("/metrics", HTTP_AUTHORIZATION=basic("nobody", "x"))
    assert right.status_code == 401
    assert _refusal(right) == _refusal(wrong) == _refusal(unknown)
    viewer = Client().get("/metrics", HTTP_AUTHORIZATION=basic("carol", "carol-password"))
    assert _refusal(viewer) == _refusal(wrong)


def test_metrics_take_the_token_or_an_admin(accounts, settings):
    settings.TASKYARD_METRICS_TOKEN = "scrape-me-0123456789"
    token = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")
    assert token.status_code == 200
    assert b"taskyard_" in token.content
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0123456789x")
    assert wrong.status_code == 401
    nul = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape\x00me")
    assert nul.status_code == 401
    admin = Client().get("/metrics", HTTP_AUTHORIZATION=basic("alice", "alice-password"))
    assert admin.status_code == 200
    browser = Client()
    browser.login(username="alice", password="alice-password")
    assert browser.get("/metrics").status_code == 200


def test_metrics_refuse_a_token_when_none_is_configured(accounts, settings):
    settings.TASKYARD_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_tenant_users_read_their_figures_on_the_overview(accounts):
    from external_tasks.models import ExternalTask

    ExternalTask.objects.create(topic_name="acme-invoices", tenant_id="acme", retries=0)
    ExternalTask.objects.create(topic_name="globex-secret-topic", tenant_id="globex", retries=0)
    browser = Client()
    browser.login(username="carol", password="carol-password")
    page = browser.get("/")
    assert page.status_code == 200
    assert b"acme-invoices" in page.content
    assert b"globex-secret-topic" not in page.content


# ---------------------------------------------------------------------------------------------
# Malformed credentials: a 401 in the face's format, never a 500.

MALFORMED = {
    "nul in user name": raw_basic(b"car\x00ol:carol-password"),
    "nul in password": raw_basic(b"carol:carol\x00password"),
    "only nul": raw_basic(b"\x00:\x00"),
    "invalid utf-8": raw_basic(b"carol\xff\xfe:\xc3"),
    "not base64": "Basic !!!not-base64***",
    "no colon": raw_basic(b"carol"),
    "empty": "Basic ",
    "spaces": "Basic abc def",
    "control characters": raw_basic(b"\r\n:\t\x01"),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_basic_credentials_are_a_401_in_each_faces_format(header, accounts):
    client = Client()
    camunda = client.get("/engine-rest/external-task/count", HTTP_AUTHORIZATION=header)
    assert camunda.status_code == 401
    assert set(camunda.json()) == {"type", "message"}
    worker = client.post(
        "/engine-rest/external-task/fetchAndLock",
        {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "t", "lockDuration": 1}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert worker.status_code == 401
    assert set(worker.json()) == {"type", "message"}
    job = client.get("/engine-rest/job/some-id", HTTP_AUTHORIZATION=header)
    assert job.status_code == 401
    assert set(job.json()) == {"type", "message"}
    for path in ("/external-job-api/jobs", "/api/external-jobs"):
        response = client.get(path, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response.json()["message"] == "Unauthorized"
        assert set(response.json()) == {"message", "exception"}
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=header)
    assert metrics.status_code == 401
    assert set(metrics.json()) == {"type", "message"}


@pytest.mark.parametrize("username", ["car\x00ol", "carol\x00", "c" * 5000])
def test_malformed_user_names_on_the_login_forms_do_not_break_them(username, accounts):
    # A NUL is refused before any view (project.middleware: 400, the console's error page); a
    # long name re-renders the form. Neither logs anyone in, neither is a 500.
    expected = 400 if "\x00" in username else 200
    response, got_in = console_login(username, "carol-password", ATTACKER)
    assert response.status_code == expected and not got_in
    response, got_in = admin_login(username, "alice-password", ATTACKER)
    assert response.status_code == expected and not got_in


def test_a_new_account_is_throttled_like_any_other(db):
    make_user("dave", "viewer", ["acme"])
    attempt = basic_on("/engine-rest/version")
    for _ in range(10):
        attempt("dave", "guess", ATTACKER)
    _, got_in = attempt("dave", "dave-password", ATTACKER)
    assert not got_in
    _, got_in = attempt("dave", "dave-password", ELSEWHERE)
    assert got_in
