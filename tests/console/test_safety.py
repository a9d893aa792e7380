"""Safety first: a list acts only on what its filter says, in words taken from the query that
runs; failure groups open and act on exactly their rows, behind the same confirmation."""

import re

import pytest

from console.failures import failure_groups
from jobs.models import Job
from project.models import AuditEntry
from tests.conftest import make_user

from .conftest import HTMX, make_job, make_task, run_batches

pytestmark = pytest.mark.django_db


def row_ids(response):
    return re.findall(r'<tr data-href="[^"]+" data-id="([^"]+)"', response.content.decode())


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def root(db):
    return make_user("root", "admin")


# ---------------------------------------------------------------------------------------------
# Unknown and repeated parameters.


def test_a_misspelled_filter_is_an_error_naming_it_and_shows_no_rows(operator_client):
    make_job(retries=0, process_definition_key="invoice")
    make_job(retries=0, process_definition_key="shipping")
    response = operator_client.get("/jobs/?status=failed&processDefinitonKey=invoice")
    html = response.content.decode()
    assert response.status_code == 200
    assert row_ids(response) == []  # not the table of every failed job
    assert "Unknown filter &#x27;processDefinitonKey&#x27;" in html
    assert "did you mean &#x27;processDefinitionKey&#x27;?" in html
    # One click repairs it: the value moves to the filter meant.
    assert 'href="/jobs/?status=failed&amp;processDefinitionKey=invoice"' in html
    assert 'href="/jobs/?status=failed"' in html  # or drop it
    # The chips show only what the query runs: never the ignored parameter.
    assert "Process definiton" not in html and "invoice</li>" not in html
    assert "Status: Failed" in html
    assert "data-bulk" not in html  # no bulk bar to act on "all matching"


def test_the_suggested_link_gives_the_filtered_table(operator_client):
    wanted = make_job(retries=0, process_definition_key="invoice")
    make_job(retries=0, process_definition_key="shipping")
    response = operator_client.get("/jobs/?status=failed&processDefinitionKey=invoice")
    assert row_ids(response) == [wanted.pk]
    assert "Unknown filter" not in response.content.decode()


def test_a_wrong_case_parameter_is_suggested_and_a_stranger_one_is_only_named(operator_client):
    html = operator_client.get("/external-tasks/?topicname=x&zzz=1").content.decode()
    assert "Unknown filter &#x27;topicname&#x27;: did you mean &#x27;topicName&#x27;?" in html
    assert "Unknown filter &#x27;zzz&#x27;: no such filter here." in html


def test_console_keys_and_every_filterset_parameter_are_allowed(operator_client):
    make_job()
    response = operator_client.get(
        "/jobs/",
        {
            "q": "charge",
            "status": "due",
            "sort": "-created",
            "page": "1",
            "size": "25",
            "withRetriesLeft": "true",
            "priorityHigherThanOrEquals": "0",
        },
    )
    assert "Unknown filter" not in response.content.decode()
    assert len(row_ids(response)) == 1


def test_a_single_value_parameter_given_twice_is_an_error(operator_client):
    make_job(process_definition_key="a")
    make_job(process_definition_key="b")
    response = operator_client.get("/jobs/?processDefinitionKey=a&processDefinitionKey=b")
    html = response.content.decode()
    assert row_ids(response) == []
    assert "&#x27;processDefinitionKey&#x27; is given 2 times" in html
    # List parameters take repeated keys.
    response = operator_client.get("/jobs/?jobIds=x&jobIds=y")
    assert "given 2 times" not in response.content.decode()


def test_a_repeated_sort_is_an_error_not_a_crash(operator_client):
    response = operator_client.get("/jobs/?sort=id&sort=-created")
    assert response.status_code == 200
    assert "&#x27;sort&#x27; is given 2 times" in response.content.decode()


def test_an_unknown_status_suggests_the_close_one(operator_client):
    html = operator_client.get("/jobs/?status=faild").content.decode()
    assert "Unknown status &#x27;faild&#x27;" in html and "Did you mean &#x27;failed&#x27;?" in html


@pytest.mark.parametrize("confirmed", ["", "1"])
def test_all_matching_with_an_unknown_parameter_cannot_be_confirmed(operator_client, confirmed):
    jobs = [make_job(retries=0, process_definition_key=k) for k in ("invoice", "shipping")]
    response = operator_client.post(
        "/jobs/actions/",
        {
            "action": "suspend",
            "scope": "matching",
            "query": "status=failed&processDefinitonKey=invoice",
            "confirmed": confirmed,
        },
        follow=True,
    )
    text = messages_of(response)[0]
    assert "The filter is invalid, so nothing was done." in text
    assert "Unknown filter 'processDefinitonKey'" in text
    assert not Job.objects.filter(pk__in=[j.pk for j in jobs], suspended=True).exists()
    assert not AuditEntry.objects.exists()


