"""The console shows a row's incident (since when, message, annotation) on its detail page,
lets operators annotate it (audited) and lets the failures view filter by annotation text."""

import pytest

from console.templatetags.console import exact_time
from external_tasks import services as task_services
from jobs import services as job_services
from project.models import AuditEntry, Incident
from tests.conftest import make_user
from tests.console.conftest import make_job, make_task, run_batches

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return make_user("root", "admin")


def failed_job(root, message="vendor 503 for order 1", **fields):
    job = make_job(retries=1, exception_message=message, **fields)
    job_services.set_retries(root, [job.id], 0)
    return job


def failed_task(root, message="vendor 503 for order 1", **fields):
    task = make_task(retries=1, error_message=message, **fields)
    task_services.set_retries(root, task.id, 0)
    return task


KINDS = {"job": ("/jobs/", failed_job), "task": ("/external-tasks/", failed_task)}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_failed_rows_page_shows_its_incident_since_when(viewer_client, root, kind):
    prefix, make = KINDS[kind]
    row = make(root)
    incident = Incident.objects.get(configuration=row.id)
    html = viewer_client.get(f"{prefix}{row.id}/").content.decode()
    assert 'id="incident"' in html and "Open" in html
    assert incident.incident_type in html and incident.id in html
    assert exact_time(incident.incident_timestamp) in html  # the exact time beside "since"
    assert "vendor 503 for order 1" in html
    assert 'name="annotation"' not in html  # viewers read, operators edit


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_operator_annotates_the_incident_from_the_page_and_it_is_audited(
    operator_client, root, kind
):
    prefix, make = KINDS[kind]
    row = make(root)
    page = f"{prefix}{row.id}/"
    assert 'name="annotation"' in operator_client.get(page).content.decode()
    response = operator_client.post(
        f"{page}incident/annotation/", {"annotation": "waiting for vendor"}, follow=True
    )
    html = response.content.decode()
    assert "Incident annotation saved." in html
    assert '<dd id="incident-annotation">waiting for vendor</dd>' in html
    entry = AuditEntry.objects.get(action="incident.set_annotation")
    assert entry.source == "console" and entry.username == "bob"
    assert entry.after == {"annotation": "waiting for vendor"}

    operator_client.post(f"{page}incident/annotation/", {"annotation": ""})
    assert Incident.objects.get(configuration=row.id).annotation is None
    assert AuditEntry.objects.filter(action="incident.clear_annotation").count() == 1


def test_a_resolved_incident_stays_on_the_page_without_the_form(operator_client, root):
    job = failed_job(root)
    job_services.set_retries(root, [job.id], 3)
    html = operator_client.get(f"/jobs/{job.id}/").content.decode()
    assert 'id="incident"' in html and "Resolved" in html
    assert 'name="annotation"' not in html
    response = operator_client.post(f"/jobs/{job.id}/incident/annotation/", {"annotation": "x"})
    assert response.status_code == 302
    assert Incident.objects.get().annotation is None


def test_a_row_that_never_failed_has_no_incident_section(viewer_client):
    job = make_job()
    assert 'id="incident"' not in viewer_client.get(f"/jobs/{job.id}/").content.decode()


def test_viewers_and_other_tenants_cannot_annotate(viewer_client, operator_client, root):
    job = failed_job(root)
    assert (
        viewer_client.post(f"/jobs/{job.id}/incident/annotation/", {"annotation": "x"}).status_code
        == 403
    )
    globex = failed_job(root, tenant_id="globex")
    operator_client.post(f"/jobs/{globex.id}/incident/annotation/", {"annotation": "x"})
    assert set(Incident.objects.values_list("annotation", flat=True)) == {None}


def test_the_failures_view_filters_by_annotation_text_and_fixes_only_that_part(
    operator_client, root
):
    annotated = failed_job(root, "vendor 503 for order 1")
    other = failed_job(root, "vendor 503 for order 2")
    task = failed_task(root, "vendor 503 for order 3")
    Incident.objects.filter(configuration__in=[annotated.id, task.id]).update(
        annotation="Waiting for the VENDOR fix"
    )

    counts = [g["count"] for g in operator_client.get("/failures/").context["groups"]]
    assert sorted(counts) == [1, 2]  # both jobs in one group, unfiltered
    response = operator_client.get("/failures/", {"annotation": "vendor fix"})
    html = response.content.decode()
    # The annotated job, the annotated task.
    assert [g["count"] for g in response.context["groups"]] == [1, 1]
    assert 'name="annotation" value="vendor fix"' in html
    html = operator_client.get("/failures/", {"annotation": "nobody wrote this"}).content
    assert "with an incident annotated “nobody wrote this”" in html.decode()

    groups = operator_client.get("/failures/", {"annotation": "vendor fix", "kind": "job"})
    group = groups.context["groups"][0]
    assert "incidentAnnotation=vendor+fix" in group["query"]
    operator_client.post(
        "/jobs/actions/",
        {
            "scope": "matching",
            "query": group["query"],
            "action": "set_retries",
            "retries": "2",
            "confirmed": "1",
        },
    )
    run_batches()
    annotated.refresh_from_db()
    other.refresh_from_db()
    assert (annotated.retries, other.retries) == (2, 0)
    assert Incident.objects.get(configuration=annotated.id).state == "resolved"
    assert Incident.objects.get(configuration=other.id).state == "open"
