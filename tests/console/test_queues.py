"""The Queues & executors page, queue pause from the console, and the topics page's rate, wait
and stale workers: real rows on both databases, roles and tenants."""

import re
from datetime import timedelta

import pytest

from external_tasks.models import ExternalTaskLog
from jobs import claims
from jobs.models import ExecutorHeartbeat, Job, JobLog, QueuePause
from project.models import AuditEntry

from .conftest import HTMX, _client, ago, later, make_job, make_task

pytestmark = pytest.mark.django_db


def queue_row(html: str, name: str) -> str:
    """The <tr> of one queue in the queues table."""
    match = re.search(rf'<tr data-queue="{re.escape(name)}">(.*?)</tr>', html, re.S)
    assert match, f"no row for queue {name}"
    return match.group(1)


def cells(row: str) -> list[str]:
    """The text of each cell of a row, tags stripped and whitespace squeezed."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


# Column order of the queues table.
QUEUE, STATE, READY, OLDEST, RUNNING, WAITING, RETRYING, FAILED, RATE, FAILURES, EXECUTORS = range(
    11
)


def log(job_id, event, queue_name, minutes_ago, tenant="acme"):
    return JobLog.objects.create(
        job_id=job_id,
        event=event,
        queue_name=queue_name,
        tenant_id=tenant,
        timestamp=ago(minutes=minutes_ago),
    )


def heartbeat(worker_id, seconds_ago=1, queues=(), running=0, **fields):
    return ExecutorHeartbeat.objects.create(
        worker_id=worker_id,
        hostname=fields.pop("hostname", "host-1"),
        pid=fields.pop("pid", 4242),
        queues=list(queues),
        started_at=ago(hours=1),
        last_seen=ago(seconds=seconds_ago),
        running=running,
    )


def page(client, **params):
    response = client.get("/queues/", params)
    assert response.status_code == 200
    return response.content.decode()


# ---------------------------------------------------------------------------------------------
# The numbers


def test_each_queue_shows_its_backlog_oldest_due_running_waiting_and_failed(admin_client):
    make_job(queue_name="emails", due_date=ago(minutes=30))
    make_job(queue_name="emails", create_time=ago(minutes=5))
    make_job(queue_name="emails", lock_owner="exec-1", lock_expiration_time=later(minutes=5))
    make_job(queue_name="emails", due_date=later(hours=1))
    make_job(queue_name="emails", retries=0, exception_message="boom")
    make_job(queue_name="emails", retries=2, exception_message="boom", due_date=later(minutes=5))
    make_job(queue_name="emails", suspended=True)
    make_job(queue_name="reports")

    row = cells(queue_row(page(admin_client), "emails"))

    assert row[STATE] == "Active"
    assert row[READY] == "2"  # due now: the one due 30 minutes ago and the one without a date
    assert "30" in row[OLDEST] and "minutes ago" in row[OLDEST]
    assert row[RUNNING] == "1"
    assert row[WAITING] == "1"
    assert row[RETRYING] == "1"
    assert row[FAILED] == "1"
    assert cells(queue_row(page(admin_client), "reports"))[READY] == "1"


def test_counts_link_to_exactly_those_jobs(admin_client):
    failed = make_job(queue_name="emails", retries=0)
    make_job(queue_name="reports", retries=0)
    row = queue_row(page(admin_client), "emails")
    assert 'href="/jobs/?queueName=emails&amp;status=failed"' in row

    listed = admin_client.get("/jobs/", {"queueName": "emails", "status": "failed"})
    assert failed.id in listed.content.decode()
    assert listed.context["table"].count == 1


def test_default_and_batch_queues_are_always_listed_and_the_batch_queue_says_it_runs_batches(
    admin_client,
):
    html = page(admin_client)
    assert cells(queue_row(html, "default"))[READY] == "0"
    assert "(all batches)" in queue_row(html, "batch")
    assert "pausing it pauses all batches" in html


def test_rate_counts_completions_per_minute_over_the_recent_window(admin_client):
    for minutes in range(1, 31):  # 30 completions in the window, 1 per 30 s... of 15 minutes
        log(f"job-{minutes}", "succeeded", "emails", minutes_ago=minutes / 2.5)
    log("old", "succeeded", "emails", minutes_ago=16)  # before the window
    log("f1", "failed", "emails", minutes_ago=3)
    log("f2", "failed", "emails", minutes_ago=14)
    log("f3", "failed", "emails", minutes_ago=20)

    row = cells(queue_row(page(admin_client), "emails"))

    assert row[RATE] == "2"  # 30 in 15 minutes
    assert row[FAILURES] == "2"


def test_a_fractional_rate_is_shown_with_its_decimal(admin_client):
    log("one", "succeeded", "emails", minutes_ago=1)
    assert cells(queue_row(page(admin_client), "emails"))[RATE] == "0.1"


def test_numbers_are_cached_for_seconds_but_count_again_recounts(admin_client):
    page(admin_client)
    make_job(queue_name="emails")
    assert 'data-queue="emails"' not in page(admin_client)
    assert cells(queue_row(page(admin_client, fresh=1), "emails"))[READY] == "1"


# ---------------------------------------------------------------------------------------------
# Pause and resume


def test_admin_pauses_a_queue_and_the_page_says_so_at_once(admin_client):
    make_job(queue_name="emails")
    page(admin_client)  # numbers cached: the pause must show anyway

    response = admin_client.post(
        "/queues/action/", {"queue": "emails", "action": "pause", "reason": "SMTP down"}
    )

    assert response.status_code == 302 and response["Location"] == "/queues/"
    pause = QueuePause.objects.get()
    assert (pause.name, pause.paused_by, pause.reason) == ("emails", "alice", "SMTP down")
    html = admin_client.get("/queues/").content.decode()
    assert "Paused queue emails." in html
    row = queue_row(html, "emails")
    assert "Paused" in cells(row)[STATE] and "by alice" in cells(row)[STATE]
    assert "SMTP down" in row
    assert 'value="resume"' in row
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.target_ids) == ("queue.pause", "console", ["emails"])


def test_admin_resumes_a_paused_queue(admin_client, admin_user):
    from jobs import services

    make_job(queue_name="emails")
    services.pause_queue(admin_user, "emails")
    response = admin_client.post("/queues/action/", {"queue": "emails", "action": "resume"})
    assert response.status_code == 302
    assert not QueuePause.objects.exists()
    html = admin_client.get("/queues/").content.decode()
    assert "Resumed queue emails." in html
    assert cells(queue_row(html, "emails"))[STATE] == "Active"
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "queue.pause",
        "queue.resume",
    ]


def test_admin_may_pause_a_queue_not_listed_yet(admin_client):
    admin_client.post("/queues/action/", {"queue": "newsletters", "action": "pause"})
    assert "Paused" in cells(queue_row(page(admin_client), "newsletters"))[STATE]


def test_pausing_twice_says_so_and_writes_nothing_more(admin_client):
    admin_client.post("/queues/action/", {"queue": "emails", "action": "pause"})
    response = admin_client.post(
        "/queues/action/", {"queue": "emails", "action": "pause"}, follow=True
    )
    assert "Already paused: queue emails." in response.content.decode()
    assert AuditEntry.objects.count() == 1


def test_an_empty_or_bad_queue_name_is_an_error_on_the_page(admin_client):
    response = admin_client.post("/queues/action/", {"queue": "", "action": "pause"}, follow=True)
    assert "A queue name is required" in response.content.decode()
    response = admin_client.post(
        "/queues/action/", {"queue": "x" * 101, "action": "pause"}, follow=True
    )
    assert "at most 100 characters" in response.content.decode()
    assert not QueuePause.objects.exists()


def test_an_unknown_action_is_refused(admin_client):
    response = admin_client.post("/queues/action/", {"queue": "emails", "action": "drain"})
    assert response.status_code == 400
    assert not QueuePause.objects.exists()


def test_pause_needs_post(admin_client):
    assert (
        admin_client.get("/queues/action/", {"queue": "emails", "action": "pause"}).status_code
        == 405
    )


def test_viewers_see_no_buttons_and_may_not_post(viewer_client):
    html = page(viewer_client)
    assert 'value="pause"' not in html and "queue-action" not in html
    response = viewer_client.post("/queues/action/", {"queue": "emails", "action": "pause"})
    assert response.status_code == 403
    assert not QueuePause.objects.exists()


def test_a_tenant_operator_is_told_only_admins_pause_and_is_refused(operator_client):
    html = page(operator_client)
    assert "only admins may pause or resume one" in html
    assert 'value="pause"' not in html
    response = operator_client.post("/queues/action/", {"queue": "emails", "action": "pause"})
    assert response.status_code == 403
    assert "every tenant" in response.content.decode()
    assert not QueuePause.objects.exists() and not AuditEntry.objects.exists()


def test_the_paused_queues_jobs_stay_while_others_are_claimed(admin_client):
    paused = make_job(queue_name="emails", tenant_id=None)
    other = make_job(queue_name="reports", tenant_id=None)
    admin_client.post("/queues/action/", {"queue": "emails", "action": "pause"})

    claimed = claims.acquire_jobs("exec-1", lock_time=timedelta(minutes=1), limit=10)

    assert [job.id for job in claimed] == [other.id]
    assert Job.objects.get(id=paused.id).lock_owner is None


# ---------------------------------------------------------------------------------------------
# Executors


def test_executors_seen_recently_with_state_host_queues_and_running_jobs(admin_client):
    heartbeat("exec-live", seconds_ago=2, queues=["emails", "batch"], running=3, pid=101)
    heartbeat("exec-gone", seconds_ago=600, pid=102)
    heartbeat("exec-ancient", seconds_ago=25 * 3600)
    make_job(queue_name="emails", lock_owner="exec-live", lock_expiration_time=later(minutes=5))
    make_job(queue_name="emails", lock_owner="exec-live", lock_expiration_time=ago(minutes=1))

    html = page(admin_client)

    live = re.search(r'<tr data-executor="exec-live">(.*?)</tr>', html, re.S).group(1)
    assert cells(live)[1] == "Running"
    assert cells(live)[2:4] == ["host-1", "101"]
    assert "<code>emails</code>, <code>batch</code>" in live
    assert cells(live)[7] == "1"  # one live lock; the expired one is not running
    assert 'title="it reported 3 running"' in live
    gone = re.search(r'<tr data-executor="exec-gone">(.*?)</tr>', html, re.S).group(1)
    assert cells(gone)[1] == "Not seen" and cells(gone)[4] == "every queue"
    assert "exec-ancient" not in html
    assert "1 executor running" in html


def test_a_queue_no_running_executor_takes_is_marked(admin_client):
    heartbeat("exec-emails", queues=["emails"])
    heartbeat("exec-old", seconds_ago=120)  # every queue, but stopped
    make_job(queue_name="emails")
    make_job(queue_name="reports")
    html = page(admin_client)
    assert cells(queue_row(html, "emails"))[EXECUTORS] == "1"
    assert cells(queue_row(html, "reports"))[EXECUTORS] == "none"


def test_no_executor_seen_is_a_designed_empty_state(admin_client):
    html = page(admin_client)
    assert "No job executor seen in the last 24 hours" in html
    assert "runjobs --queue batch" in html


# ---------------------------------------------------------------------------------------------
# Tenants


def test_a_tenant_viewer_counts_only_their_tenants_jobs_and_log(viewer_client):
    make_job(queue_name="emails", tenant_id="acme")
    make_job(queue_name="emails", tenant_id="globex")
    make_job(queue_name="emails", tenant_id="globex", retries=0)
    make_job(queue_name="globex-only", tenant_id="globex")
    log("a", "succeeded", "emails", minutes_ago=1, tenant="globex")
    log("b", "failed", "emails", minutes_ago=1, tenant="globex")

    html = page(viewer_client)

    row = cells(queue_row(html, "emails"))
    assert row[READY] == "1" and row[FAILED] == "0"
    assert row[RATE] == "0" and row[FAILURES] == "0"
    assert "globex-only" not in html


def test_a_tenant_viewer_sees_pauses_and_executors_but_not_other_tenants_running_jobs(
    viewer_client, admin_user
):
    from jobs import services

    services.pause_queue(admin_user, "globex-queue")
    heartbeat("exec-1", running=7)
    make_job(tenant_id="globex", lock_owner="exec-1", lock_expiration_time=later(minutes=5))
    make_job(tenant_id="acme", lock_owner="exec-1", lock_expiration_time=later(minutes=5))

    html = page(viewer_client)

    assert "Paused" in cells(queue_row(html, "globex-queue"))[STATE]
    executor = re.search(r'<tr data-executor="exec-1">(.*?)</tr>', html, re.S).group(1)
    assert cells(executor)[7] == "1"
    assert "it reported" not in executor  # its own count covers every tenant


def test_numbers_are_cached_per_tenant_set(viewer_client, admin_client):
    make_job(queue_name="emails", tenant_id="globex")
    assert 'data-queue="emails"' not in page(viewer_client)
    assert cells(queue_row(page(admin_client), "emails"))[READY] == "1"


def test_queues_page_is_in_the_navigation(viewer_client):
    html = viewer_client.get("/").content.decode()
    assert 'href="/queues/"' in html and "Queues &amp; executors" in html
    assert 'aria-current="page">Queues' in page(viewer_client)


def test_worker_accounts_may_not_see_the_queues_page(worker_user):
    assert _client(worker_user).get("/queues/").status_code == 403


def test_queue_names_with_odd_characters_are_escaped_and_linked(admin_client):
    make_job(queue_name='a&b "<q>"')
    html = page(admin_client)
    assert "<q>" not in html
    assert "queueName=a%26b%20%22%3Cq%3E%22" in html


# ---------------------------------------------------------------------------------------------
# Topics: rate, wait, stale workers


def topics(client):
    response = client.get("/topics/", {"fresh": 1})
    assert response.status_code == 200
    return response.content.decode()


def task_log(task, event, minutes_ago, worker=None, tenant="acme", topic="invoice"):
    return ExternalTaskLog.objects.create(
        task_id=task if isinstance(task, str) else task.id,
        event=event,
        worker_id=worker,
        topic_name=topic,
        tenant_id=tenant,
        timestamp=ago(minutes=minutes_ago),
    )


def topic_row(html, topic):
    match = re.search(
        rf'<tr>\s*<td><a href="[^"]*topicName={topic}">{topic}</a></td>(.*?)</tr>', html, re.S
    )
    assert match, f"no row for topic {topic}"
    return cells(match.group(1))


def test_topics_show_rate_failures_and_the_wait_of_the_oldest_fetchable_task(admin_client):
    make_task(create_time=ago(minutes=40), worker_id="w", lock_expiration_time=later(minutes=5))
    make_task(create_time=ago(minutes=12))
    make_task(create_time=ago(minutes=3))
    for minutes in range(6):
        task_log(f"done-{minutes}", "completed", minutes_ago=minutes + 1)
    task_log("done-old", "completed", minutes_ago=20)
    task_log("f", "failed", minutes_ago=2)
    task_log("e", "bpmn-error", minutes_ago=2)

    row = topic_row(topics(admin_client), "invoice")

    # ... Total, Oldest, Completed / min, Failures, Wait
    assert row[-3] == "0.4"  # 6 in 15 minutes
    assert row[-2] == "2"
    assert row[-1].startswith("12") and "minute" in row[-1]  # the locked one is not waiting


def test_a_topic_without_fetchable_tasks_has_no_wait(admin_client):
    make_task(retries=0)
    assert topic_row(topics(admin_client), "invoice")[-1] == "—"


def test_topic_rates_are_scoped_to_the_viewers_tenants(viewer_client):
    make_task(tenant_id="acme")
    task_log("x", "completed", minutes_ago=1, tenant="globex")
    assert topic_row(topics(viewer_client), "invoice")[-3] == "0"


def worker_row(html, worker):
    rows = re.findall(rf'<tr data-worker="{worker}">(.*?)</tr>', html, re.S)
    assert rows, f"no row for worker {worker}"
    return rows[0]


def test_a_worker_whose_locks_the_log_accounts_for_is_not_stale(admin_client):
    task = make_task(worker_id="healthy", lock_expiration_time=later(minutes=4))
    task_log(task, "locked", minutes_ago=1, worker="healthy")

    row = worker_row(topics(admin_client), "healthy")

    assert "Stale" not in row
    assert "5 min" in cells(row)[4]  # lock duration: expiry less the lock entry


def test_a_worker_holding_live_locks_not_seen_taking_them_is_stale(admin_client):
    # Locks the log does not show it taking or extending (history pruned, rows imported):
    # nothing says it is still there.
    make_task(worker_id="ghost", lock_expiration_time=later(minutes=30))
    task_log("other-task", "completed", minutes_ago=90, worker="ghost")

    row = worker_row(topics(admin_client), "ghost")

    assert '<span class="badge stale"' in row
    assert "the log does not account for its locks" in row


def test_an_extension_is_a_sighting(admin_client):
    task = make_task(worker_id="slow", lock_expiration_time=later(minutes=9))
    task_log(task, "locked", minutes_ago=50, worker="slow")
    task_log(task, "lock-extended", minutes_ago=1, worker="slow")
    row = worker_row(topics(admin_client), "slow")
    assert "Stale" not in row
    assert "10 min" in cells(row)[4]


def test_a_worker_whose_locks_expired_is_not_stale(admin_client):
    make_task(worker_id="done", lock_expiration_time=ago(minutes=1))
    task_log("t", "completed", minutes_ago=120, worker="done")
    assert "Stale" not in worker_row(topics(admin_client), "done")


def test_stale_is_judged_on_the_viewers_tasks_only(viewer_client):
    make_task(worker_id="ghost", tenant_id="globex", lock_expiration_time=later(minutes=30))
    html = topics(viewer_client)
    assert "ghost" not in html


def test_htmx_and_plain_requests_both_render_the_queues_page(admin_client):
    assert admin_client.get("/queues/", headers=HTMX).status_code == 200


def test_a_jobs_page_names_its_queue_and_says_when_it_is_paused(admin_client, admin_user):
    from jobs import services

    job = make_job(queue_name="emails")
    html = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert 'href="/jobs/?queueName=emails"' in html
    assert "Queue paused" not in html

    services.pause_queue(admin_user, "emails")
    html = admin_client.get(f"/jobs/{job.id}/").content.decode()
    assert "Queue paused" in html and 'href="/queues/"' in html
