"""Console actions on external tasks: every action × scope × role, confirmation, audit."""

import pytest
from django.test import Client

from external_tasks.models import ExternalTask, ExternalTaskLog
from project.models import AuditEntry, Batch
from tests.console.conftest import HTMX, later, make_task, run_batches

pytestmark = pytest.mark.django_db

URL = "/external-tasks/actions/"


def act(client, headers=None, follow=True, **data):
    data.setdefault("confirmed", "1")
    return client.post(URL, data, headers=headers or {}, follow=follow)


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


ACTIONS = [
    ("set_retries", {"retries": "4"}, {"retries": 4}),
    ("suspend", {}, {"suspended": True}),
    ("set_priority", {"priority": "77"}, {"priority": 77}),
    ("unlock", {}, {"worker_id": None, "lock_expiration_time": None}),
]


def _locked_failed(**fields):
    return make_task(retries=0, worker_id="w1", lock_expiration_time=later(minutes=5), **fields)


@pytest.mark.parametrize("action,data,expected", ACTIONS)
@pytest.mark.parametrize("scope", ["one", "selected", "matching"])
def test_operator_acts_on_one_selected_or_all_matching_tasks(
    operator_client, action, data, expected, scope
):
    targets = [_locked_failed(topic_name="invoice") for _ in range(2 if scope != "one" else 1)]
    bystander = _locked_failed(topic_name="shipping")
    if scope == "matching":
        post = {"scope": "matching", "query": "topicName=invoice&noRetriesLeft=true"}
    else:
        post = {"scope": "ids", "ids": [t.pk for t in targets]}
    response = act(operator_client, action=action, **post, **data)
    assert response.status_code == 200
    if scope == "matching":
        batch = Batch.objects.get()
        assert response.redirect_chain[-1][0] == f"/batches/{batch.pk}/"
        assert (batch.target_type, batch.total_rows) == ("external_task", len(targets))
        assert batch.description == "Topic name: invoice; No retries left"
        assert batch.filter == {"topicName": "invoice", "noRetriesLeft": "true"}
        run_batches()
    for task in targets:
        task.refresh_from_db()
        for field, value in expected.items():
            assert getattr(task, field) == value, (field, scope)
    bystander.refresh_from_db()
    assert bystander.retries == 0 and bystander.worker_id == "w1" and not bystander.suspended
    text = messages_of(response)[0]
    assert f"on {len(targets)} external task" in text
    entry = AuditEntry.objects.get()
    assert entry.action == f"external_task.{action}"
    assert entry.source == "console" and entry.count == len(targets)
    assert sorted(entry.target_ids) == sorted(t.pk for t in targets)
    if scope == "matching":
        assert entry.filter == {"topicName": "invoice", "noRetriesLeft": "true"}
    assert ExternalTaskLog.objects.filter(task_id=targets[0].pk).exists()


def test_result_message_says_what_happened_with_thousands_and_skips(operator_client):
    tasks = [make_task(retries=0) for _ in range(3)]
    response = act(
        operator_client,
        action="set_retries",
        retries="3",
        scope="ids",
        ids=[t.pk for t in tasks] + ["gone-1"],
    )
    assert messages_of(response) == [
        "Retries set to 3 on 3 external tasks (1 skipped: changed meanwhile or already in "
        "that state)."
    ]


def test_activate_skips_tasks_that_are_already_active(operator_client):
    suspended = make_task(suspended=True)
    active = make_task()
    response = act(operator_client, action="activate", scope="ids", ids=[suspended.pk, active.pk])
    suspended.refresh_from_db()
    assert not suspended.suspended
    assert "Activated on 1 external task (1 skipped" in messages_of(response)[0]


def test_admin_deletes_and_operator_may_not(admin_client, operator_client):
    task = make_task()
    assert act(operator_client, action="delete", scope="ids", ids=[task.pk]).status_code == 403
    assert ExternalTask.objects.filter(pk=task.pk).exists()
    response = act(admin_client, action="delete", scope="ids", ids=[task.pk])
    assert not ExternalTask.objects.filter(pk=task.pk).exists()
    assert "Deleted on 1 external task" in messages_of(response)[0]
    assert AuditEntry.objects.get().action == "external_task.delete"


@pytest.mark.parametrize("action", ["set_retries", "suspend", "activate", "unlock", "delete"])
def test_viewer_action_posts_are_forbidden(viewer_client, action):
    task = make_task(retries=0)
    response = act(viewer_client, action=action, retries="3", scope="ids", ids=[task.pk])
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.retries == 0 and not AuditEntry.objects.exists()


def test_operator_cannot_touch_another_tenants_task(operator_client):
    foreign = make_task(tenant_id="globex", retries=0)
    response = act(
        operator_client, action="set_retries", retries="2", scope="ids", ids=[foreign.pk]
    )
    foreign.refresh_from_db()
    assert foreign.retries == 0
    assert "on 0 external tasks (1 skipped" in messages_of(response)[0]


