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
