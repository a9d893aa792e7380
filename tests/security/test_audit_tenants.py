"""The audit trail from four points of view: a viewer of acme, a viewer of globex, an operator
of both, an admin. An entry is shown only to users who belong to every tenant whose rows it
touched (rows without a tenant are everyone's); admins see all. The /audit/ page, its `target`
filter, its list of actions and the detail pages' audit sections all keep to that."""

import base64
import importlib
import io

import pytest
from django.apps import apps as global_apps
from django.core.management import call_command
from django.test import Client

from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition
from project.models import AuditEntry, AuditTenant
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(db):
    return {
        "acme": make_user("carol", "viewer", ["acme"]),
        "globex": make_user("gina", "viewer", ["globex"]),
        "nobody": make_user("nora", "viewer", []),
        "both": make_user("oscar", "operator", ["acme", "globex"]),
        "acme-operator": make_user("bob", "operator", ["acme"]),
        "admin": make_user("alice", "admin"),
    }


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(user) -> Client:
    token = base64.b64encode(f"{user.username}:{user.username}-password".encode()).decode()
    return Client(headers={"authorization": f"Basic {token}"})


@pytest.fixture
def rows(db):
    """A failed job and a failed external task per tenant (acme, globex, none)."""
    made = {}
    for tenant in ("acme", "globex", None):
        key = tenant or "shared"
        made[f"job-{key}"] = Job.objects.create(
            handler="billing.tasks.charge",
            tenant_id=tenant,
            retries=0,
            process_definition_key=f"orders-{key}",
        )
        made[f"task-{key}"] = ExternalTask.objects.create(
            topic_name="invoice", tenant_id=tenant, retries=0
        )
    return made


def console_act(user, kind, **post):
    post.setdefault("confirmed", "1")
    response = browser(user).post(f"/{kind}/actions/", post, follow=True)
    assert response.status_code == 200
    return response


def audit_page(user, query="") -> str:
    response = browser(user).get(f"/audit/{query}")
    assert response.status_code == 200
    return response.content.decode()


def shows(html: str, entry: AuditEntry) -> bool:
    # Every entry row names its action and its first ids or its filter; the id is unique.
    return f"<code>{entry.action}</code>" in html


def visible_to(user) -> set[str]:
    """The actions of the /audit/ rows the user sees (each test makes distinct actions)."""
    html = audit_page(user)
    return {e.action for e in AuditEntry.objects.all() if shows(html, e)}


# ---------------------------------------------------------------------------------------------
# What an entry records


def test_an_action_on_one_row_records_that_rows_tenant(people, rows):
    console_act(people["both"], "jobs", action="suspend", ids=[rows["job-globex"].pk], scope="ids")
    entry = AuditEntry.objects.get(action="job.suspend")
    assert list(entry.tenants.values_list("tenant_id", flat=True)) == ["globex"]
    assert not entry.admin_only


def test_a_bulk_action_by_query_records_every_tenant_it_reached_and_no_tenant_explicitly(
    people, rows
):
    console_act(
        people["both"], "jobs", action="set_retries", retries="2", scope="matching", query=""
    )
    entry = AuditEntry.objects.get(action="job.set_retries")
    assert entry.count == 3
    assert set(entry.tenants.values_list("tenant_id", flat=True)) == {"acme", "globex", None}


def test_an_action_that_reached_no_row_belongs_to_the_actors_tenants(people, rows):
    # (On all matching rows, no match starts no batch and writes nothing: the selected ids
    # were there when the page showed them.)
    console_act(
        people["acme-operator"],
        "external-tasks",
        action="set_priority",
        priority="5",
        scope="ids",
        ids=["gone-meanwhile"],
    )
    entry = AuditEntry.objects.get(action="external_task.set_priority")
    assert entry.count == 0
    assert list(entry.tenants.values_list("tenant_id", flat=True)) == ["acme"]
    assert "external_task.set_priority" in visible_to(people["acme"])
    assert "external_task.set_priority" not in visible_to(people["globex"])


