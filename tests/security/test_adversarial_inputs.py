"""Property: whatever a client sends, no face and no console page answers 5xx, and every 4xx is
in the error format of the face it came to (Camunda {"type", "message"}, Flowable's and the
seed's {"message", "exception"}, the console's HTML page).

Hypothesis draws adversarial strings and numbers (NUL, lone surrogates, CR/LF, 1 MB strings,
huge and negative numbers, NaN, `%`, `_`, trailing `\\`, bad dates and durations) into every
query parameter, body field and path id of every operation of the OpenAPI schema, and into
every query parameter and form field of every console URL the URL resolver knows (list,
detail, search, audit, export, actions). Endpoints and parameter names are read from the
schema, the resolver and the console's resource descriptions, not listed by hand.

Bounded: derandomized, TASKYARD_FUZZ_EXAMPLES examples per endpoint (default 12), no deadline;
the whole file runs in about a minute. Each example runs in a savepoint rolled back after it,
so one example's rows do not leak into the next and a refused statement cannot poison the
test's transaction.
"""

import base64
import json
import os
from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from console.resources import ACTION_INPUTS, RESOURCES
from external_tasks import services
from external_tasks.models import ExternalTask
from jobs.models import Job, JobDefinition
from tests.conftest import make_user

EXAMPLES = int(os.environ.get("TASKYARD_FUZZ_EXAMPLES", "12"))

# ---------------------------------------------------------------------------------------------
# Adversarial values

MEGABYTE = "x" * 1_000_000
# The most hostile first: a derandomized run starts from the first entries.
STRING_PIECES = [
    "\x00",
    "\ud800",
    "%\\",
    "a\x00b",
    "\udfff",
    "",
    "\r\n",
    "\r\nX-Forged: 1",
    "%",
    "_",
    "\\",
    "%\\",
    "\\%",
    "_\\",
    "😀",
    "\u2028",
    "' OR 1=1 --",
    "../../etc/passwd",
    "<script>x</script>",
    "null",
    "true",
    "-1",
    "1e309",
    "99999999999999999999",
    "PT1M",
    "P3000000D",
    "P999999999999D",
    "PT-1S",
    "2024-13-45T99:00:00",
    "9999-12-31T23:59:59-15:00",
    "0001-01-01T00:00:00+15:00",
    "id_eq_\\",
    "name_like_%\\",
    "a,b,,",
    "asc",
    "desc",
]
NUMBERS = [
    0,
    -1,
    1,
    2**31,
    -(2**31) - 1,
    2**63,
    2**63 - 1,
    -(2**63) - 1,
    10**19,
    -(10**19),
    300_000_000_000_000,
    10**400,
    1.5,
    -0.0,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
]

text = st.one_of(
    st.sampled_from([*STRING_PIECES, MEGABYTE, MEGABYTE + "\\"]),
    st.lists(st.sampled_from(STRING_PIECES), min_size=2, max_size=3).map("".join),
    st.text(max_size=20),
)
scalar = st.one_of(text, st.sampled_from(NUMBERS), st.booleans(), st.none())
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
query_text = st.one_of(text, st.sampled_from(NUMBERS).map(str))


def encode(value: str) -> str:
    """Percent-encoded as a hostile client would send it: a lone surrogate goes out as the
    (invalid UTF-8) bytes of its code point."""
    return quote(value, safe="", errors="surrogatepass")


def query_string(params: dict) -> str:
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in params.items())


def json_text(value) -> str:
    """JSON as a client may write it: ensure_ascii spells lone surrogates as \\udXXX escapes,
    NaN and Infinity come out as the bare words many encoders emit."""
    return json.dumps(value, ensure_ascii=True)


# ---------------------------------------------------------------------------------------------
# Endpoints: the faces from the OpenAPI schema, the console from the URL resolver


def _resolve(schema: dict, node):
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def _body_schema(schema: dict, operation: dict):
    content = (operation.get("requestBody") or {}).get("content") or {}
    return _resolve(schema, (content.get("application/json") or {}).get("schema"))


def skeleton(schema: dict, node, depth: int = 0, required_only: bool = False, name: str = ""):
    """A plausible body the schema describes (every property set, strings "invoice", numbers
    1000), for hostile values to replace some of its leaves: a body that is wrong everywhere
    is refused at its first field and never reaches the code behind it."""
    node = _resolve(schema, node) or {}
    if depth > 4:
        return None
    for variant in node.get("oneOf") or node.get("anyOf") or node.get("allOf") or []:
        return skeleton(schema, variant, depth + 1, required_only, name)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        required = set(node.get("required", []))
        return {
            key: skeleton(schema, child, depth + 1, required_only, key)
            for key, child in node.get("properties", {}).items()
            if not required_only or key in required
        }
    if kind == "array":
        return [skeleton(schema, node.get("items"), depth + 1, required_only, name)]
    if kind in {"integer", "number"}:
        return 1000
    if kind == "boolean":
        return False
    if "enum" in node and node["enum"]:
        return node["enum"][0]
    if name.endswith(("Duration", "Timeout")):
        return "PT1M"  # Flowable's and the seed's ISO 8601 durations
    return "invoice"


