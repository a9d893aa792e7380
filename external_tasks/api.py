"""Camunda 7 REST face for external tasks: /engine-rest/external-task/…

Views validate input, call one function of `external_tasks.services`, and answer Camunda's
JSON. fetchAndLock has two views over the same first attempt (FetchAndLockStart): the async
`fetch_and_lock`, so a long-polling request holds neither a thread nor a database connection
while it waits (serve with an ASGI server, e.g. uvicorn), and the sync `fetch_and_lock_now`,
which project.asgi uses for the requests that cannot wait (most of them: no
asyncResponseTimeout), sparing them the cost of Django's ASGI handler.
"""

import functools
import time
from collections.abc import Mapping

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from external_tasks import notify, services
from external_tasks.fields import STRING_LIMITS
from external_tasks.filters import (
    LOG_SORT_KEYS,
    SORT_KEYS,
    ExternalTaskFilter,
    ExternalTaskLogFilter,
)
from external_tasks.models import ExternalTask, ExternalTaskLog
from external_tasks.serializers import (
    BpmnErrorSerializer,
    CompleteSerializer,
    CountSerializer,
    CreateTaskSerializer,
    ExtendLockSerializer,
    ExternalTaskQuerySerializer,
    ExternalTaskSerializer,
    FailureSerializer,
    FetchExternalTasksSerializer,
    HistoricExternalTaskLogSerializer,
    LockedExternalTaskSerializer,
    LockSerializer,
    PrioritySerializer,
    RetriesSerializer,
    SetRetriesSerializer,
    camunda_locked_task,
    camunda_log_entry,
    camunda_task,
)
from project import batches
from project.audit import MAX_IDS
from project.batch_api import BatchSerializer, batch_dto
from project.errors import InvalidRequest, NotFound
from project.rest.auth import CanOperate, CanView, CanWork
from project.rest.history import HistoricLogViewSet
from project.rest.paging import order_by, page, sorting_from_body, sorting_from_query
from project.rest.parsers import has_nul, json_body
from project.schema import errors, filter_parameters, paging_parameters, sorting_parameters

# ---------------------------------------------------------------------------------------------
# Body value helpers: wrong JSON types are a 400 naming the field, never a 500.


