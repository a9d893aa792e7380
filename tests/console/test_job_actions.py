"""Console actions on jobs and job definitions: every action × scope × role, with the audit."""

from datetime import UTC, datetime

import pytest

from jobs.models import Job, JobDefinition, JobLog
from project.models import AuditEntry, Batch
from tests.console.conftest import later, make_job, run_batches

pytestmark = pytest.mark.django_db

URL = "/jobs/actions/"


def act(client, follow=True, **data):
    data.setdefault("confirmed", "1")
    return client.post(URL, data, follow=follow)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


DUE = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

ACTIONS = [
    ("set_retries", {"retries": "4"}, {"retries": 4}, "Retries set to 4"),
    (
        "set_retries",
        {"retries": "2", "due_date": "2031-05-06T07:08:09"},
        {"retries": 2, "due_date": DUE},
        "Retries set to 2 (due 2031-05-06T07:08:09.000+0000)",
    ),
    ("suspend", {}, {"suspended": True}, "Suspended"),
    ("set_priority", {"priority": "-5"}, {"priority": -5}, "Priority set to -5"),
    (
        "set_due_date",
        {"due_date": "2031-05-06T07:08:09"},
        {"due_date": DUE},
        "Due date set to 2031-05-06T07:08:09.000+0000",
    ),
    ("set_due_date", {"due_date": ""}, {"due_date": None}, "Due date cleared (due now)"),
    ("unlock", {}, {"lock_owner": None, "lock_expiration_time": None}, "Unlocked"),
]


def _stuck(**fields):
    return make_job(
        retries=0,
        exception_message="boom",
        lock_owner="ex-1",
        lock_expiration_time=later(minutes=5),
        due_date=later(hours=1),
        **fields,
    )


@pytest.mark.parametrize("action,data,expected,phrase", ACTIONS)
@pytest.mark.parametrize("scope", ["one", "selected", "matching"])
def test_operator_acts_on_one_selected_or_all_matching_jobs(
    operator_client, action, data, expected, phrase, scope
):
    targets = [_stuck(handler="a.b") for _ in range(1 if scope == "one" else 3)]
    bystander = _stuck(handler="c.d", process_definition_key="other")
    if scope == "matching":
        for job in targets:
            Job.objects.filter(pk=job.pk).update(process_definition_key="orders")
        post = {"scope": "matching", "query": "processDefinitionKey=orders&noRetriesLeft=true"}
    else:
        post = {"scope": "ids", "ids": [j.pk for j in targets]}
    response = act(operator_client, action=action, **post, **data)
    assert response.status_code == 200
    n = len(targets)
    if scope == "matching":
        # All matching rows: a batch, and the confirmation leads to its page.
        batch = Batch.objects.get()
        assert response.redirect_chain[-1][0] == f"/batches/{batch.pk}/"
        assert (batch.target_type, batch.total_rows, batch.source) == ("job", n, "console")
        assert batch.description == "Process definition key: orders; No retries left"
        (message,) = messages_of(response)
        assert message.startswith("Batch started: ") and message.endswith(f" on {n} jobs.")
        assert Job.objects.get(pk=targets[0].pk).retries == 0  # the executor does the work
        run_batches()
    for job in targets:
        job.refresh_from_db()
        for field, value in expected.items():
            assert getattr(job, field) == value, (field, scope)
    bystander.refresh_from_db()
    assert bystander.retries == 0 and bystander.lock_owner == "ex-1"
    assert bystander.priority == 0 and not bystander.suspended
    if scope != "matching":
        assert messages_of(response) == [f"{phrase} on {n} job{'s' if n > 1 else ''}."]
    entry = AuditEntry.objects.get()
    assert entry.action == f"job.{action}" and entry.source == "console" and entry.count == n
    assert sorted(entry.target_ids) == sorted(j.pk for j in targets)
    if scope == "matching":
        assert entry.filter == {"processDefinitionKey": "orders", "noRetriesLeft": "true"}
    assert JobLog.objects.filter(job_id=targets[0].pk).exists()


def test_activate_counts_already_active_jobs_as_skipped(operator_client):
    suspended = make_job(suspended=True)
    active = make_job()
    response = act(operator_client, action="activate", scope="ids", ids=[suspended.pk, active.pk])
    suspended.refresh_from_db()
    assert not suspended.suspended
    assert messages_of(response) == [
        "Activated on 1 job (1 skipped: changed meanwhile or already in that state)."
    ]


def test_only_admins_delete_jobs(operator_client, admin_client):
    job = make_job()
    assert act(operator_client, action="delete", scope="ids", ids=[job.pk]).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()
    response = act(admin_client, action="delete", scope="matching", query="")
    assert Batch.objects.get().type == "delete-jobs"
    run_batches()
    assert not Job.objects.exists()
    assert messages_of(response)[0].endswith(" on 1 job.")
    assert AuditEntry.objects.get().action == "job.delete"
    assert act(operator_client, action="delete", scope="matching", query="").status_code == 403


@pytest.mark.parametrize(
    "action", ["set_retries", "suspend", "set_priority", "set_due_date", "unlock", "delete"]
)
def test_viewer_job_action_posts_are_forbidden(viewer_client, action):
    job = make_job(retries=0)
    response = act(
        viewer_client, action=action, retries="3", priority="1", scope="ids", ids=[job.pk]
    )
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.retries == 0 and not AuditEntry.objects.exists()