def test_an_admins_action_that_reached_no_row_is_for_admins_only(people, rows):
    console_act(
        people["admin"],
        "jobs",
        action="delete",
        scope="ids",
        ids=["gone-meanwhile"],
    )
    entry = AuditEntry.objects.get(action="job.delete")
    assert entry.admin_only
    for viewer in ("acme", "globex", "nobody"):
        assert "job.delete" not in visible_to(people[viewer])
    assert "job.delete" in visible_to(people["admin"])


def test_a_filter_naming_another_tenant_hides_the_entry_even_if_it_reached_none_of_its_rows(
    people, rows
):
    # globex has no job of this process definition: the action reaches acme's only, but the
    # filter shown on the entry names globex.
    console_act(
        people["both"],
        "jobs",
        action="set_priority",
        priority="9",
        scope="matching",
        query="processDefinitionKey=orders-acme&tenantIdIn=acme,globex",
    )
    entry = AuditEntry.objects.get(action="job.set_priority")
    assert entry.count == 1
    assert set(entry.tenants.values_list("tenant_id", flat=True)) == {"acme", "globex"}
    assert "job.set_priority" not in visible_to(people["acme"])


# ---------------------------------------------------------------------------------------------
# /audit/ from each point of view


@pytest.fixture
def history(people, rows):
    """The operator of both tenants acts on globex alone, on acme alone, on both at once and on
    a shared row; a REST call touches a globex task."""
    both = people["both"]
    console_act(both, "jobs", action="suspend", ids=[rows["job-globex"].pk], scope="ids")
    console_act(both, "jobs", action="unlock", ids=[rows["job-acme"].pk], scope="ids")
    console_act(
        both,
        "external-tasks",
        action="set_retries",
        retries="1",
        scope="ids",
        ids=[rows["task-acme"].pk, rows["task-globex"].pk],
    )
    console_act(both, "external-tasks", action="suspend", ids=[rows["task-shared"].pk], scope="ids")
    response = api(both).put(
        f"/engine-rest/external-task/{rows['task-globex'].pk}/priority",
        {"priority": 7},
        content_type="application/json",
    )
    assert response.status_code == 204
    return {e.action: e for e in AuditEntry.objects.all()}


def test_each_viewer_sees_only_entries_whose_every_tenant_is_theirs(people, history):
    assert set(history) == {
        "job.suspend",
        "job.unlock",
        "external_task.set_retries",
        "external_task.suspend",
        "external_task.set_priority",
    }
    assert visible_to(people["acme"]) == {"job.unlock", "external_task.suspend"}
    assert visible_to(people["globex"]) == {
        "job.suspend",
        "external_task.suspend",
        "external_task.set_priority",
    }
    # Rows without a tenant are everyone's: a user of no tenant sees what touched only those.
    assert visible_to(people["nobody"]) == {"external_task.suspend"}
    assert visible_to(people["both"]) == set(history)
    assert visible_to(people["admin"]) == set(history)


def test_the_target_filter_finds_nothing_of_another_tenant(people, rows, history):
    globex_task = rows["task-globex"].pk
    html = audit_page(people["acme"], f"?target={globex_task}")
    assert "No audit entries match this filter" in html
    assert "<code>external_task." not in html
    html = audit_page(people["globex"], f"?target={globex_task}")
    assert "<code>external_task.set_priority</code>" in html
    assert "<code>external_task.set_retries</code>" not in html  # it touched acme too
    html = audit_page(people["both"], f"?target={globex_task}")
    assert "<code>external_task.set_retries</code>" in html


def test_a_substring_of_another_tenants_id_matches_nothing(people, rows, history):
    prefix = rows["job-globex"].pk[:8]
    html = audit_page(people["acme"], f"?target={prefix}")
    assert "No audit entries match this filter" in html
    assert "<code>job.suspend</code>" in audit_page(people["globex"], f"?target={prefix}")