def test_confirmation_shows_exact_count_and_filter_in_words(operator_client):
    for _ in range(3):
        make_task(topic_name="invoice", retries=0)
    make_task(topic_name="invoice")
    response = operator_client.post(
        URL,
        {
            "action": "set_retries",
            "scope": "matching",
            "query": "topicName=invoice&noRetriesLeft=true",
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Set retries on <span" in html and "3 external tasks" in html
    assert "Topic name: invoice; No retries left" in html
    assert 'name="confirmed" value="1"' in html and 'name="expected" value="3"' in html
    assert "<html" in html  # without JavaScript it is a full page
    assert ExternalTask.objects.filter(retries=0).count() == 3  # nothing changed yet
    partial = operator_client.post(
        URL, {"action": "suspend", "scope": "matching", "query": "topicName=invoice"}, headers=HTMX
    ).content.decode()
    assert partial.lstrip().startswith('<dialog class="confirm"') and "4 external tasks" in partial


def test_all_matching_applies_to_what_matched_at_confirmation_time(operator_client):
    from datetime import timedelta

    from django.utils import timezone

    old = make_task(retries=0)
    confirmed_at = timezone.now()
    newer = make_task(retries=0, create_time=confirmed_at + timedelta(seconds=5))
    response = act(
        operator_client,
        action="set_retries",
        retries="1",
        scope="matching",
        query="noRetriesLeft=true",
        as_of=confirmed_at.isoformat(),
        expected="2",
    )
    assert messages_of(response) == [
        "Batch started: set retries to 1 on 1 external task (1 stopped matching since you "
        "confirmed)."
    ]
    run_batches()
    old.refresh_from_db()
    newer.refresh_from_db()
    assert old.retries == 1 and newer.retries == 0


def test_reason_is_kept_in_the_audit_entry(operator_client):
    task = make_task()
    act(operator_client, action="suspend", scope="ids", ids=[task.pk], reason="ticket OPS-12")
    assert AuditEntry.objects.get().after["reason"] == "ticket OPS-12"


def test_bad_input_reshows_the_confirmation_with_an_error(operator_client):
    task = make_task(retries=0)
    response = act(
        operator_client,
        follow=False,
        action="set_retries",
        retries="-1",
        scope="ids",
        ids=[task.pk],
    )
    assert response.status_code == 400
    assert "Retries must be a whole number" in response.content.decode()
    task.refresh_from_db()
    assert task.retries == 0


def test_invalid_filter_does_not_act(operator_client):
    task = make_task(retries=0)
    response = act(
        operator_client,
        action="set_retries",
        retries="3",
        scope="matching",
        query="noRetriesLeft=maybe",
    )
    task.refresh_from_db()
    assert task.retries == 0
    assert "The filter is invalid" in messages_of(response)[0]


def test_no_selection_is_a_friendly_warning(operator_client):
    response = act(operator_client, action="suspend", scope="ids")
    assert "Select at least one external task first." in messages_of(response)


def test_htmx_confirmed_action_redirects_the_browser_back_to_the_table(operator_client):
    task = make_task()
    response = act(
        operator_client,
        headers=HTMX,
        follow=False,
        action="suspend",
        scope="ids",
        ids=[task.pk],
        next="/external-tasks/?topicName=invoice",
    )
    assert response["HX-Redirect"] == "/external-tasks/?topicName=invoice"


def test_next_url_must_stay_on_this_site(operator_client):
    task = make_task()
    response = act(
        operator_client,
        follow=False,
        action="suspend",
        scope="ids",
        ids=[task.pk],
        next="https://evil.example/",
    )
    assert response["Location"] == "/external-tasks/"


def test_actions_need_the_csrf_token(operator_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user)
    task = make_task()
    response = client.post(
        URL, {"action": "suspend", "scope": "ids", "ids": [task.pk], "confirmed": "1"}
    )
    assert response.status_code == 403
    task.refresh_from_db()
    assert not task.suspended


def _user(client):
    from django.contrib.auth import get_user_model

    session_user = client.session["_auth_user_id"]
    return get_user_model().objects.get(pk=session_user)


def test_admin_acts_on_every_tenants_tasks(admin_client):
    tasks = [make_task(tenant_id=t, retries=0) for t in ("acme", "globex", None)]
    response = act(
        admin_client,
        action="set_retries",
        retries="1",
        scope="matching",
        query="noRetriesLeft=true",
    )
    assert messages_of(response) == ["Batch started: set retries to 1 on 3 external tasks."]
    run_batches()
    assert all(ExternalTask.objects.get(pk=t.pk).retries == 1 for t in tasks)
