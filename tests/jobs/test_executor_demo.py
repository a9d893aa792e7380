"""The demo activity `make run` starts: demo tasks for the executor, demo Camunda workers."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from external_tasks.models import ExternalTask, ExternalTaskLog


@pytest.mark.django_db(transaction=True)
def test_demo_workers_handle_tasks_over_the_camunda_protocol(live_server, worker_user):
    tasks = [
        ExternalTask.objects.create(topic_name="send-invoice", tenant_id="acme", retries=None)
        for _ in range(6)
    ]
    out = StringIO()
    call_command(
        "demo_workers",
        "--url",
        f"{live_server.url}/engine-rest",
        "--username",
        "walter",
        "--password",
        "walter-password",
        "--workers",
        "2",
        "--max-tasks",
        "3",
        "--pace",
        "0",
        "--seed",
        "4",
        stdout=out,
        stderr=out,
    )

    assert "handled 6 external tasks" in out.getvalue()
    outcomes = ExternalTaskLog.objects.filter(
        task_id__in=[task.id for task in tasks], event__in=["completed", "failed", "bpmn-error"]
    )
    assert sorted(outcomes.values_list("task_id", flat=True)) == sorted(t.id for t in tasks)
    assert {entry.worker_id for entry in outcomes} <= {"demo-worker-1", "demo-worker-2"}
    completed = outcomes.filter(event="completed").values_list("task_id", flat=True)
    assert not ExternalTask.objects.filter(id__in=list(completed)).exists()


@pytest.mark.parametrize(
    "args", [["--workers", "0"], ["--pace", "-1"]], ids=["no workers", "negative pace"]
)
def test_demo_workers_refuse_bad_options(args):
    with pytest.raises(CommandError):
        call_command("demo_workers", *args)
