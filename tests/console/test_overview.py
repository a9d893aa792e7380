"""The overview: state tiles (exact, or estimates marked as such), their change against the day
before from real log rows, the throughput window, the ranked attention list, tenant scoping of
every figure and the self-refresh partial."""

import re

import pytest
from django.utils import timezone

from console import overview
from external_tasks.models import ExternalTaskLog
from jobs.models import ExecutorHeartbeat, JobLog
from tests.console.conftest import HTMX, ago, later, make_job, make_task


def tile(html, key):
    """The text of one state tile (`job-failed`, `task-waiting`, ...)."""
    match = re.search(rf'<a class="tile[^"]*"[^>]*data-status="{key}".*?</a>', html, re.S)
    assert match, f"no tile {key}"
    return match.group(0)


def tile_number(html, key):
    return re.search(r'<span class="n">([^<]*)', tile(html, key)).group(1)


def legend(html):
    """(completed, failed) as the chart's legend says them."""
    found = re.search(r"</span> completed ([\d,]+)\s.*?</span> failed ([\d,]+) ", html, re.S)
    return found.groups()


def attention_kinds(html):
    return re.findall(r'<li class="attention-item [^"]*" data-kind="([^"]+)"', html)


def job_log(event, when, tenant="acme", **fields):
    entry = JobLog.objects.create(
        job_id=fields.pop("job_id", "j"), event=event, tenant_id=tenant, **fields
    )
    JobLog.objects.filter(pk=entry.pk).update(timestamp=when)
    return entry


def task_log(event, when, tenant="acme", **fields):
    fields.setdefault("topic_name", "invoice")
    entry = ExternalTaskLog.objects.create(
        task_id=fields.pop("task_id", "t"), event=event, tenant_id=tenant, **fields
    )
    ExternalTaskLog.objects.filter(pk=entry.pk).update(timestamp=when)
    return entry


# --- tiles ------------------------------------------------------------------------------------


def test_tiles_count_every_status_exactly_below_the_bound(operator_client):
    make_job(retries=0)
    make_job(retries=0)
    make_job(lock_owner="ex-1", lock_expiration_time=ago(minutes=5))
    make_job(due_date=later(hours=1))
    make_task(worker_id="w", lock_expiration_time=later(minutes=1))
    html = operator_client.get("/").content.decode()
    assert tile_number(html, "job-failed") == "2"
    assert tile_number(html, "job-expired") == "1"
    assert tile_number(html, "job-waiting") == "1"
    assert tile_number(html, "job-due") == "0"
    assert tile_number(html, "task-locked") == "1"
    assert "data-estimate" not in html and "≈" not in html


def test_big_states_are_estimates_marked_as_such_on_postgresql(
    operator_client, monkeypatch, is_postgres
):
    monkeypatch.setattr(overview, "EXACT_LIMIT", 3)
    for _ in range(7):
        make_task()
    make_task(retries=0)
    html = operator_client.get("/").content.decode()
    waiting = tile(html, "task-waiting")
    if is_postgres:
        # More rows than the bound: the planner's figure, never below what the bound proved.
        assert "data-estimate" in waiting and "≈" in waiting and "est." in waiting
        assert "not a count" in waiting
        n = int(re.sub(r"[^\d]", "", tile_number(html, "task-waiting")))
        assert n >= 4
    else:
        # SQLite counts exactly: embedded databases are small.
        assert tile_number(html, "task-waiting") == "7"
        assert "data-estimate" not in waiting
    # Small states stay exact either way.
    assert tile_number(html, "task-failed") == "1"
    assert "data-estimate" not in tile(html, "task-failed")


def test_state_counts_partition_the_visible_rows(operator_user):
    from console.resources import JOBS

    make_job(retries=0)
    make_job(suspended=True)
    make_job(exception_message="boom", retries=2)
    make_job()
    make_job(tenant_id="globex", retries=0)
    counts = overview.state_counts(JOBS, operator_user, timezone.now())
    assert all(exact for _, exact in counts.values())
    assert sum(n for n, _ in counts.values()) == 4
    assert counts["failed"] == (1, True) and counts["retrying"] == (1, True)