def test_export_refuses_an_unknown_parameter_but_reads_format(operator_client):
    make_job()
    assert operator_client.get("/jobs/export/?format=json").status_code == 200
    response = operator_client.get("/jobs/export/?format=json&handlr=x")
    assert response.status_code == 400
    assert "Unknown filter 'handlr'" in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Words from the query that runs.


def test_confirmation_words_come_from_the_cleaned_filter(operator_client):
    make_job(retries=0, tenant_id="acme", priority=0)
    response = operator_client.post(
        "/jobs/actions/",
        {
            "action": "suspend",
            "scope": "matching",
            # false is Camunda's default (no filter); the include flag only widens tenantIdIn.
            "query": "withException=false&includeJobsWithoutTenantId=true"
            "&priorityLowerThanOrEquals=0&status=failed",
        },
        headers=HTMX,
    )
    words = response.context["words"]
    assert words == "Priority lower than or equals: 0; Status: Failed"
    assert "With exception" not in response.content.decode()
    assert response.context["count"] == 1


def test_chips_say_what_runs_and_what_is_ignored(operator_client):
    make_job()
    html = operator_client.get(
        "/jobs/?includeJobsWithoutTenantId=true&withException=false&dueDates=gt_2020-01-01"
    ).content.decode()
    chips = re.search(r'<ul class="chips".*?</ul>', html, re.S).group(0)
    assert "Due dates: after 2020-01-01T00:00:00.000+0000" in chips
    assert "Include jobs" not in chips and "With exception" not in chips
    assert "Include jobs without tenant ID is ignored: it only widens" in html


def test_the_audit_filter_is_the_cleaned_query(operator_client):
    job = make_job(retries=0, process_definition_key="invoice")
    operator_client.post(
        "/jobs/actions/",
        {
            "action": "suspend",
            "scope": "matching",
            "query": "processDefinitionKey=invoice&withException=false&noRetriesLeft=true",
            "confirmed": "1",
        },
    )
    run_batches()  # an all-matching action is a batch
    job.refresh_from_db()
    assert job.suspended
    entry = AuditEntry.objects.get()
    assert entry.filter == {"processDefinitionKey": "invoice", "noRetriesLeft": "true"}


# ---------------------------------------------------------------------------------------------
# Values in our words.


@pytest.mark.parametrize(
    "url, words",
    [
        (
            "/jobs/?priorityHigherThanOrEquals=abc",
            "Priority higher than or equals must be a whole number, not &#x27;abc&#x27;.",
        ),
        (
            "/jobs/?priorityHigherThanOrEquals=99999999999999999999",
            "Priority higher than or equals is out of range",
        ),
        (
            "/jobs/?timers=true&messages=true",
            "&#x27;Timers&#x27; and &#x27;Messages&#x27; cannot be used together: choose one.",
        ),
        (
            "/external-tasks/?lockExpirationBefore=2024-13-01",
            "Lock expiration before must be a date and time such as",
        ),
        ("/external-tasks/?processVariables=nope", "Process variables: variable query parameter"),
    ],
)
def test_invalid_values_are_said_in_the_consoles_words(operator_client, url, words):
    response = operator_client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert words in html
    assert "java type" not in html and "Cannot set query parameter" not in html


def test_the_camunda_face_keeps_camundas_wording(operator_client):
    response = operator_client.get("/engine-rest/job?priorityHigherThanOrEquals=abc")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "InvalidRequestException"
    assert "Cannot convert value abc to java type long" in body["message"]


# ---------------------------------------------------------------------------------------------
# Failure groups: the link and the actions select exactly the group.


def _group(user, kind, text):
    return next(g for g in failure_groups(user, kind) if text in g["fingerprint"])


def test_a_groups_link_lists_exactly_its_rows(operator_client, operator_user):
    a = make_job(retries=0, handler="geo.lookup", exception_message="address 1 not found")
    b = make_job(retries=0, handler="geo.lookup", exception_message="address 22 not found")
    make_job(retries=0, handler="geo.lookup", exception_message="timeout after 5s")
    make_job(retries=0, handler="geo.other", exception_message="address 3 not found")
    make_job(retries=2, handler="geo.lookup", exception_message="address 4 not found")
    group = _group(operator_user, "job", "address")
    assert group["count"] == 2
    html = operator_client.get("/failures/?kind=job").content.decode()
    assert f'href="/jobs/?{group["query"].replace("&", "&amp;")}"' in html
    response = operator_client.get("/jobs/?" + group["query"])
    assert sorted(row_ids(response)) == sorted([a.pk, b.pk])
    assert response.context["table"].count == group["count"]
    chips = response.context["table"].filter_words()
    assert chips == "Status: Failed; Handler: geo.lookup; Failure group: address <n> not found"


