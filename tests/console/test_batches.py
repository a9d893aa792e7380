"""The Batches pages: progress, state, counts, roles, tenants, the executor warning, and the
console's bulk actions starting batches (all matching, big selections, failure groups)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import ExecutorHeartbeat, Job
from project import audit
from project.ids import new_id
from project.models import AuditEntry, Batch
from tests.batches import run_batches

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def make_batch(user, tenants=("acme",), **fields) -> Batch:
    """A batch as project.batches writes it: its audit entry names the tenants of its rows."""
    entry = audit.record(
        user,
        fields.get("target_type", "job"),
        "set_retries",
        tenants=list(tenants),
        count=fields.get("total_rows", 0),
        source="console",
    )
    now = timezone.now()
    values = {
        "id": new_id(),
        "type": "set-job-retries",
        "target_type": "job",
        "parameters": {"retries": 3},
        "description": "No retries left; Handler: billing.tasks.charge",
        "filter": {"noRetriesLeft": "true"},
        "total_rows": 1000,
        "total_jobs": 10,
        "invocations_per_batch_job": 100,
        "create_user_id": user.username,
        "source": "console",
        "start_time": now - timedelta(seconds=20),
        "tenant_id": tenants[0] if len(tenants) == 1 else None,
        "audit_entry": entry,
    }
    values.update(fields)
    return Batch.objects.create(**values)


def running(user, done=400, **fields) -> Batch:
    now = timezone.now()
    return make_batch(
        user,
        rows_changed=done - 10,
        rows_skipped=10,
        execution_start_time=now - timedelta(seconds=10),
        jobs_created=10,
        completed_jobs=done // 100,
        **fields,
    )


def finished(user, outcome=Batch.Outcome.COMPLETED, **fields) -> Batch:
    now = timezone.now()
    fields.setdefault("rows_changed", 990)
    fields.setdefault("rows_skipped", 10)
    fields.setdefault("execution_start_time", now - timedelta(seconds=30))
    fields.setdefault("end_time", now - timedelta(seconds=5))
    return make_batch(user, outcome=outcome, **fields)


def executor_alive(queues=()):
    ExecutorHeartbeat.objects.create(
        worker_id=f"host-1-{new_id()[:6]}", hostname="host-1", queues=list(queues)
    )


def rows_of(html, table_id):
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    return re.findall(r'<tr data-id="([^"]+)"', match.group(0)) if match else []


# ---------------------------------------------------------------------------------------------
# The list


def test_batches_page_lists_running_first_with_progress_then_finished(
    operator_client, operator_user
):
    executor_alive()
    done = finished(operator_user)
    live = running(operator_user, done=400)
    html = operator_client.get("/batches/").content.decode()
    assert 'aria-current="page">Batches' in html
    assert rows_of(html, "running-batches") == [live.pk]
    assert rows_of(html, "finished-batches") == [done.pk]
    running_part = html[html.index('id="running-batches"') : html.index('id="finished-batches"')]
    assert '<progress max="100" value="40"' in running_part
    assert "400</span> of 1,000 jobs done" in running_part
    assert "No retries left; Handler: billing.tasks.charge" in running_part
    assert re.search(r">\d+ rows/s<", running_part)  # exact figures: test_rate_and_time_left
    assert re.search(r">about \d+ s<", running_part)
    assert ">Running<" in running_part and "bob" in running_part
    finished_part = html[html.index('id="finished-batches"') :]
    assert ">Completed<" in finished_part and "25 s" in finished_part  # took
    assert f"/audit/?id={done.audit_entry_id}" in finished_part
    # While a batch runs the lists poll themselves; the executor is alive: no warning.
    assert 'hx-trigger="every 2s"' in html
    assert "data-executor-warning" not in html


def test_rate_and_time_left_from_the_first_chunk_on():
    from console.batches import BatchView

    now = timezone.now()
    batch = Batch(
        type="set-job-retries",
        target_type="job",
        total_rows=1000,
        rows_changed=390,
        rows_skipped=10,
        start_time=now - timedelta(minutes=5),
        execution_start_time=now - timedelta(seconds=10),
    )
    view = BatchView(batch, now)
    assert (view.rows_done, view.rows_left, view.percent) == (400, 600, 40)
    assert view.rate_text == "40 rows/s" and view.time_left_text == "about 15 s"
    batch.suspended = True
    assert view.state == "suspended" and view.time_left_text == "paused"
    batch.suspended = False
    batch.rows_changed = 990
    assert view.percent == 99 and view.time_left_text == "finishing"  # monitor still to run
    batch.end_time = now
    batch.outcome = "completed"
    assert view.percent == 100 and view.took_text == "10 s" and view.time_left_text == "—"
    waiting = BatchView(Batch(type="x", target_type="job", total_rows=5, start_time=now), now)
    assert waiting.rate_text == "—" and waiting.time_left_text == "not started yet"
    empty = BatchView(Batch(type="x", target_type="job", start_time=now, end_time=now), now)
    assert empty.percent == 100


@pytest.mark.parametrize(
    "seconds, words",
    [(0, "0 s"), (59.6, "1 min"), (61, "1 min 1 s"), (3600, "1 h"), (7500, "2 h 5 min")],
)
def test_durations_in_words(seconds, words):
    from console.batches import duration_words

    assert duration_words(seconds) == words


def test_batches_page_stops_polling_once_nothing_runs(operator_client, operator_user):
    finished(operator_user)
    html = operator_client.get("/batches/").content.decode()
    assert "hx-trigger" not in html.split('id="batch-lists"')[1].split(">")[0]
    assert "No batch is running" in html


def test_empty_batches_page_says_how_batches_come_about(viewer_client):
    html = viewer_client.get("/batches/").content.decode()
    assert "No batch is running" in html and "No finished batches yet" in html


def test_htmx_poll_gets_only_the_lists_partial(operator_client, operator_user):
    running(operator_user)
    response = operator_client.get("/batches/", headers=HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="batch-lists"')
    assert "<nav" not in html.replace('<nav class="pager"', "")
    assert "HX-Request" in response["Vary"]


def test_states_in_words(operator_client, operator_user):
    executor_alive()
    suspended = running(operator_user, suspended=True)
    cancelled = finished(operator_user, outcome=Batch.Outcome.CANCELLED, rows_changed=300)
    html = operator_client.get("/batches/").content.decode()
    assert re.search(rf'data-id="{suspended.pk}".*?data-state="suspended">Suspended<', html, re.S)
    assert re.search(rf'data-id="{cancelled.pk}".*?data-state="cancelled">Cancelled<', html, re.S)
    row = re.search(rf'<tr data-id="{suspended.pk}".*?</tr>', html, re.S).group(0)
    assert "paused" in row and 'value="resume"' in row and 'value="suspend"' not in row


def test_finished_batches_are_paged(operator_client, operator_user, monkeypatch):
    from console import batches as console_batches

    monkeypatch.setattr(console_batches, "FINISHED_PAGE", 2)
    now = timezone.now()
    made = [finished(operator_user, end_time=now - timedelta(minutes=i)) for i in range(5)]
    first = operator_client.get("/batches/").content.decode()
    assert rows_of(first, "finished-batches") == [made[0].pk, made[1].pk]
    assert 'href="?page=2" rel="next"' in first
    third = operator_client.get("/batches/?page=3").content.decode()
    assert rows_of(third, "finished-batches") == [made[4].pk]
    assert 'rel="next"' not in third and 'href="?page=2" rel="prev"' in third
    beyond = operator_client.get("/batches/?page=9").content.decode()
    assert "No more finished batches" in beyond
    assert operator_client.get("/batches/?page=abc").status_code == 200


# ---------------------------------------------------------------------------------------------
# One batch


def test_batch_page_shows_a_list_filter_as_the_query_string_takes_it(
    operator_client, operator_user
):
    batch = running(operator_user, filter={"tenantIdIn": ["acme", "globex"]})
    html = operator_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "<code>tenantIdIn=acme,globex</code>" in html
    assert "[&#x27;acme&#x27;" not in html and "['acme'" not in html


def test_batch_page_shows_progress_counts_who_and_filter(operator_client, operator_user):
    executor_alive(["batch"])
    batch = running(operator_user, done=250, rows_failed=0, batch_job_definition_id="def-1")
    html = operator_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Set job retries" in html or "Set retries" in html
    assert '<progress max="100" value="25"' in html
    assert "data-changed>240<" in html and "data-skipped" in html
    assert "No retries left; Handler: billing.tasks.charge" in html
    assert "<code>noRetriesLeft=true</code>" in html
    assert "bob" in html and "via console" in html
    assert "/jobs/?jobDefinitionId=def-1" in html
    assert f'hx-get="/batches/{batch.pk}/" hx-trigger="every 2s"' in html
    assert "data-executor-warning" not in html


def test_a_batch_still_selecting_its_rows_says_so_instead_of_0_of_0(operator_client, operator_user):
    executor_alive(["batch"])
    batch = make_batch(
        operator_user,
        total_rows=0,
        total_jobs=0,
        selection={"sql": "SELECT 1", "params": []},
    )
    html = operator_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Selecting the matching jobs…" in html and "on the matching jobs" in html
    assert "<span data-done>" not in html and "0 of 0" not in html
    assert "data-time-left>selecting the rows<" in html
    assert "not known until its rows are selected" in html
    listed = operator_client.get("/batches/").content.decode()
    assert "Selecting the matching jobs…" in listed


def test_batch_progress_partial_for_htmx_and_polling_stops_at_the_end(
    operator_client, operator_user
):
    batch = running(operator_user)
    partial = operator_client.get(f"/batches/{batch.pk}/", headers=HTMX).content.decode()
    assert partial.lstrip().startswith('<section id="batch-progress"')
    assert "hx-trigger" in partial.split(">")[0]
    Batch.objects.filter(pk=batch.pk).update(
        end_time=timezone.now(), outcome="completed", rows_changed=990, rows_skipped=10
    )
    partial = operator_client.get(f"/batches/{batch.pk}/", headers=HTMX).content.decode()
    assert "hx-trigger" not in partial.split(">")[0]
    assert 'data-state="completed">Completed<' in partial
    assert '<progress max="100" value="100"' in partial
    assert 'value="cancel"' not in partial  # nothing left to cancel


def test_unknown_and_other_tenants_batches_are_404(operator_client, operator_user, admin_user):
    other = running(admin_user, tenants=("globex",))
    assert operator_client.get(f"/batches/{other.pk}/").status_code == 404
    assert operator_client.get("/batches/no-such-batch/").status_code == 404
    assert other.pk not in operator_client.get("/batches/").content.decode()
    response = operator_client.post(f"/batches/{other.pk}/action/", {"action": "suspend"})
    assert response.status_code == 404
    assert Batch.objects.get(pk=other.pk).suspended is False


def test_batch_of_shared_rows_is_everyones_and_mixed_tenants_only_for_both(
    viewer_client, operator_user, admin_user
):
    shared = running(admin_user, tenants=(None,))
    mixed = running(admin_user, tenants=("acme", "globex"))
    html = viewer_client.get("/batches/").content.decode()
    assert shared.pk in html and mixed.pk not in html


def test_admin_sees_every_tenants_batches(admin_client, operator_user):
    acme = running(operator_user)
    globex = running(operator_user, tenants=("globex",))
    html = admin_client.get("/batches/").content.decode()
    assert acme.pk in html and globex.pk in html


# ---------------------------------------------------------------------------------------------
# Suspend, resume, cancel


def test_operator_suspends_resumes_and_cancels(operator_client, operator_user):
    batch = running(operator_user)
    response = operator_client.post(f"/batches/{batch.pk}/action/", {"action": "suspend"})
    assert response.status_code == 302 and response["Location"] == f"/batches/{batch.pk}/"
    assert Batch.objects.get(pk=batch.pk).suspended is True
    page = operator_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Suspended batch" in page and 'data-state="suspended"' in page
    operator_client.post(f"/batches/{batch.pk}/action/", {"action": "resume"})
    assert Batch.objects.get(pk=batch.pk).suspended is False
    response = operator_client.post(
        f"/batches/{batch.pk}/action/", {"action": "cancel", "next": "/batches/"}
    )
    assert response["Location"] == "/batches/"
    batch.refresh_from_db()
    assert batch.end_time is not None and batch.outcome == "cancelled"
    # History is kept: the cancelled batch is listed with its counts.
    html = operator_client.get("/batches/").content.decode()
    assert rows_of(html, "finished-batches") == [batch.pk]


def test_actions_on_an_ended_batch_change_nothing(operator_client, operator_user):
    batch = finished(operator_user)
    response = operator_client.post(
        f"/batches/{batch.pk}/action/", {"action": "suspend"}, follow=True
    )
    assert "already ended" in response.content.decode()
    assert Batch.objects.get(pk=batch.pk).suspended is False


def test_viewer_sees_no_buttons_and_is_refused(viewer_client, operator_user):
    batch = running(operator_user)
    html = viewer_client.get("/batches/").content.decode()
    detail = viewer_client.get(f"/batches/{batch.pk}/").content.decode()
    for page in (html, detail):
        assert 'value="suspend"' not in page and 'value="cancel"' not in page
    for action in ("suspend", "resume", "cancel"):
        response = viewer_client.post(f"/batches/{batch.pk}/action/", {"action": action})
        assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.suspended is False and batch.end_time is None


def test_bad_batch_action_and_get_are_refused(operator_client, operator_user):
    batch = running(operator_user)
    assert operator_client.post(f"/batches/{batch.pk}/action/", {"action": "x"}).status_code == 400
    assert operator_client.post(f"/batches/{batch.pk}/action/").status_code == 400
    assert operator_client.get(f"/batches/{batch.pk}/action/").status_code == 405


def test_foreign_next_url_is_ignored(operator_client, operator_user):
    batch = running(operator_user)
    response = operator_client.post(
        f"/batches/{batch.pk}/action/", {"action": "suspend", "next": "https://evil.example/"}
    )
    assert response["Location"] == f"/batches/{batch.pk}/"


def test_batch_pages_need_a_login(client, operator_user):
    batch = running(operator_user)
    for url in ("/batches/", f"/batches/{batch.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


# ---------------------------------------------------------------------------------------------
# The executor warning


def test_warning_when_no_executor_runs_the_batch_queue(operator_client, operator_user):
    batch = running(operator_user)
    html = operator_client.get("/batches/").content.decode()
    assert "data-executor-warning" in html
    assert "has been seen yet: batches will not progress" in html
    assert "manage.py runjobs --queue batch" in html
    assert "data-executor-warning" in operator_client.get(f"/batches/{batch.pk}/").content.decode()


def test_warning_names_how_long_ago_the_last_executor_was_seen(operator_client, operator_user):
    running(operator_user)
    ExecutorHeartbeat.objects.create(
        worker_id="old", last_seen=timezone.now() - timedelta(minutes=7, seconds=3)
    )
    html = operator_client.get("/batches/").content.decode()
    assert "has been seen for 7 min 3 s: batches will not progress" in html


def test_an_executor_of_other_queues_only_does_not_count(operator_client, operator_user):
    running(operator_user)
    executor_alive(["default"])
    assert "data-executor-warning" in operator_client.get("/batches/").content.decode()
    executor_alive(["default", "batch"])
    assert "data-executor-warning" not in operator_client.get("/batches/").content.decode()


def test_no_warning_when_nothing_runs(operator_client, operator_user):
    batch = finished(operator_user)
    assert "data-executor-warning" not in operator_client.get("/batches/").content.decode()
    page = operator_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "data-executor-warning" not in page


# ---------------------------------------------------------------------------------------------
# The audit entry link


def test_audit_link_opens_exactly_the_batchs_entry(operator_client, operator_user):
    batch = finished(operator_user)
    other = audit.record(operator_user, "job", "suspend", tenants=["acme"], source="console")
    html = operator_client.get(f"/audit/?id={batch.audit_entry_id}").content.decode()
    assert html.count("<code>job.set_retries</code>") == 1
    assert "<code>job.suspend</code>" not in html
    assert AuditEntry.objects.filter(pk=other.pk).exists()
    bad = operator_client.get("/audit/?id=abc").content.decode()
    assert "id must be the number of an audit entry." in bad


def test_navigation_counts_the_users_running_batches(viewer_client, operator_user):
    running(operator_user)
    running(operator_user)
    running(operator_user, tenants=("globex",))  # not the viewer's
    finished(operator_user)
    html = viewer_client.get("/jobs/").content.decode()
    assert re.search(r'Batches\s*<span class="count running" title="running batches">2<', html)


def test_audit_entry_of_a_batch_links_to_it(operator_client, operator_user):
    batch = finished(operator_user)
    AuditEntry.objects.filter(pk=batch.audit_entry_id).update(after={"batch": batch.pk})
    html = operator_client.get("/audit/").content.decode()
    assert f'href="/batches/{batch.pk}/">batch</a>' in html


# ---------------------------------------------------------------------------------------------
# Actions that start batches

JOBS_URL = "/jobs/actions/"
TASKS_URL = "/external-tasks/actions/"


def confirmed(client, url, follow=True, headers=None, **data):
    data.setdefault("confirmed", "1")
    return client.post(url, data, follow=follow, headers=headers or {})


def failed_job(**fields):
    from .conftest import make_job

    fields.setdefault("retries", 0)
    fields.setdefault("exception_message", "boom")
    return make_job(**fields)


@pytest.mark.parametrize(
    "action, data, batch_type, parameters",
    [
        ("set_retries", {"retries": "4"}, "set-job-retries", {"retries": 4}),
        (
            "set_retries",
            {"retries": "2", "due_date": "2031-05-06T07:08:09"},
            "set-job-retries",
            {"retries": 2, "dueDate": "2031-05-06T07:08:09.000+0000"},
        ),
        ("suspend", {}, "suspend-jobs", {}),
        ("activate", {}, "activate-jobs", {}),
        ("unlock", {}, "unlock-jobs", {}),
        ("set_priority", {"priority": "-5"}, "set-job-priority", {"priority": -5}),
        (
            "set_due_date",
            {"due_date": "2031-05-06T07:08:09"},
            "set-job-due-date",
            {"dueDate": "2031-05-06T07:08:09.000+0000"},
        ),
        ("set_due_date", {"due_date": ""}, "set-job-due-date", {"dueDate": None}),
    ],
)
def test_all_matching_job_action_starts_its_batch(
    operator_client, action, data, batch_type, parameters
):
    for _ in range(3):
        failed_job(process_definition_key="orders")
    failed_job(process_definition_key="other")
    response = confirmed(
        operator_client,
        JOBS_URL,
        action=action,
        scope="matching",
        query="processDefinitionKey=orders&noRetriesLeft=true",
        expected="3",
        **data,
    )
    batch = Batch.objects.get()
    assert response.redirect_chain == [(f"/batches/{batch.pk}/", 302)]
    assert batch.type == batch_type and batch.parameters == parameters
    assert batch.filter == {"processDefinitionKey": "orders", "noRetriesLeft": "true"}
    assert batch.description == "Process definition key: orders; No retries left"
    assert (batch.total_rows, batch.source, batch.create_user_id) == (3, "console", "bob")
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Batch started: ") and message.endswith(" on 3 jobs.")
    # The page it lands on is the batch's progress.
    assert 'id="batch-progress"' in response.content.decode()


def test_a_large_all_matching_action_lands_on_its_batch_selecting_the_rows(
    operator_client, settings
):
    settings.TASKYARD_BATCH_SNAPSHOT_LIMIT = 2
    for _ in range(3):
        failed_job(process_definition_key="orders")
    response = confirmed(
        operator_client,
        JOBS_URL,
        action="set_retries",
        scope="matching",
        query="processDefinitionKey=orders&noRetriesLeft=true",
        expected="3",
        retries="2",
    )
    batch = Batch.objects.get()
    assert batch.selecting and batch.total_rows == 0
    (message,) = [str(m) for m in response.context["messages"]]
    assert message == "Batch started: set retries to 2 on the jobs that match."
    assert "Selecting the matching jobs…" in response.content.decode()
    run_batches()
    batch.refresh_from_db()
    assert (batch.total_rows, batch.rows_changed, batch.outcome) == (3, 3, "completed")


@pytest.mark.parametrize(
    "action, data, batch_type",
    [
        ("set_retries", {"retries": "1"}, "set-external-task-retries"),
        ("suspend", {}, "suspend-external-tasks"),
        ("activate", {}, "activate-external-tasks"),
        ("unlock", {}, "unlock-external-tasks"),
        ("set_priority", {"priority": "7"}, "set-external-task-priority"),
    ],
)
def test_all_matching_task_action_starts_its_batch(operator_client, action, data, batch_type):
    from .conftest import make_task

    make_task(topic_name="invoice", retries=0)
    make_task(topic_name="shipping", retries=0)
    confirmed(
        operator_client,
        TASKS_URL,
        action=action,
        scope="matching",
        query="topicName=invoice",
        **data,
    )
    batch = Batch.objects.get()
    assert (batch.type, batch.target_type, batch.total_rows) == (batch_type, "external_task", 1)
    assert batch.description == "Topic name: invoice"


def test_admin_deletes_all_matching_through_a_batch(admin_client, operator_client):
    from .conftest import make_task

    make_task()
    assert (
        confirmed(operator_client, TASKS_URL, action="delete", scope="matching").status_code == 403
    )
    assert not Batch.objects.exists()
    confirmed(admin_client, TASKS_URL, action="delete", scope="matching")
    assert Batch.objects.get().type == "delete-external-tasks"


def test_the_confirmation_says_when_a_batch_will_run(operator_client):
    jobs = [failed_job() for _ in range(2)]
    matching = operator_client.post(
        JOBS_URL, {"action": "set_retries", "scope": "matching", "query": "noRetriesLeft=true"}
    ).content.decode()
    assert "This starts a batch" in matching and "chunks of 1,000" in matching
    selected = operator_client.post(
        JOBS_URL, {"action": "set_retries", "scope": "ids", "ids": [j.pk for j in jobs]}
    ).content.decode()
    assert "This starts a batch" not in selected


def test_small_selection_stays_synchronous(operator_client):
    from jobs.models import Job

    jobs = [failed_job() for _ in range(3)]
    response = confirmed(
        operator_client, JOBS_URL, action="set_retries", retries="5", ids=[j.pk for j in jobs]
    )
    assert not Batch.objects.exists()
    assert set(Job.objects.values_list("retries", flat=True)) == {5}
    assert [str(m) for m in response.context["messages"]] == ["Retries set to 5 on 3 jobs."]
    assert response.redirect_chain == [("/jobs/", 302)]


def test_selection_beyond_the_limit_becomes_a_batch(operator_client, monkeypatch):
    from console import actions
    from jobs.models import Job

    monkeypatch.setattr(actions, "SYNC_LIMIT", 2)
    jobs = [failed_job() for _ in range(3)]
    foreign = failed_job(tenant_id="globex")
    ids = [j.pk for j in jobs] + [foreign.pk]
    response = confirmed(operator_client, JOBS_URL, action="suspend", ids=ids)
    batch = Batch.objects.get()
    assert response.redirect_chain == [(f"/batches/{batch.pk}/", 302)]
    # Another tenant's id is not in it (nor counted); the filter is the ids.
    assert (batch.type, batch.total_rows, batch.filter) == ("suspend-jobs", 3, None)
    assert batch.description == "4 jobs selected"
    assert [str(m) for m in response.context["messages"]] == [
        "Batch started: suspend on 3 jobs (1 of the selected are gone or not visible to you)."
    ]
    assert not Job.objects.filter(suspended=True).exists()  # the executor does it


def test_nothing_left_to_match_starts_no_batch(operator_client):
    from jobs.models import Job

    failed_job()
    Job.objects.update(retries=3)  # fixed meanwhile, between confirmation and click
    response = confirmed(
        operator_client,
        JOBS_URL,
        action="set_retries",
        retries="1",
        scope="matching",
        query="noRetriesLeft=true",
        expected="1",
    )
    assert not Batch.objects.exists() and not AuditEntry.objects.exists()
    assert [str(m) for m in response.context["messages"]] == [
        "Nothing to do: no jobs match any more."
    ]


def test_htmx_confirmation_redirects_the_browser_to_the_batch(operator_client):
    failed_job()
    response = confirmed(
        operator_client,
        JOBS_URL,
        follow=False,
        headers=HTMX,
        action="suspend",
        scope="matching",
        query="noRetriesLeft=true",
    )
    batch = Batch.objects.get()
    assert response["HX-Redirect"] == f"/batches/{batch.pk}/"


def test_viewer_cannot_start_a_batch(viewer_client):
    failed_job()
    response = confirmed(viewer_client, JOBS_URL, action="suspend", scope="matching")
    assert response.status_code == 403 and not Batch.objects.exists()


def test_an_operators_batch_holds_only_their_tenants_rows(operator_client, operator_user):
    failed_job()
    failed_job(tenant_id=None)
    failed_job(tenant_id="globex")
    confirmed(operator_client, JOBS_URL, action="suspend", scope="matching", query="")
    batch = Batch.objects.get()
    assert batch.total_rows == 2 and batch.tenant_id is None  # acme and a shared row
    assert batches_visible_to(operator_user) == [batch.pk]


def batches_visible_to(user):
    from project import batches

    return list(batches.visible(user).values_list("pk", flat=True))


def test_a_batch_job_links_to_its_batch(operator_client, operator_user):
    from jobs.models import JobDefinition

    from .conftest import make_job

    batch = running(operator_user)
    definition = JobDefinition.objects.create(
        job_type="set-job-retries", job_configuration=batch.pk, tenant_id="acme"
    )
    job = make_job(queue_name="batch", job_definition=definition)
    html = operator_client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/batches/{batch.pk}/" data-batch-link' in html


def test_audit_page_shows_a_batchs_before_and_after(operator_client, operator_user):
    from project import batches

    for retries in (0, 0, 1):
        failed_job(retries=retries)
    jobs = Job.objects.filter(tenant_id="acme")
    batches.start(operator_user, "set-job-retries", jobs, {"retries": 3}, source="console")
    page = operator_client.get("/audit/").content.decode()
    assert "retries: 0 → 3 (2 jobs), 1 → 3 (1 job)" in page