def test_all_matching_confirmation_counts_exactly_beyond_the_display_bound(
    operator_client, monkeypatch
):
    from console import tables

    monkeypatch.setattr(tables, "COUNT_LIMIT", 2)
    for _ in range(5):
        make_job(retries=0)
    html = operator_client.get("/jobs/?noRetriesLeft=true").content.decode()
    assert "2+ jobs" in html
    confirm = operator_client.post(
        URL, {"action": "set_retries", "scope": "matching", "query": "noRetriesLeft=true"}
    ).content.decode()
    assert "5 jobs" in confirm and "No retries left" in confirm


def test_execute_now_runs_one_job(operator_client):
    job = make_job(handler="tests.console.handlers.succeed", payload={"args": [2, 3]})
    response = act(operator_client, action="execute", scope="ids", ids=[job.pk])
    assert "Executed on 1 job." in messages_of(response)
    assert not Job.objects.filter(pk=job.pk).exists()


def test_execute_now_reports_the_failure(operator_client):
    job = make_job(handler="tests.console.handlers.fail", retries=2)
    response = act(operator_client, action="execute", scope="ids", ids=[job.pk])
    assert "The job ran and failed" in messages_of(response)[0]
    job.refresh_from_db()
    assert job.retries == 1


def test_execute_now_is_not_a_bulk_action(operator_client):
    jobs = [make_job(), make_job()]
    response = act(operator_client, action="execute", scope="ids", ids=[j.pk for j in jobs])
    assert "Execute now works on one job at a time." in messages_of(response)


def test_job_definition_suspend_with_its_jobs(operator_client):
    definition = JobDefinition.objects.create(tenant_id="acme", activity_id="Charge")
    job = make_job(job_definition=definition)
    response = operator_client.post(
        f"/jobs/definitions/{definition.pk}/action/",
        {"action": "suspend", "include_jobs": "true", "next": f"/jobs/{job.pk}/"},
        follow=True,
    )
    definition.refresh_from_db()
    job.refresh_from_db()
    assert definition.suspended and job.suspended
    assert "and its jobs" in messages_of(response)[0]
    assert AuditEntry.objects.filter(action="job_definition.suspend", source="console").exists()


def test_job_definition_priority_override(operator_client):
    definition = JobDefinition.objects.create(tenant_id="acme")
    job = make_job(job_definition=definition)
    operator_client.post(
        f"/jobs/definitions/{definition.pk}/action/",
        {"action": "set_priority", "priority": "40", "include_jobs": "true"},
    )
    definition.refresh_from_db()
    job.refresh_from_db()
    assert definition.overriding_priority == 40 and job.priority == 40


def test_job_definition_actions_forbidden_for_viewers_and_hidden_across_tenants(
    viewer_client, operator_client
):
    mine = JobDefinition.objects.create(tenant_id="acme")
    foreign = JobDefinition.objects.create(tenant_id="globex")
    url = f"/jobs/definitions/{mine.pk}/action/"
    assert viewer_client.post(url, {"action": "suspend"}).status_code == 403
    url = f"/jobs/definitions/{foreign.pk}/action/"
    assert operator_client.post(url, {"action": "suspend"}).status_code == 404
    foreign.refresh_from_db()
    assert not foreign.suspended


def test_admin_acts_on_every_tenants_jobs_and_operator_only_on_theirs(
    admin_client, operator_client
):
    jobs = [make_job(tenant_id=t, retries=0) for t in ("acme", "globex", None)]
    act(operator_client, action="suspend", scope="matching", query="")
    assert Batch.objects.get().total_rows == 2  # acme and the shared one
    run_batches()
    assert not Job.objects.get(pk=jobs[1].pk).suspended
    act(admin_client, action="suspend", scope="matching", query="")
    run_batches()
    batch = Batch.objects.latest("start_time")
    assert (batch.total_rows, batch.rows_changed, batch.rows_skipped) == (3, 1, 2)
    assert all(Job.objects.get(pk=j.pk).suspended for j in jobs)


def test_row_menu_acts_on_its_row_only(operator_client):
    menu_row, checked = make_job(), make_job()
    html = operator_client.get("/jobs/").content.decode()
    assert f'name="row_action" value="suspend:{menu_row.pk}"' in html
    confirm = operator_client.post(
        URL, {"row_action": f"suspend:{menu_row.pk}", "ids": [checked.pk], "scope": "matching"}
    ).content.decode()
    assert "Suspend on <span" in confirm and "1 job" in confirm
    assert f'name="ids" value="{menu_row.pk}"' in confirm
    assert f'name="ids" value="{checked.pk}"' not in confirm
    act(operator_client, row_action=f"suspend:{menu_row.pk}", ids=[checked.pk])
    assert Job.objects.get(pk=menu_row.pk).suspended
    assert not Job.objects.get(pk=checked.pk).suspended


def test_row_menu_is_absent_for_viewers(viewer_client):
    make_job()
    assert "row_action" not in viewer_client.get("/jobs/").content.decode()


def test_reason_reaches_the_audit_entry_of_a_bulk_job_action(operator_client):
    """The reason is handed to the service call, so it lands in the entry of this action (not
    in whichever entry happened to be written last)."""
    make_job(retries=0, process_definition_key="orders")
    make_job(retries=0, process_definition_key="orders")
    act(
        operator_client,
        action="set_retries",
        retries="2",
        scope="matching",
        query="processDefinitionKey=orders",
        reason="ticket OPS-7",
    )
    run_batches()
    entry = AuditEntry.objects.get()
    assert entry.action == "job.set_retries" and entry.count == 2
    assert entry.after["reason"] == "ticket OPS-7"
    assert entry.after["outcome"] == "completed"