def test_a_task_groups_link_lists_exactly_its_rows(operator_client, operator_user):
    a = make_task(retries=0, topic_name="geo", error_message="address 1 not found")
    make_task(retries=0, topic_name="geo", error_message="timeout")
    make_task(retries=0, topic_name="mail", error_message="address 2 not found")
    group = _group(operator_user, "task", "address")
    response = operator_client.get("/external-tasks/?" + group["query"])
    assert row_ids(response) == [a.pk]


def test_a_group_action_asks_first_with_count_words_and_reason(operator_client, operator_user):
    a = make_task(retries=0, topic_name="geo", error_message="address 1 not found")
    b = make_task(retries=0, topic_name="geo", error_message="address 2 not found")
    other = make_task(retries=0, topic_name="geo", error_message="timeout")
    group = _group(operator_user, "task", "address")
    post = {
        "action": "set_retries",
        "scope": "matching",
        "query": group["query"],
        "next": "/failures/",
    }
    response = operator_client.post("/external-tasks/actions/", post, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'Set retries on <span class="count" data-confirm-count>2 external tasks</span>' in html
    assert "Topic name: geo; Failure group: address &lt;n&gt; not found" in html
    assert 'name="reason"' in html
    for task in (a, b, other):
        task.refresh_from_db()
        assert task.retries == 0  # nothing happens on the first click

    response = operator_client.post(
        "/external-tasks/actions/",
        {**post, "confirmed": "1", "retries": "2", "reason": "geo API fixed", "expected": "2"},
        follow=True,
    )
    # The group's rows are a batch: the confirmation leads to it, the batch queue runs it.
    assert "set retries to 2 on 2 external tasks" in messages_of(response)[0]
    run_batches()
    for task in (a, b, other):
        task.refresh_from_db()
    assert (a.retries, b.retries, other.retries) == (2, 2, 0)
    entry = AuditEntry.objects.get()
    assert entry.filter["failureGroup"] == "address <n> not found"
    assert entry.filter["topicName"] == "geo"
    assert entry.after["reason"] == "geo API fixed"


def test_the_failures_page_has_no_one_click_action(operator_client):
    make_job(retries=0, exception_message="boom")
    html = operator_client.get("/failures/").content.decode()
    assert "/failures/act/" not in html
    assert 'action="/jobs/actions/"' in html and 'name="scope" value="matching"' in html
    assert operator_client.post("/failures/act/", {}).status_code == 404


def test_a_group_narrowed_by_annotation_links_to_the_same_rows(operator_client, root):
    from jobs import services as job_services
    from project.models import Incident

    jobs = [make_job(retries=1, exception_message=f"vendor 503 for order {i}") for i in (1, 2)]
    job_services.set_retries(root, [j.pk for j in jobs], 0)
    Incident.objects.filter(configuration=jobs[0].pk).update(annotation="Waiting on VENDOR")
    response = operator_client.get("/failures/", {"annotation": "vendor", "kind": "job"})
    (group,) = response.context["groups"]
    assert group["count"] == 1
    listed = operator_client.get("/jobs/?" + group["query"])
    assert row_ids(listed) == [jobs[0].pk]


def test_a_whitespace_only_message_groups_as_no_message(operator_client, operator_user):
    blank = make_job(retries=0, exception_message="   ")
    none = make_job(retries=0, exception_message=None)
    response = operator_client.get("/failures/")
    assert response.status_code == 200
    group = _group(operator_user, "job", "(no message)")
    assert group["count"] == 2
    listed = operator_client.get("/jobs/?" + group["query"])
    assert sorted(row_ids(listed)) == sorted([blank.pk, none.pk])


def test_failure_group_filter_on_the_camunda_face(operator_client):
    a = make_job(retries=0, exception_message="card 1 declined")
    make_job(retries=0, exception_message="smtp down")
    response = operator_client.get("/engine-rest/job", {"failureGroup": "card <n> declined"})
    assert response.status_code == 200
    assert [j["id"] for j in response.json()] == [a.pk]


def test_failure_group_respects_tenants(operator_client, operator_user):
    mine = make_job(retries=0, exception_message="card 1 declined", tenant_id="acme")
    make_job(retries=0, exception_message="card 2 declined", tenant_id="globex")
    group = _group(operator_user, "job", "card")
    assert group["count"] == 1
    assert row_ids(operator_client.get("/jobs/?" + group["query"])) == [mine.pk]


def test_unknown_parameters_named_like_python_arguments_are_errors_too(operator_client):
    response = operator_client.get("/jobs/?params=1&self=2&changes=3")
    html = response.content.decode()
    assert response.status_code == 200
    for name in ("params", "self", "changes"):
        assert f"Unknown filter &#x27;{name}&#x27;" in html