def test_the_action_list_names_only_visible_entries(people, history):
    html = audit_page(people["acme"])
    assert 'value="job.suspend"' not in html
    assert 'value="external_task.set_priority"' not in html
    assert 'value="job.unlock"' in html
    assert 'value="job.suspend"' in audit_page(people["globex"])


def test_an_action_filter_on_a_hidden_action_is_empty(people, history):
    html = audit_page(people["acme"], "?action=job.suspend")
    assert "No audit entries match this filter" in html


# ---------------------------------------------------------------------------------------------
# Detail pages


def test_a_rows_detail_page_hides_entries_that_also_touched_another_tenant(people, rows, history):
    url = f"/external-tasks/{rows['task-acme'].pk}/"
    acme_html = browser(people["acme"]).get(url).content.decode()
    both_html = browser(people["both"]).get(url).content.decode()
    # The bulk set_retries touched acme's and globex's task: the acme viewer does not learn of
    # it (nor of the globex id it names), the operator of both does.
    assert "external_task.set_retries" in both_html
    assert "external_task.set_retries" not in acme_html


def test_a_shared_rows_detail_page_shows_its_entries_to_every_viewer(people, rows, history):
    url = f"/external-tasks/{rows['task-shared'].pk}/"
    for viewer in ("acme", "globex", "nobody"):
        html = browser(people[viewer]).get(url).content.decode()
        assert "external_task.suspend" in html


def test_a_job_detail_page_of_globex_shows_its_audit_to_globex(people, rows, history):
    url = f"/jobs/{rows['job-globex'].pk}/"
    assert "job.suspend" in browser(people["globex"]).get(url).content.decode()
    assert browser(people["acme"]).get(url).status_code == 404


# ---------------------------------------------------------------------------------------------
# REST actions record their tenants too


def test_rest_actions_on_jobs_and_job_definitions_record_their_tenants(people, rows):
    definition = JobDefinition.objects.create(tenant_id="globex", activity_id="charge")
    both = api(people["both"])
    response = both.put(
        f"/engine-rest/job-definition/{definition.pk}/suspended",
        {"suspended": True},
        content_type="application/json",
    )
    assert response.status_code == 204
    response = both.put(
        f"/engine-rest/job/{rows['job-acme'].pk}/retries",
        {"retries": 3},
        content_type="application/json",
    )
    assert response.status_code == 204
    tenants = {
        entry.action: set(entry.tenants.values_list("tenant_id", flat=True))
        for entry in AuditEntry.objects.all()
    }
    assert tenants == {"job_definition.suspend": {"globex"}, "job.set_retries": {"acme"}}
    assert visible_to(people["acme"]) == {"job.set_retries"}
    assert visible_to(people["globex"]) == {"job_definition.suspend"}


# ---------------------------------------------------------------------------------------------
# Entries written before tenants were recorded


def test_migrated_entries_of_unknown_tenants_are_for_admins_only(people):
    old = AuditEntry.objects.create(username="bob", action="job.delete", target_type="job")
    assert not old.tenants.exists()
    migration = importlib.import_module("project.migrations.0003_audit_tenants")
    migration.hide_entries_of_unknown_tenants(global_apps, None)
    assert AuditEntry.objects.get(pk=old.pk).admin_only
    for viewer in ("acme", "globex", "nobody", "both"):
        assert "job.delete" not in visible_to(people[viewer])
    assert "job.delete" in visible_to(people["admin"])


def test_pruning_the_history_is_for_admins_only(people):
    AuditEntry.objects.create(username="x", action="old.thing", target_type="job")
    AuditEntry.objects.filter(action="old.thing").update(timestamp="2000-01-01T00:00:00Z")
    call_command("prune_history", "--audit-days", "30", stdout=io.StringIO())
    entry = AuditEntry.objects.get(action="history.prune")
    assert entry.admin_only and entry.count == 1
    assert not AuditTenant.objects.filter(entry=entry).exists()
    assert "history.prune" not in visible_to(people["both"])
    assert "history.prune" in visible_to(people["admin"])