def test_estimate_labels_round_to_two_significant_digits():
    assert overview.estimate_label(148_313) == "≈ 150,000"
    assert overview.estimate_label(10_001) == "≈ 10,000"
    assert overview.estimate_label(42) == "≈ 42"


# --- change against 24 hours ago --------------------------------------------------------------


def test_tile_change_compares_the_last_day_with_the_day_before_from_the_log(operator_client):
    for hours in (1, 5, 23):
        job_log("failed", ago(hours=hours), retries=0)
    job_log("failed", ago(hours=30), retries=0)
    job_log("failed", ago(hours=50), retries=0)  # older than both days
    job_log("failed", ago(hours=2), retries=2)  # retries left: retrying, not failed
    job_log("failed", ago(hours=2), retries=0, tenant="globex")  # another tenant's
    failed = tile(operator_client.get("/").content.decode(), "job-failed")
    assert "+3 in 24 h" in failed
    assert "▲ 2" in failed and "worse" in failed
    assert "3 in the last 24 h, 1 in the 24 h before" in failed


def test_tile_change_falls_when_fewer_rows_entered(operator_client):
    task_log("locked", ago(hours=3), worker_id="w")
    for hours in (25, 26, 27):
        task_log("locked", ago(hours=hours), worker_id="w")
    locked = tile(operator_client.get("/").content.decode(), "task-locked")
    assert "+1 in 24 h" in locked and "▼ 2" in locked


def test_status_without_a_log_event_says_it_has_no_change(operator_client):
    html = operator_client.get("/").content.decode()
    assert "no 24 h change" in tile(html, "task-expired")
    assert "+0 in 24 h" in tile(html, "task-waiting")


def test_due_and_waiting_entries_follow_the_created_jobs_due_date(operator_user):
    from console.resources import JOBS

    now = timezone.now()
    job_log("created", ago(hours=1))
    job_log("created", ago(hours=1), due_date=later(days=1))
    job_log("due-date-set", ago(hours=2), due_date=later(days=1))
    flows = overview.status_flows(JOBS, operator_user, now)
    assert flows["due"] == (1, 0)
    assert flows["waiting"] == (2, 0)


# --- tenant scoping ---------------------------------------------------------------------------


def test_a_tenant_viewer_sees_only_their_tenants_figures(viewer_client):
    make_job(retries=0, tenant_id="acme")
    make_job(retries=0, tenant_id="globex", handler="globex.secret.handler")
    make_task(worker_id="globex-worker", lock_expiration_time=ago(minutes=30), tenant_id="globex")
    task_log("locked", ago(hours=1), tenant="globex", worker_id="globex-worker")
    task_log("completed", ago(hours=1), tenant="globex", topic_name="globex-topic")
    task_log("failed", ago(hours=1), tenant="globex", retries=0, error_message="globex broke")
    job_log("failed", ago(hours=1), tenant="globex", retries=0, handler="globex.secret.handler")
    html = viewer_client.get("/").content.decode()
    assert tile_number(html, "job-failed") == "1"
    assert tile_number(html, "task-expired") == "0"
    assert "+0 in 24 h" in tile(html, "task-locked")
    assert "+0 in 24 h" in tile(html, "job-failed")
    assert "globex" not in html
    assert attention_kinds(html) == []


def test_numbers_are_cached_per_tenant_set(viewer_client, admin_client):
    make_job(retries=0, tenant_id="globex")
    admin_html = admin_client.get("/").content.decode()
    viewer_html = viewer_client.get("/").content.decode()
    assert tile_number(admin_html, "job-failed") == "1"
    assert tile_number(viewer_html, "job-failed") == "0"


# --- throughput window ------------------------------------------------------------------------


def test_window_parameter_chooses_the_charted_span(operator_client):
    task_log("completed", ago(minutes=10))
    task_log("completed", ago(hours=3))
    task_log("failed", ago(days=3), retries=1)
    job_log("succeeded", ago(days=2), queue_name="mail")
    one = operator_client.get("/?window=1h").content.decode()
    day = operator_client.get("/?window=24h").content.decode()
    week = operator_client.get("/?window=7d").content.decode()
    assert legend(one) == ("1", "0") and "per 5 minutes" in one
    assert legend(day) == ("2", "0") and "per hour" in day
    assert legend(week) == ("3", "1") and "per 6 hours" in week
    # The chosen window is kept in the refresh URL.
    assert 'data-refresh-url="/?window=7d"' in week
    assert 'aria-current="true">7d<' in week


