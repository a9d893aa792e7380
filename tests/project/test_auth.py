from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from external_tasks.models import ExternalTask
from project.models import Membership

FETCH = "/engine-rest/external-task/fetchAndLock"
FETCH_BODY = {
    "workerId": "w",
    "maxTasks": 10,
    "topics": [{"topicName": "aTopic", "lockDuration": 10000}],
}


def test_api_without_credentials_answers_401_in_camunda_format(client, db):
    response = client.get("/engine-rest/version")
    assert response.status_code == 401
    assert response.json()["type"] == "AuthenticationException"
    assert response["WWW-Authenticate"].startswith("Basic")


def test_api_with_wrong_password_answers_401(client, viewer_user):
    import base64

    token = base64.b64encode(b"carol:wrong").decode()
    response = client.get("/engine-rest/version", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 401
    assert response.json()["type"] == "AuthenticationException"


def test_console_redirects_anonymous_users_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_login_page_is_public(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_logged_in_viewer_sees_overview(client, viewer_user):
    client.login(username="carol", password="carol-password")
    response = client.get("/")
    assert response.status_code == 200


def test_version_endpoint_answers_authenticated_viewer(viewer_api):
    response = viewer_api.get("/engine-rest/version")
    assert response.status_code == 200
    assert response.json() == {"version": "7.16.0"}


def test_worker_account_cannot_use_read_endpoints(worker_api):
    response = worker_api.get("/engine-rest/version")
    assert response.status_code == 403
    assert response.json()["type"] == "AuthorizationException"


def test_changed_password_stops_working_at_once(viewer_api, viewer_user):
    assert viewer_api.get("/engine-rest/version").status_code == 200
    viewer_user.set_password("a-new-password")
    viewer_user.save()
    response = viewer_api.get("/engine-rest/version")
    assert response.status_code == 401


def test_deactivated_user_is_refused_at_once(viewer_api, viewer_user):
    assert viewer_api.get("/engine-rest/version").status_code == 200
    viewer_user.is_active = False
    viewer_user.save()
    assert viewer_api.get("/engine-rest/version").status_code == 401


def test_authenticated_request_reads_account_roles_and_tenants_in_one_query(viewer_api):
    assert viewer_api.get("/engine-rest/version").status_code == 200  # verifies the password
    with CaptureQueriesContext(connection) as queries:
        assert viewer_api.get("/engine-rest/version").status_code == 200
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_removed_role_takes_effect_at_once(worker_api, worker_user):
    ExternalTask.objects.create(topic_name="aTopic", tenant_id="acme")
    assert worker_api.post(FETCH, FETCH_BODY, format="json").status_code == 200
    worker_user.groups.remove(Group.objects.get(name="worker"))
    assert worker_api.post(FETCH, FETCH_BODY, format="json").status_code == 403


def test_removed_tenant_takes_effect_at_once(worker_api, worker_user):
    assert worker_api.post(FETCH, FETCH_BODY, format="json").json() == []
    ExternalTask.objects.create(topic_name="aTopic", tenant_id="acme")
    Membership.objects.filter(user=worker_user).delete()
    assert worker_api.post(FETCH, FETCH_BODY, format="json").json() == []
    Membership.objects.create(user=worker_user, tenant_id="acme")
    assert len(worker_api.post(FETCH, FETCH_BODY, format="json").json()) == 1