def leaf_paths(value, prefix=()) -> list[tuple]:
    if isinstance(value, dict):
        paths = [prefix] if prefix else []
        for key, child in value.items():
            paths += leaf_paths(child, (*prefix, key))
        return paths
    if isinstance(value, list):
        paths = [prefix] if prefix else []
        for index, child in enumerate(value):
            paths += leaf_paths(child, (*prefix, index))
        return paths
    return [prefix]


def replaced(value, path: tuple, new):
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: replaced(value.get(head), tuple(rest), new)}
    if isinstance(value, list) and isinstance(head, int) and head < len(value):
        return [replaced(v, tuple(rest), new) if i == head else v for i, v in enumerate(value)]
    return value


def face_endpoints() -> list[dict]:
    from drf_spectacular.generators import SchemaGenerator

    schema = json.loads(
        json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str)
    )
    endpoints = []
    for path, operations in schema["paths"].items():
        if not path.startswith(("/engine-rest/", "/external-job-api/", "/api/external-jobs")):
            continue
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "delete"}:
                continue
            parameters = operation.get("parameters", [])
            endpoints.append(
                {
                    "id": f"{method.upper()} {path}",
                    "method": method.upper(),
                    "path": path,
                    "path_params": [p["name"] for p in parameters if p["in"] == "path"],
                    "query": sorted({p["name"] for p in parameters if p["in"] == "query"}),
                    "skeleton": skeleton(schema, _body_schema(schema, operation), 0, True),
                    "fields": skeleton(schema, _body_schema(schema, operation)),
                    "has_body": "requestBody" in operation,
                }
            )
    return endpoints


# Every name the console reads from a query or a form, besides its FilterSets' parameters and
# its actions' inputs (which come from the resource descriptions below).
CONSOLE_FIELDS = [
    "q",
    "sort",
    "page",
    "size",
    "format",
    "kind",
    "op",
    "group",
    "action",
    "ids",
    "scope",
    "confirmed",
    "expected",
    "next",
    "include_jobs",
    "user",
    "target",
    "since",
    "until",
]


def _console_patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _console_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.callback.__module__.startswith("console."):
            yield prefix + str(pattern.pattern), pattern


def console_endpoints() -> list[dict]:
    filter_names = sorted(
        {name for resource in RESOURCES.values() for name in resource.filterset_class.base_filters}
    )
    fields = sorted({*CONSOLE_FIELDS, *filter_names, *ACTION_INPUTS.values()})
    endpoints = []
    for route, _pattern in _console_patterns(get_resolver().url_patterns):
        path_params = [part.split(":")[-1][:-1] for part in route.split("<")[1:]]
        path = "/" + route
        for name in path_params:
            path = path.replace(f"<str:{name}>", "{" + name + "}")
        for method in ("GET", "POST"):
            endpoints.append(
                {
                    "id": f"{method} {path}",
                    "method": method,
                    "path": path,
                    "path_params": path_params,
                    "query": fields,
                    "body": fields if method == "POST" else [],
                    "skeleton": None,
                    "fields": None,
                    "has_body": method == "POST",
                }
            )
    return endpoints


FACES = face_endpoints()
CONSOLE = console_endpoints()
ACTION_KEYS = sorted({a.key for r in RESOURCES.values() for a in r.actions})


# ---------------------------------------------------------------------------------------------
# Rows for the real ids to be drawn among the hostile ones


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(db):
    return make_user("fuzzer", "admin")


@pytest.fixture
def real_ids(admin):
    created = services.create(
        admin,
        [
            {"topicName": "invoice", "tenantId": "acme", "variables": {"n": {"value": 1}}},
            {"topicName": "invoice", "retries": 1, "businessKey": "order-1"},
        ],
    )
    services.fetch_and_lock(admin, "fuzz", 1, [services.TopicRequest("invoice", 60_000)])
    definition = JobDefinition.objects.create(activity_id="act", job_type="async-continuation")
    job = Job.objects.create(job_definition=definition, due_date=timezone.now(), tenant_id="acme")
    failed = Job.objects.create(retries=0, exception_message="boom", exception_stacktrace="Tb")
    ids = [task.pk for task in ExternalTask.objects.all()] + [job.pk, failed.pk, definition.pk]
    assert len(ids) == len(created) + 3
    return ids


# ---------------------------------------------------------------------------------------------
# The property


def error_format(path: str) -> str:
    if path.startswith("/engine-rest/"):
        return "camunda"
    if path.startswith(("/external-job-api/", "/api/external-jobs")):
        return "flowable"
    return "console"