def test_default_window_is_a_day(operator_client):
    html = operator_client.get("/").content.decode()
    assert 'data-refresh-url="/?window=24h"' in html


@pytest.mark.parametrize("bad", ["2d", "24H", "1h ", "0", "\u00e9"])
def test_unknown_window_is_a_clear_400(operator_client, bad):
    response = operator_client.get("/", {"window": bad})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown window" in html and "choose one of 1h, 24h, 7d" in html
    assert "data-status=" not in html


def test_chart_has_labelled_axes_and_values_on_hover(operator_client):
    task_log("completed", ago(minutes=30))
    task_log("failed", ago(minutes=30), retries=1)
    html = operator_client.get("/").content.decode()
    assert "time (UTC)" in html and ">per hour</text>" in html
    assert re.search(r"<title>\d{4}-\d\d-\d\d \d\d:00 UTC: 1 completed, 1 failed</title>", html)


def test_throughput_per_topic_and_queue(operator_client):
    task_log("completed", ago(minutes=5), topic_name="invoice")
    task_log("completed", ago(minutes=5), topic_name="invoice")
    task_log("failed", ago(minutes=5), topic_name="invoice", retries=0)
    task_log("completed", ago(minutes=5), topic_name="ship")
    job_log("failed", ago(minutes=5), queue_name="mail", retries=1)
    html = operator_client.get("/").content.decode()
    table = re.search(r'id="task-throughput-title".*?</table>', html, re.S).group(0)
    rows = re.findall(
        r"<code>([^<]+)</code></a></td>\s*"
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">([\d.]+)</td>',
        table,
    )
    assert rows == [("invoice", "2", "1", "33.3"), ("ship", "1", "0", "0.0")]
    assert "/external-tasks/?topicName=invoice" in table
    jobs = re.search(r'id="job-throughput-title".*?</table>', html, re.S).group(0)
    assert "<code>mail</code>" in jobs


def test_buckets_cover_the_window_and_end_with_now():
    now = timezone.now()
    for window, n in (("1h", 12), ("24h", 24), ("7d", 28)):
        starts = overview.buckets_for(now, window)
        assert len(starts) == n
        step = overview.WINDOWS[window][1]
        assert starts[-1] <= now < starts[-1] + step


# --- needs attention, ranked ------------------------------------------------------------------


def test_attention_is_ranked_stopped_workers_first(operator_client):
    # A worker seen 30 minutes ago that still holds a lock: stopped.
    make_task(worker_id="w-gone", lock_expiration_time=later(minutes=20))
    task_log("locked", ago(minutes=30), worker_id="w-gone")
    # A worker seen a minute ago: alive, not listed.
    make_task(worker_id="w-alive", lock_expiration_time=later(minutes=20))
    task_log("locked", ago(minutes=1), worker_id="w-alive")
    # Expired locks of a handler.
    make_job(lock_owner="ex-9", lock_expiration_time=ago(minutes=3), handler="mail.send")
    make_job(lock_owner="ex-9", lock_expiration_time=ago(minutes=3), handler="mail.send")
    # A new error: first seen today; an old one seen three days ago too.
    job_log(
        "failed", ago(hours=2), retries=2, handler="pdf.render", exception_message="Disk 7 full"
    )
    task_log("failed", ago(hours=2), retries=1, error_message="timeout after 30 s")
    task_log("failed", ago(days=3), retries=1, error_message="timeout after 12 s")
    # A topic whose backlog grows: 3 created, 1 completed.
    for _ in range(3):
        task_log("created", ago(hours=1), topic_name="ship")
    task_log("completed", ago(hours=1), topic_name="ship")
    html = operator_client.get("/").content.decode()
    kinds = attention_kinds(html)
    assert kinds == ["stopped-worker", "expired-locks", "new-error", "growing-backlog"]
    section = re.search(r'id="attention-title".*?</section>', html, re.S).group(0)
    assert "w-gone stopped" in section and "w-alive" not in section
    assert "2 expired locks in handler mail.send" in section
    assert "/jobs/?status=expired&amp;handler=mail.send" in section
    assert "new error in handler pdf.render" in section and "Disk &lt;n&gt; full" in section
    assert "timeout" not in section  # seen before the last day: not new
    assert "topic ship backlog grows" in section and "+2 in 24 h" in section