def opt_str(body: Mapping, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (required and value == ""):
        if required:
            raise InvalidRequest(f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string, got {value!r}")
    limit = STRING_LIMITS.get(name)
    if limit is not None and len(value) > limit:
        raise InvalidRequest(f"'{name}' is longer than {limit} characters")
    return value


def opt_int(
    body: Mapping, name: str, *, required=False, minimum=None, java_type="int"
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidRequest(
                f"'{name}' must be a number (java type {java_type}), got {value!r}"
            )
    bits = 31 if java_type == "int" else 63
    if not -(2**bits) <= value < 2**bits:
        raise InvalidRequest(f"'{name}' is out of range for java type {java_type}")
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"'{name}' must be at least {minimum}, got {value}")
    return value


def opt_bool(body: Mapping, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false, got {value!r}")
    return value


def opt_list(body: Mapping, name: str) -> list[str] | None:
    """A list of strings; a plain string is read as a comma-separated list (the 7.16 docs'
    fetchAndLock example sends "tenantIdIn": "tenantOne")."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(f"'{name}' must be a list of strings, got {value!r}")
    return value


def no_content() -> Response:
    return Response(status=204)


# ---------------------------------------------------------------------------------------------
# Queries

QUERY_PARAMETERS = filter_parameters(
    ExternalTaskFilter,
    {"processVariables": "Comma-separated conditions name_operator_value, e.g. amount_gt_5"},
)
TOPIC_NAME_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.BOOL, description=description)
    for name, description in (
        ("withLockedTasks", "Only topics of currently locked tasks"),
        ("withUnlockedTasks", "Only topics of tasks not currently locked"),
        ("withRetriesLeft", "Only topics of tasks with retries left (or null)"),
    )
]
STRING_LIST = {"type": "array", "items": {"type": "string"}}


def filtered_tasks(user, data: dict):
    """The user's visible tasks matching Camunda query data (already adapted to a dict)."""
    visible = ExternalTask.objects.visible_to(user)
    return ExternalTaskFilter(data, queryset=visible).filtered()


def _list(user, data, sorting, params):
    queryset = filtered_tasks(user, data).order_by(*order_by(sorting, SORT_KEYS))
    return Response([camunda_task(t) for t in page(queryset, params)])


def get_visible(user, task_id) -> ExternalTask:
    if has_nul(task_id):  # no such id can exist, and PostgreSQL would refuse the query
        raise NotFound(f"External task with id {task_id!r} does not exist")
    try:
        return ExternalTask.objects.visible_to(user).get(pk=task_id)
    except ExternalTask.DoesNotExist:
        raise NotFound(f"External task with id {task_id} does not exist") from None


# ---------------------------------------------------------------------------------------------
# fetchAndLock (async for long polling; sync for requests that cannot wait)


class FetchRequest:
    """A validated fetchAndLock body."""

    def __init__(self, body):
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object")
        self.worker_id = opt_str(body, "workerId", required=True)
        # maxTasks 0 is a valid request for nothing (Camunda answers [], after any long poll).
        self.max_tasks = opt_int(body, "maxTasks", required=True, minimum=0)
        self.use_priority = opt_bool(body, "usePriority")
        timeout = opt_int(body, "asyncResponseTimeout", minimum=0, java_type="long") or 0
        limit = settings.TASKYARD["MAX_ASYNC_RESPONSE_TIMEOUT_MS"]
        if timeout > limit:
            raise InvalidRequest(
                f"The asynchronous response timeout cannot be set to a value greater than "
                f"{limit} milliseconds"
            )
        self.timeout_ms = timeout
        self.include_extension_properties = opt_bool(body, "includeExtensionProperties")
        self.sort_create_time = None
        sorting = body.get("sorting")
        if sorting is not None:
            for item in sorting_from_body(body):
                if item["sortBy"] != "createTime":
                    raise InvalidRequest(
                        f"Cannot set query parameter 'sortBy' to value '{item['sortBy']}': "
                        "fetchAndLock sorts by createTime only"
                    )
                if item["sortOrder"] not in {"asc", "desc"}:
                    raise InvalidRequest(
                        f"Cannot set query parameter 'sortOrder' to value '{item['sortOrder']}'"
                    )
                self.sort_create_time = item["sortOrder"]
        topics = body.get("topics")
        if topics is not None and not isinstance(topics, list):
            raise InvalidRequest("'topics' must be a list of topic objects")
        self.topics = []
        self.topic_options = []
        for index, topic in enumerate(topics or []):
            self.topics.append(self._topic(topic, index))

    def _topic(self, topic, index):
        if not isinstance(topic, Mapping):
            raise InvalidRequest(f"topics[{index}] must be an object")
        try:
            name = opt_str(topic, "topicName", required=True)
            duration = opt_int(topic, "lockDuration", required=True, java_type="long")
            if duration <= 0:
                raise InvalidRequest(f"'lockDuration' must be greater than 0, got {duration}")
            definition_ids = opt_list(topic, "processDefinitionIdIn")
            if topic.get("processDefinitionId") is not None:
                definition_ids = [
                    *(definition_ids or []),
                    opt_str(topic, "processDefinitionId"),
                ]
            definition_keys = opt_list(topic, "processDefinitionKeyIn")
            if topic.get("processDefinitionKey") is not None:
                definition_keys = [
                    *(definition_keys or []),
                    opt_str(topic, "processDefinitionKey"),
                ]
            process_variables = topic.get("processVariables") or {}
            if not isinstance(process_variables, Mapping) or any(
                isinstance(v, dict | list) for v in process_variables.values()
            ):
                raise InvalidRequest("'processVariables' must map variable names to values")
            variables = topic.get("variables")
            if variables is not None and (
                not isinstance(variables, list) or not all(isinstance(v, str) for v in variables)
            ):
                raise InvalidRequest("'variables' must be a list of variable names or null")
            opt_bool(topic, "localVariables")
            opt_bool(topic, "deserializeValues")
            request = services.TopicRequest(
                topic_name=name,
                lock_duration_ms=duration,
                business_key=opt_str(topic, "businessKey"),
                process_definition_ids=definition_ids,
                process_definition_keys=definition_keys,
                process_definition_version_tag=opt_str(topic, "processDefinitionVersionTag"),
                tenant_ids=opt_list(topic, "tenantIdIn"),
                without_tenant_id=opt_bool(topic, "withoutTenantId"),
                process_variables=dict(process_variables),
            )
            self.topic_options.append(
                {
                    "variables": variables,
                    "extension": opt_bool(topic, "includeExtensionProperties")
                    or self.include_extension_properties,
                }
            )
        except InvalidRequest as error:
            raise InvalidRequest(f"topics[{index}]: {error.message}") from None
        return request

    def options_for(self, task):
        """Response options of the first topic entry the task matches."""
        for topic, options in zip(self.topics, self.topic_options, strict=True):
            if topic.matches(task):
                return options
        return {"variables": None, "extension": self.include_extension_properties}

    def claim(self, user) -> list[dict]:
        tasks = services.fetch_and_lock(
            user,
            self.worker_id,
            self.max_tasks,
            self.topics,
            use_priority=self.use_priority,
            sort_create_time=self.sort_create_time,
        )
        result = []
        for task in tasks:
            options = self.options_for(task)
            result.append(camunda_locked_task(task, options["variables"], options["extension"]))
        return result


class FetchAndLockStart(APIView):
    """Authenticates, validates and makes the first claim attempt (sync, short)."""

    permission_classes = [CanWork]

    @extend_schema(
        summary="Fetch and lock external tasks (long polling)",
        operation_id="fetchAndLock",
        tags=["External Task"],
        request=FetchExternalTasksSerializer,
        responses={200: LockedExternalTaskSerializer(many=True), **errors(400)},
    )
    def post(self, request):
        fetch = FetchRequest(request.data if request.data != {} else {})
        tasks = fetch.claim(request.user)
        response = Response(tasks)
        if not tasks and fetch.timeout_ms and fetch.topics:
            response.long_poll = (request.user, fetch, notify.listener_conninfo())
        return response


_start = FetchAndLockStart.as_view()


def _start_sync(request):
    try:
        response = _start(request)
        if not getattr(response, "long_poll", None):
            response.render()
        return response
    finally:
        notify.release_connection()


def poll_interval() -> float:
    """Seconds between the dispatcher's re-checks while requests wait: catches expired locks and
    elapsed retry timeouts, which no event announces, and on SQLite other processes' new tasks."""
    options = getattr(settings, "TASKYARD", {})
    if connection.vendor == "postgresql":
        return options.get("LONG_POLL_RECHECK_SECONDS", 2.0)
    return options.get("SQLITE_POLL_SECONDS", 0.2)


def _thread_sensitive(request) -> bool:
    """Where the sync steps of fetchAndLock run. Under ASGI: never a thread reserved for the
    request (the first attempt in the shared pool, the dispatcher's claims on its one thread), so
    a waiting request owns no thread. Under WSGI (and the Django test client) the request
    already owns its thread, which stays blocked anyway: run there, on the request's own
    connection (the one a test's transaction lives on)."""
    options = getattr(settings, "TASKYARD", {})
    return options.get("FETCH_THREAD_SENSITIVE", not isinstance(request, ASGIRequest))


def _in_thread(function, request):
    return sync_to_async(function, thread_sensitive=_thread_sensitive(request))


def _give_back(user, worker_id):
    """For tasks claimed for a request that ended before it could answer them: the worker never
    heard of them, so its locks go (and the topics are announced) instead of lasting the lock
    duration."""

    def give_back(tasks):
        for task in tasks:
            services.release(user, worker_id, task["id"])

    return give_back


def waiter_for(user, fetch: FetchRequest, seen) -> notify.Waiter:
    """A fetch request's place in its dispatcher's queue (call on the event loop)."""
    return notify.Waiter(
        topics={t.topic_name for t in fetch.topics},
        # Same user (tenant scope) and same topic filters: the same tasks are fetchable.
        key=(user.pk, repr(fetch.topics)),
        max_tasks=fetch.max_tasks,
        claim=functools.partial(fetch.claim, user),
        release=_give_back(user, fetch.worker_id),
        seen=seen,
    )


@csrf_exempt
async def fetch_and_lock(request):
    """POST /external-task/fetchAndLock. Without tasks and with asyncResponseTimeout, waits in
    this event loop's dispatcher (external_tasks.notify), which claims for it when its topics
    are announced (LISTEN/NOTIFY, in-process) or its re-check finds expired locks, until tasks
    are claimed or the timeout passes.

    A plain async view, not an action of ExternalTaskViewSet: a waiting request must hold no
    database connection and no worker thread, and DRF's views are sync (a ViewSet action would
    hold its thread for the whole wait). Only its short first attempt runs through DRF
    (FetchAndLockStart), for authentication, parsing, permissions and Camunda's errors."""
    started, seen = time.monotonic(), notify.current_mark()
    response = await _in_thread(_start_sync, request)(request)
    if not getattr(response, "long_poll", None):
        return response
    return await _wait(request, response, started, seen)


async def _wait(request, response, started, seen):
    """The waiting half of fetchAndLock, for a first attempt that found nothing to claim."""
    user, fetch, conninfo = response.long_poll
    dispatcher = await notify.dispatcher(
        notify.runner(_thread_sensitive(request)),
        await _in_thread(poll_interval, request)(),
        conninfo,
    )
    waiter = waiter_for(user, fetch, seen)
    remaining = fetch.timeout_ms / 1000 - (time.monotonic() - started)
    tasks = await dispatcher.wait(waiter, remaining)
    return JsonResponse(tasks, safe=False)


# The OpenAPI generator documents DRF views only: describe fetchAndLock by its DRF half.
fetch_and_lock.cls = FetchAndLockStart
fetch_and_lock.initkwargs = {}


@csrf_exempt
def fetch_and_lock_now(request):
    """POST /external-task/fetchAndLock for a request that cannot wait (no asyncResponseTimeout,
    or a body that is a 400 anyway): project.asgi serves those through Django's WSGI handler on
    a pooled thread (external_tasks.urls_nowait), and this is fetch_and_lock's first attempt
    there."""
    started, seen = time.monotonic(), notify.current_mark()
    response = _start(request)
    if not getattr(response, "long_poll", None):
        return response
    # Only a request the router judged wrongly gets here. It waits as it would under the test
    # client or a WSGI server, holding this thread, rather than answer [] before its time.
    notify.release_connection()
    return async_to_sync(_wait)(request, response, started, seen)


# ---------------------------------------------------------------------------------------------
# Bulk retries


def bulk_retries_selection(request):
    """PUT /external-task/retries and POST /retries-async read the same body: the retries, and
    the visible tasks in the union of externalTaskIds, processInstanceIds and
    externalTaskQuery. Returns (retries, selection, body)."""
    body = json_body(request)
    retries = opt_int(body, "retries", required=True)
    if retries < 0:
        raise InvalidRequest("The number of retries cannot be negative")
    for unsupported in ("processInstanceQuery", "historicProcessInstanceQuery"):
        if body.get(unsupported) is not None:
            raise InvalidRequest(
                f"'{unsupported}' is not supported: Taskyard has no process instances; use "
                "processInstanceIds or externalTaskQuery"
            )
    ids = body.get("externalTaskIds")
    instance_ids = body.get("processInstanceIds")
    query = body.get("externalTaskQuery")
    for name, value in (("externalTaskIds", ids), ("processInstanceIds", instance_ids)):
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidRequest(f"'{name}' must be a list of ids without null values")
    if query is not None and not isinstance(query, Mapping):
        raise InvalidRequest("'externalTaskQuery' must be an object")
    if ids is None and instance_ids is None and query is None:
        raise InvalidRequest(
            "externalTaskIds, processInstanceIds or externalTaskQuery has to be provided"
        )
    user = request.user
    visible = ExternalTask.objects.visible_to(user)
    condition = Q(pk__in=[])
    if ids:
        found = set(visible.filter(pk__in=ids).values_list("pk", flat=True))
        missing = sorted(set(ids) - found)
        if missing:
            raise NotFound(f"External task with id {', '.join(missing)} does not exist")
        condition |= Q(pk__in=ids)
    if instance_ids:
        condition |= Q(process_instance_id__in=instance_ids)
    if query is not None:
        matching = filtered_tasks(user, ExternalTaskFilter.data_from_body(query))
        condition |= Q(pk__in=matching.values("pk"))
    return retries, visible.filter(condition), body


def bulk_retries(request):
    """PUT /external-task/retries: the tasks' retries set within the request."""
    retries, selection, body = bulk_retries_selection(request)
    with transaction.atomic():
        return services.set_retries(
            request.user, selection, retries, strict=False, filter=dict(body)
        )


def _selectors(body) -> dict:
    """The body's selectors as the batch keeps them (its filter): long id lists capped like
    the audit's ids, the batch's own snapshot holding every id."""
    kept = {}
    for name, value in body.items():
        if name == "retries" or value is None:
            continue
        kept[name] = value[:MAX_IDS] if isinstance(value, list) else value
    return kept


# ---------------------------------------------------------------------------------------------
# The resource: /engine-rest/external-task and everything under it (but fetchAndLock, above)


def _worker_action(summary: str, operation_id: str, body):
    """The schema of a lock holder's POST on one task: a body, 204, or 400/404."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=["External Task"],
        request=body,
        responses={204: None, **errors(400, 404)},
    )


TASK_ID_PARAMETER = OpenApiParameter(
    "task_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    # The fixed paths (count, create, …) route to other resources.
    pattern="^(?!(?:" + "|".join(services.RESERVED_TASK_IDS) + ")$)[^/]+$",
)


class ExternalTaskViewSet(viewsets.ViewSet):
    """Camunda's external-task resource: queries for viewers, the lock holder's operations for
    workers, retries and priority for operators. Each action reads its body, calls one function
    of external_tasks.services and answers Camunda's JSON (errors: project.rest.errors)."""

    permission_classes = [CanView]
    lookup_url_kwarg = "task_id"
    lookup_value_converter = "str"

    # -- queries ---------------------------------------------------------------------------

    @extend_schema(
        summary="Get external tasks (GET /external-task)",
        operation_id="getExternalTasks",
        tags=["External Task"],
        parameters=QUERY_PARAMETERS + sorting_parameters(SORT_KEYS) + paging_parameters(),
        request=None,
        responses={200: ExternalTaskSerializer(many=True), **errors(400)},
    )
    def list(self, request):
        data = ExternalTaskFilter.data_from_query(request.query_params)
        return _list(request.user, data, sorting_from_query(request.query_params), request.GET)

    @extend_schema(
        summary="Get external tasks (POST /external-task)",
        operation_id="queryExternalTasks",
        tags=["External Task"],
        parameters=paging_parameters(),
        request=ExternalTaskQuerySerializer,
        responses={200: ExternalTaskSerializer(many=True), **errors(400)},
    )
    def query(self, request):
        body = json_body(request)
        data = ExternalTaskFilter.data_from_body(body)
        return _list(request.user, data, sorting_from_body(body), request.GET)

    @extend_schema(
        methods=["GET"],
        summary="Count external tasks (GET)",
        operation_id="getExternalTasksCount",
        tags=["External Task"],
        parameters=QUERY_PARAMETERS,
        request=None,
        responses={200: CountSerializer, **errors(400)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Count external tasks (POST)",
        operation_id="queryExternalTasksCount",
        tags=["External Task"],
        request=ExternalTaskQuerySerializer,
        responses={200: CountSerializer, **errors(400)},
    )
    @action(detail=False, methods=["get", "post"])
    def count(self, request):
        if request.method == "GET":
            data = ExternalTaskFilter.data_from_query(request.query_params)
        else:
            data = ExternalTaskFilter.data_from_body(json_body(request))
        return Response({"count": filtered_tasks(request.user, data).count()})

    @extend_schema(
        summary="Distinct topic names of external tasks",
        operation_id="getTopicNames",
        tags=["External Task"],
        parameters=TOPIC_NAME_PARAMETERS,
        request=None,
        responses={200: STRING_LIST, **errors(400)},
    )
    @action(detail=False, methods=["get"], url_path="topic-names")
    def topic_names(self, request):
        params = request.query_params
        data = {
            ours: params[camunda]
            for ours, camunda in (
                ("locked", "withLockedTasks"),
                ("notLocked", "withUnlockedTasks"),
                ("withRetriesLeft", "withRetriesLeft"),
            )
            if camunda in params
        }
        queryset = filtered_tasks(request.user, data)
        names = queryset.order_by("topic_name").values_list("topic_name", flat=True).distinct()
        return Response(list(names))

    @extend_schema(
        summary="Get an external task",
        operation_id="getExternalTask",
        tags=["External Task"],
        parameters=[TASK_ID_PARAMETER],
        request=None,
        responses={200: ExternalTaskSerializer, **errors(404)},
    )
    def retrieve(self, request, task_id):
        return Response(camunda_task(get_visible(request.user, task_id)))

    @extend_schema(
        summary="Error details of an external task (text/plain)",
        operation_id="getExternalTaskErrorDetails",
        tags=["External Task"],
        request=None,
        responses={(200, "text/plain"): OpenApiTypes.STR, 204: None, **errors(404)},
    )
    @action(detail=True, methods=["get"], url_path="errorDetails")
    def error_details(self, request, task_id):
        task = get_visible(request.user, task_id)
        if not task.error_details:
            return HttpResponse(status=204)
        return HttpResponse(task.error_details, content_type="text/plain; charset=utf-8")

    # -- producers and workers ------------------------------------------------------------

    @extend_schema(
        summary="Create external tasks (Taskyard extension)",
        operation_id="createExternalTasks",
        tags=["External Task"],
        request=CreateTaskSerializer(many=True),
        responses={200: LockedExternalTaskSerializer(many=True), **errors(400)},
    )
    @action(detail=False, methods=["post"], url_path="create", permission_classes=[CanWork])
    def create_tasks(self, request):
        """Taskyard extension, not part of Camunda: producers create external tasks."""
        tasks = services.create(request.user, request.data)
        return Response([camunda_locked_task(t, None, True) for t in tasks], status=200)

    @_worker_action("Complete an external task", "completeExternalTaskResource", CompleteSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanWork])
    def complete(self, request, task_id):
        body = CompleteSerializer.read(request)
        services.complete(
            request.user, task_id, body["workerId"], body["variables"], body["localVariables"]
        )
        return no_content()

    @_worker_action("Report a failure of an external task", "handleFailure", FailureSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanWork])
    def failure(self, request, task_id):
        body = FailureSerializer.read(request)
        services.handle_failure(
            request.user,
            task_id,
            body["workerId"],
            error_message=body["errorMessage"],
            error_details=body["errorDetails"],
            # Camunda's DTO field is a Java int: null or absent is 0, so the task's retries
            # run out and it becomes an incident (what camunda-client sends when a handler
            # raises). The Flowable faces pass None: one less than before.
            retries=body["retries"] or 0,
            retry_timeout_ms=body["retryTimeout"],
            variables=body["variables"],
            local_variables=body["localVariables"],
        )
        return no_content()

    @_worker_action(
        "Report a BPMN error for an external task",
        "handleExternalTaskBpmnError",
        BpmnErrorSerializer,
    )
    @action(detail=True, methods=["post"], url_path="bpmnError", permission_classes=[CanWork])
    def bpmn_error(self, request, task_id):
        body = BpmnErrorSerializer.read(request)
        services.handle_bpmn_error(
            request.user,
            task_id,
            body["workerId"],
            body["errorCode"],
            body["errorMessage"],
            body["variables"],
        )
        return no_content()

    @_worker_action("Extend the lock of an external task", "extendLock", ExtendLockSerializer)
    @action(detail=True, methods=["post"], url_path="extendLock", permission_classes=[CanWork])
    def extend_lock(self, request, task_id):
        body = ExtendLockSerializer.read(request)
        services.extend_lock(request.user, task_id, body["workerId"], body["newDuration"])
        return no_content()

    @_worker_action("Lock an external task for a worker", "lock", LockSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanWork])
    def lock(self, request, task_id):
        body = LockSerializer.read(request)
        services.lock(request.user, task_id, body["workerId"], body["lockDuration"])
        return no_content()

    # -- operators --------------------------------------------------------------------------

    @extend_schema(
        summary="Unlock an external task",
        operation_id="unlock",
        tags=["External Task"],
        request=None,
        responses={204: None, **errors(404)},
    )
    @action(detail=True, methods=["post"], permission_classes=[CanOperate])
    def unlock(self, request, task_id):
        services.unlock(request.user, task_id)
        return no_content()

    @extend_schema(
        summary="Set retries of an external task",
        operation_id="setExternalTaskResourceRetries",
        tags=["External Task"],
        request=RetriesSerializer,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"], permission_classes=[CanOperate])
    def retries(self, request, task_id):
        body = RetriesSerializer.read(request)
        get_visible(request.user, task_id)
        services.set_retries(request.user, task_id, body["retries"])
        return no_content()

    @extend_schema(
        summary="Set the priority of an external task",
        operation_id="setExternalTaskResourcePriority",
        tags=["External Task"],
        request=PrioritySerializer,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"], permission_classes=[CanOperate])
    def priority(self, request, task_id):
        body = PrioritySerializer.read(request)
        get_visible(request.user, task_id)
        services.set_priority(request.user, task_id, body["priority"])
        return no_content()

    @extend_schema(
        summary="Set retries of many external tasks",
        operation_id="setExternalTaskRetries",
        tags=["External Task"],
        request=SetRetriesSerializer,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=False, methods=["put"], url_path="retries", permission_classes=[CanOperate])
    def bulk_retries(self, request):
        bulk_retries(request)
        return no_content()

    @extend_schema(
        summary="Set retries of many external tasks (batch)",
        operation_id="setExternalTaskRetriesAsyncOperation",
        tags=["External Task"],
        request=SetRetriesSerializer,
        responses={200: BatchSerializer, **errors(400, 404)},
    )
    @action(
        detail=False, methods=["post"], url_path="retries-async", permission_classes=[CanOperate]
    )
    def bulk_retries_async(self, request):
        """As in Camunda: a set-external-task-retries batch over the tasks selected now (their
        ids are snapshotted), answered at once; the job executor runs it in chunks."""
        retries, selection, body = bulk_retries_selection(request)
        # A selection of no task is Camunda's 400 "externalTaskIds is empty" (start() says it).
        batch = batches.start(
            request.user,
            "set-external-task-retries",
            selection,
            {"retries": retries},
            filter=_selectors(body),
            source="api",
        )
        return Response(batch_dto(batch))


# ---------------------------------------------------------------------------------------------
# /history/external-task-log


class HistoricExternalTaskLogViewSet(HistoricLogViewSet):
    """Camunda's /history/external-task-log resource: the external task log's creation,
    failure, success and deletion entries (ExternalTaskLog.objects.history())."""

    log_model = ExternalTaskLog
    filter_class = ExternalTaskLogFilter
    serializer_class = HistoricExternalTaskLogSerializer
    not_found = "Historic external task log with id {id} does not exist"
    text_not_found = (
        "No historic external task log found with id {id}: historicExternalTaskLog is null"
    )
    text_field = "error_details"

    def represent(self, entry) -> dict:
        return camunda_log_entry(entry)

    @extend_schema(
        summary="Get External Task Logs",
        operation_id="getHistoricExternalTaskLogs",
        tags=["Historic External Task Log"],
        parameters=[
            *filter_parameters(ExternalTaskLogFilter),
            *sorting_parameters(LOG_SORT_KEYS),
            *paging_parameters(),
        ],
        responses={200: HistoricExternalTaskLogSerializer(many=True), **errors(400)},
    )
    def list(self, request):
        return self.list_entries(request)

    @extend_schema(
        summary="Get External Task Logs (POST)",
        operation_id="queryHistoricExternalTaskLogs",
        tags=["Historic External Task Log"],
        parameters=paging_parameters(),
        request=OpenApiTypes.OBJECT,
        responses={200: HistoricExternalTaskLogSerializer(many=True), **errors(400)},
    )
    def query(self, request):
        return self.list_entries(request)

    @extend_schema(
        methods=["GET"],
        summary="Get External Task Log Count",
        operation_id="getHistoricExternalTaskLogsCount",
        tags=["Historic External Task Log"],
        parameters=filter_parameters(ExternalTaskLogFilter),
        responses={200: CountSerializer, **errors(400)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Get External Task Log Count (POST)",
        operation_id="queryHistoricExternalTaskLogsCount",
        tags=["Historic External Task Log"],
        request=OpenApiTypes.OBJECT,
        responses={200: CountSerializer, **errors(400)},
    )
    @action(detail=False, methods=["get", "post"])
    def count(self, request):
        return self.count_entries(request)

    @extend_schema(
        summary="Get External Task Log",
        operation_id="getHistoricExternalTaskLog",
        tags=["Historic External Task Log"],
        responses={200: HistoricExternalTaskLogSerializer, **errors(404)},
    )
    def retrieve(self, request, log_id):
        return self.retrieve_entry(log_id)

    @extend_schema(
        summary="Get External Task Log Error Details",
        operation_id="getErrorDetailsHistoricExternalTaskLog",
        tags=["Historic External Task Log"],
        responses={(200, "text/plain"): str, 204: None, **errors(404)},
    )
    @action(detail=True, methods=["get"], url_path="error-details", url_name="error-details")
    def error_details(self, request, log_id):
        return self.text_response(log_id)
