"""Overview, detail pages, topics & workers, failures, audit log, search and login."""

import pytest
from django.test import Client

from console.failures import normalize_message
from external_tasks.models import ExternalTaskLog
from jobs.models import JobLog
from project.audit import record
from project.models import AuditEntry
from tests.console.conftest import HTMX, ago, later, make_job, make_task

pytestmark = pytest.mark.django_db


def test_login_page_logs_in_and_lands_on_overview(viewer_user):
    client = Client()
    page = client.get("/login/").content.decode()
    assert 'name="username"' in page and 'name="password"' in page
    response = client.post(
        "/login/", {"username": "carol", "password": "carol-password"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert "Overview" in response.content.decode()


def test_wrong_password_shows_a_clear_error(viewer_user):
    response = Client().post("/login/", {"username": "carol", "password": "nope"})
    assert "Please enter a correct username and password" in response.content.decode()


def test_overview_counts_link_to_the_filtered_tables(operator_client):
    make_job(retries=0)
    make_job(retries=0)
    make_task(retries=0, topic_name="invoice")
    make_task(worker_id="w", lock_expiration_time=later(minutes=1), topic_name="invoice")
    html = operator_client.get("/").content.decode()
    assert 'href="/jobs/?status=failed"' in html
    assert 'href="/external-tasks/?status=locked"' in html
    assert '<span class="n">2</span><span class="l"><span class="badge failed">' in html
    # Per topic breakdown links to the topic's failed tasks.
    assert "/external-tasks/?status=failed&amp;topicName=invoice" in html
    # Navigation shows failed counts beside Overview, Jobs and External tasks.
    assert 'title="failed jobs">2</span>' in html
    assert 'title="failed external tasks">1</span>' in html


def test_overview_counts_only_the_users_tenants(viewer_client):
    make_job(retries=0, tenant_id="acme")
    make_job(retries=0, tenant_id="globex")
    make_job(retries=0, tenant_id="globex")
    html = viewer_client.get("/").content.decode()
    assert 'title="failed jobs">1</span>' in html
    assert "globex" not in html


def test_overview_chart_counts_completions_and_failures_from_the_logs(operator_client):
    for event in ("completed", "completed", "failed"):
        ExternalTaskLog.objects.create(task_id="t", event=event, tenant_id="acme")
    JobLog.objects.create(job_id="j", event="succeeded", tenant_id="acme")
    ExternalTaskLog.objects.create(task_id="t", event="completed", tenant_id="globex")
    html = operator_client.get("/").content.decode()
    assert "3 completed, 1 failed" in html


def test_overview_empty_states(operator_client):
    html = operator_client.get("/").content.decode()
    assert "Nothing completed or failed in the last 24h" in html
    assert "No failed work" in html


def test_job_detail_shows_facts_stacktrace_history_and_audit(operator_client, operator_user):
    job = make_job(
        retries=0,
        exception_message="card declined",
        exception_stacktrace="Traceback...\nValueError: card declined",
        process_instance_id="order-1",
        payload={"args": [1]},
    )
    JobLog.objects.create(job_id=job.pk, event="failed", worker="ex-1", tenant_id="acme")
    record(
        operator_user,
        "job",
        "set_retries",
        tenants=[job.tenant_id],
        ids=[job.pk],
        count=1,
        source="console",
    )
    html = operator_client.get(f"/jobs/{job.pk}/").content.decode()
    assert job.pk in html and "badge failed" in html
    assert "ValueError: card declined" in html and "Copy stack trace" in html
    assert "/jobs/?processInstanceId=order-1" in html  # related: same process instance
    assert "/external-tasks/?processInstanceId=order-1" in html
    assert "ex-1" in html  # attempt history
    assert "job.set_retries" in html  # audit entry for this row
    assert "&quot;args&quot;" in html  # payload


def test_job_of_another_tenant_is_404_for_a_viewer(viewer_client):
    job = make_job(tenant_id="globex")
    assert viewer_client.get(f"/jobs/{job.pk}/").status_code == 404
    assert viewer_client.get("/jobs/no-such-job/").status_code == 404


def test_finished_job_still_shows_its_history(operator_client):
    JobLog.objects.create(job_id="gone-1", event="succeeded", worker="ex-1", tenant_id="acme")
    html = operator_client.get("/jobs/gone-1/").content.decode()
    assert "This job no longer exists" in html and "ex-1" in html


def test_task_detail_shows_variables_error_details_and_related_links(operator_client):
    task = make_task(
        retries=0,
        error_message="address not found",
        error_details="lookup failed at line 3",
        business_key="ORDER-9",
        variables={"amount": {"type": "Double", "value": 12.5, "valueInfo": {}}},
    )
    html = operator_client.get(f"/external-tasks/{task.pk}/").content.decode()
    assert "lookup failed at line 3" in html and "Copy error details" in html
    assert "<code>amount</code>" in html and "Double" in html and "12.5" in html
    assert "/external-tasks/?topicName=invoice" in html


def test_completed_task_shows_its_outcome(operator_client):
    ExternalTaskLog.objects.create(
        task_id="done-1",
        event="completed",
        worker_id="w-7",
        tenant_id="acme",
        variables={"ok": {"type": "Boolean", "value": True}},
    )
    html = operator_client.get("/external-tasks/done-1/").content.decode()
    assert "This task was completed" in html and "w-7" in html and "<code>ok</code>" in html


def test_topics_page_shows_backlog_locks_failures_and_workers(operator_client):
    make_task(topic_name="invoice")
    make_task(topic_name="invoice", worker_id="w1", lock_expiration_time=later(minutes=1))
    make_task(topic_name="invoice", worker_id="w2", lock_expiration_time=ago(minutes=1))
    make_task(topic_name="invoice", retries=0)
    ExternalTaskLog.objects.create(
        task_id="x", event="completed", worker_id="w9", topic_name="invoice", tenant_id="acme"
    )
    html = operator_client.get("/topics/").content.decode()
    assert "invoice" in html
    assert "/external-tasks/?topicName=invoice&amp;status=locked" in html
    assert "<code>w1</code>" in html and "<code>w9</code>" in html


def test_topics_empty_state(operator_client):
    assert "No external tasks yet" in operator_client.get("/topics/").content.decode()


@pytest.mark.parametrize(
    "message,expected",
    [
        ("Order 123 failed at 2024-01-02T10:00:00Z", "Order <n> failed at <date>"),
        ("No row 6f1c0f3e-8a3b-4c54-9d3e-1234567890ab", "No row <id>"),
        ("User 'bob' not found", "User <value> not found"),
        (None, "(no message)"),
    ],
)
def test_error_messages_are_normalised_into_fingerprints(message, expected):
    assert normalize_message(message) == expected


def test_failures_group_alike_errors_with_counts(operator_client):
    make_job(retries=0, exception_message="card declined for customer 1")
    make_job(retries=0, exception_message="card declined for customer 2")
    make_job(retries=0, exception_message="smtp down")
    make_task(retries=0, error_message="address 5 not found")
    response = operator_client.get("/failures/")
    html = response.content.decode()
    assert "card declined for customer &lt;n&gt;" in html
    assert [g["count"] for g in response.context["groups"]] == [2, 1, 1]
    assert "address &lt;n&gt; not found" in html
    assert 'value="set_retries"' in html  # operators get the fix (behind a confirmation)


def test_failures_empty_state_and_viewer_has_no_buttons(viewer_client):
    html = viewer_client.get("/failures/?kind=job").content.decode()
    assert "No failed jobs — nothing to do" in html
    make_job(retries=0, exception_message="x")
    assert 'value="set_retries"' not in viewer_client.get("/failures/").content.decode()


def test_audit_page_filters_by_user_action_and_time(admin_client, operator_user, admin_user):
    record(operator_user, "job", "set_retries", tenants=["acme"], ids=["j1"], count=3)
    record(admin_user, "external_task", "delete", tenants=["acme"], ids=["t1"], count=1)
    html = admin_client.get("/audit/").content.decode()
    assert "job.set_retries" in html and "external_task.delete" in html
    html = admin_client.get("/audit/?user=bob").content.decode()
    assert "<code>job.set_retries</code>" in html
    assert "<code>external_task.delete</code>" not in html
    html = admin_client.get("/audit/?action=external_task.delete", headers=HTMX).content.decode()
    assert html.lstrip().startswith('<section id="audit-table"')
    assert "external_task.delete" in html
    html = admin_client.get("/audit/?target=t1").content.decode()
    assert "<code>external_task.delete</code>" in html
    assert "<code>job.set_retries</code>" not in html
    html = admin_client.get("/audit/?since=2999-01-01T00:00").content.decode()
    assert "No audit entries match this filter" in html
    assert "Cannot convert value" in admin_client.get("/audit/?since=soon").content.decode()


def test_audit_page_hides_entries_of_other_tenants_rows(viewer_client, operator_user, db):
    from tests.conftest import make_user

    outsider = make_user("otto", "operator", ["globex"])
    record(operator_user, "job", "suspend", tenants=["acme"], ids=["a"], count=1)
    record(outsider, "job", "delete", tenants=["globex"], ids=["b"], count=1)
    html = viewer_client.get("/audit/").content.decode()
    assert "<code>job.suspend</code>" in html and "<code>job.delete</code>" not in html
    assert AuditEntry.objects.count() == 2


def test_global_search_jumps_to_a_row_by_id(operator_client):
    job = make_job()
    task = make_task()
    assert operator_client.get(f"/search/?q={job.pk}")["Location"] == f"/jobs/{job.pk}/"
    assert operator_client.get(f"/search/?q={task.pk}")["Location"] == f"/external-tasks/{task.pk}/"


def test_global_search_lists_matches_in_both_tables(operator_client):
    make_job(process_instance_id="order-5")
    make_task(process_instance_id="order-5")
    html = operator_client.get("/search/?q=order-5").content.decode()
    assert "/jobs/?q=order-5" in html and "/external-tasks/?q=order-5" in html
    assert "No jobs match" not in html


def test_viewer_sees_no_action_controls(viewer_client):
    job = make_job()
    task = make_task()
    for url in ("/jobs/", f"/jobs/{job.pk}/", "/external-tasks/", f"/external-tasks/{task.pk}/"):
        html = viewer_client.get(url).content.decode()
        assert 'name="action"' not in html, url
        assert 'name="ids"' not in html, url


def test_operator_sees_actions_but_not_delete(operator_client):
    job = make_job()
    html = operator_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'value="set_retries"' in html and 'value="delete"' not in html
    html = operator_client.get("/jobs/").content.decode()
    assert 'value="suspend"' in html and 'value="delete"' not in html


def test_admin_sees_delete(admin_client):
    job = make_job()
    assert 'value="delete"' in admin_client.get(f"/jobs/{job.pk}/").content.decode()


def test_pages_require_login(client):
    for url in ("/", "/jobs/", "/external-tasks/", "/topics/", "/failures/", "/audit/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


# A live server needs committed data; serialized like the other live tests, so the flush
# afterwards leaves the tables empty for them instead of recreating content types.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_static_assets_are_vendored_and_served(operator_client, live_server):
    import urllib.request

    html = operator_client.get("/jobs/").content.decode()
    assert "vendor/htmx-2.0.11.min.js" in html
    with urllib.request.urlopen(f"{live_server.url}/static/vendor/htmx-2.0.11.min.js") as r:
        assert r.status == 200 and b"htmx" in r.read(200_000)


def test_overview_numbers_are_shared_for_seconds_and_can_be_recounted(operator_client):
    operator_client.get("/")
    make_job(retries=0)
    stale = operator_client.get("/").content.decode()
    assert '<span class="n">0</span><span class="l"><span class="badge failed">' in stale
    assert "count again" in stale
    fresh = operator_client.get("/?fresh=1").content.decode()
    assert '<span class="n">1</span><span class="l"><span class="badge failed">' in fresh


def test_worker_accounts_may_not_use_the_console(worker_user):
    client = Client()
    client.force_login(worker_user)
    job = make_job()
    for url in (
        "/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        "/external-tasks/",
        "/topics/",
        "/failures/",
        "/audit/",
        "/search/?q=x",
        "/jobs/export/?format=csv",
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"may not use the console" in response.content