def test_within_a_rank_the_bigger_item_comes_first(operator_user):
    make_job(lock_owner="a", lock_expiration_time=ago(minutes=1), handler="small")
    for _ in range(3):
        make_job(lock_owner="a", lock_expiration_time=ago(minutes=1), handler="big")
    items = overview.attention(operator_user, timezone.now())
    assert [i["title"] for i in items] == [
        "3 expired locks in handler big",
        "1 expired lock in handler small",
    ]


def test_a_small_growth_on_a_busy_topic_is_not_attention(operator_user):
    for _ in range(20):
        task_log("created", ago(hours=1), topic_name="busy")
    for _ in range(19):
        task_log("completed", ago(hours=1), topic_name="busy")
    assert overview.attention(operator_user, timezone.now()) == []


def test_stopped_executors_are_shown_to_admins_only(admin_client, viewer_client):
    ExecutorHeartbeat.objects.create(worker_id="exec-a", hostname="box1", running=2)
    ExecutorHeartbeat.objects.filter(pk="exec-a").update(last_seen=ago(minutes=30))
    ExecutorHeartbeat.objects.create(worker_id="exec-b")  # seen now: alive
    ExecutorHeartbeat.objects.create(worker_id="exec-c")
    ExecutorHeartbeat.objects.filter(pk="exec-c").update(last_seen=ago(days=3))  # long gone
    admin_html = admin_client.get("/").content.decode()
    assert attention_kinds(admin_html) == ["stopped-executor"]
    assert "executor exec-a stopped" in admin_html and "2 running" in admin_html
    assert "exec-b" not in admin_html and "exec-c" not in admin_html
    assert "exec-a" not in viewer_client.get("/").content.decode()


def test_nothing_needs_attention_is_said(operator_client):
    assert "Nothing needs attention" in operator_client.get("/").content.decode()


# --- self-refresh -----------------------------------------------------------------------------


def test_htmx_refresh_gets_only_the_overview_partial(operator_client):
    make_job(retries=0)
    response = operator_client.get("/?window=1h", headers=HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="overview-body"')
    assert "<nav" not in html and tile_number(html, "job-failed") == "1"
    assert response["Vary"].count("HX-Request") == 1
    full = operator_client.get("/?window=1h").content.decode()
    assert "<nav" in full and 'id="overview-body" data-refresh-every="15"' in full


def test_refresh_interval_is_a_setting(operator_client, settings):
    settings.TASKYARD_CONSOLE = {"OVERVIEW_REFRESH": 3}
    assert 'data-refresh-every="3"' in operator_client.get("/").content.decode()


def test_an_error_seen_before_is_not_new_however_many_times_it_failed(operator_user, monkeypatch):
    # The earlier failures are read as distinct (source, message) pairs, not rows: many
    # repeats of one message must not crowd out another that was also seen before.
    monkeypatch.setattr(overview, "NEW_ERROR_SQL_GROUPS", 2)
    task_log("failed", ago(days=3), retries=1, error_message="disk full")
    for minutes in (1, 2, 3):
        task_log("failed", ago(days=2, minutes=minutes), retries=1, error_message="no route")
    task_log("failed", ago(hours=1), retries=1, error_message="disk full")
    assert overview.attention(operator_user, timezone.now()) == []


def test_an_executor_busy_with_a_long_job_is_not_stopped_while_its_heartbeat_is_fresh(
    operator_user,
):
    make_job(lock_owner="ex-long", lock_expiration_time=later(minutes=50), handler="report")
    job_log("started", ago(minutes=40), worker="ex-long")
    items = overview.attention(operator_user, timezone.now())
    assert [i["title"] for i in items] == ["ex-long stopped"]
    ExecutorHeartbeat.objects.create(worker_id="ex-long")  # reported just now
    assert overview.attention(operator_user, timezone.now()) == []