def check_answer(response, path: str, described: str):
    status = response.status_code
    if status == 500 and path.endswith("/execute"):
        # Camunda's POST /job/{id}/execute answers 500 ProcessEngineException when the job
        # itself fails (the fixture's jobs have no handler): documented, not a crash.
        assert response.json()["type"] == "ProcessEngineException", described
        return
    assert status < 500, f"{described} answered {status}: {response.content[:500]!r}"
    if status < 400:
        return
    kind = error_format(path)
    content_type = response.get("Content-Type", "")
    if kind == "console":
        assert content_type.startswith("text/html"), f"{described}: {status} {content_type}"
        return
    assert content_type.startswith("application/json"), f"{described}: {status} {content_type}"
    body = response.json()
    expected = {"type", "message"} if kind == "camunda" else {"message", "exception"}
    assert set(body) == expected, f"{described}: {status} {body}"
    assert all(isinstance(value, str) for value in body.values()), f"{described}: {body}"


def request_strategy(endpoint: dict, ids: list[str]):
    """One hostile request for the endpoint: path ids, query parameters and a body."""
    path_id = st.one_of(st.sampled_from(ids), text)
    query_names = endpoint["query"] or ["unknownParameter"]
    if error_format(endpoint["path"]) == "console":
        field_value = st.one_of(query_text, st.sampled_from(ids), st.sampled_from(ACTION_KEYS))
        body = st.dictionaries(st.sampled_from(endpoint["body"]), field_value, max_size=4)
    else:
        base = endpoint["skeleton"]
        # Hostile values go into any field the schema names, required or optional.
        paths = leaf_paths(endpoint["fields"]) or [()]
        hostile = st.one_of(json_value, st.sampled_from(ids))
        changes = st.lists(st.tuples(st.sampled_from(paths), hostile), min_size=1, max_size=3)

        def mutated(drawn):
            body = base
            for path, value in drawn:
                if isinstance(body, dict) and path and path[0] not in body:
                    # an optional field: first as the schema describes it, then made hostile
                    body = {**body, path[0]: endpoint["fields"][path[0]]}
                body = replaced(body, path, value)
            return body

        body = st.one_of(changes.map(mutated), json_value)  # json_value: not even an object
    return st.fixed_dictionaries(
        {
            "path_ids": st.fixed_dictionaries({name: path_id for name in endpoint["path_params"]}),
            "query": st.dictionaries(st.sampled_from(query_names), query_text, max_size=3),
            "body": body if endpoint["has_body"] else st.none(),
        }
    )


def send(client: Client, endpoint: dict, drawn: dict):
    path = endpoint["path"]
    for name, value in drawn["path_ids"].items():
        path = path.replace("{" + name + "}", encode(value))
    if drawn["query"]:
        path += "?" + query_string(drawn["query"])
    body = drawn["body"]
    if endpoint["method"] in {"GET", "DELETE"} or body is None:
        return client.generic(endpoint["method"], path), path
    if error_format(endpoint["path"]) == "console":
        if not isinstance(body, dict):
            body = {"q": str(body)}
        form = query_string({name: str(value) for name, value in body.items()})
        return client.generic(
            "POST", path, form, content_type="application/x-www-form-urlencoded"
        ), path
    return client.generic(
        endpoint["method"], path, json_text(body), content_type="application/json"
    ), path


def run_property(client: Client, endpoint: dict, ids: list[str]):
    @given(drawn=request_strategy(endpoint, ids))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def property_holds(drawn):
        with transaction.atomic():
            response, sent = send(client, endpoint, drawn)
            transaction.set_rollback(True)
        check_answer(response, endpoint["path"], f"{endpoint['method']} {sent[:300]}")

    property_holds()


@pytest.mark.parametrize("endpoint", FACES, ids=[e["id"] for e in FACES])
def test_no_hostile_input_breaks_a_face(admin, real_ids, endpoint):
    # HTTP Basic, as workers and Camunda clients send it (a session would need a CSRF token).
    token = base64.b64encode(b"fuzzer:fuzzer-password").decode()
    client = Client(raise_request_exception=False, headers={"Authorization": f"Basic {token}"})
    run_property(client, endpoint, real_ids)


@pytest.mark.parametrize("endpoint", CONSOLE, ids=[e["id"] for e in CONSOLE])
def test_no_hostile_input_breaks_a_console_page_or_action(admin, real_ids, endpoint):
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    run_property(client, endpoint, real_ids)


def test_every_face_and_console_page_is_fuzzed():
    # A schema or resolver change that silently emptied these lists would make the property
    # vacuous: the faces' worker and operator operations and the console pages must be there.
    face_ids = {e["id"] for e in FACES}
    assert {
        "POST /engine-rest/external-task/fetchAndLock",
        "PUT /engine-rest/job/{job_id}/retries",
        "POST /external-job-api/acquire/jobs",
        "POST /api/external-jobs",
    } <= face_ids
    assert len(FACES) > 50
    console_paths = {e["path"] for e in CONSOLE}
    assert {"/jobs/", "/jobs/actions/", "/external-tasks/export/", "/search/", "/audit/"} <= (
        console_paths
    )
