"""Flowable's external worker API (/external-job-api/…) and the seed's re-skinned version of it
(/api/external-jobs), over the same ExternalTask rows and service functions as the Camunda face.

Mapping (the same on both faces): elementId = activity id, elementName = activity name,
lockOwner = worker id, exceptionMessage = error message, correlationId = the task id (stable
for the task's life), subscriptionId = tenant id, dueDate = when a failed task becomes
available again (its retry timeout), else null. Taskyard's tasks are all BPMN-scoped: the
scope* fields are null, scope filters other than "without" match nothing.
"""

import contextlib
import json
from collections.abc import Mapping

from django.db.models import OuterRef, Q, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from external_tasks import services
from external_tasks.filters import ExternalTaskFilter
from external_tasks.models import ExternalTask, ExternalTaskLog
from external_tasks.serializers import (
    FlowableAcquiredJobSerializer,
    FlowableAcquireSerializer,
    FlowableJobActionSerializer,
    FlowableJobPageSerializer,
    FlowableJobSerializer,
    SeedJobPageSerializer,
    WorkerIdSerializer,
)
from project import clock, tenancy
from project.errors import DomainError, InvalidRequest, NotFound
from project.middleware import FLOWABLE_STATUS_MESSAGES
from project.rest.auth import CanView, CanWork
from project.rest.dates import format_date, format_date_z, parse_date
from project.rest.errors import flatten
from project.rest.paging import order_by
from project.rest.parsers import has_nul, parse_bool, parse_int
from project.schema import flowable_errors
from project.variables import TYPES, from_request

# ---------------------------------------------------------------------------------------------
# Errors: {"message": "Bad request", "exception": "..."} as Flowable's REST API answers them.

_STATUS_MESSAGES = FLOWABLE_STATUS_MESSAGES


def flowable_exception_handler(exc, context):
    if isinstance(exc, services.LockHolderError) and getattr(
        context.get("view"), "flowable_lock_words", False
    ):
        # Flowable's own words for a worker that does not hold the job's lock (the seed API
        # keeps the Camunda sentence, which names the holder).
        status, text = exc.status_code, f"{exc.worker_id} does not hold a lock on the requested job"
    elif isinstance(exc, DomainError):
        status, text = exc.status_code, exc.message
    elif isinstance(exc, exceptions.APIException):
        status, text = exc.status_code, flatten(exc.detail)
    else:
        return None
    response = Response(
        {"message": _STATUS_MESSAGES.get(status, "Error"), "exception": text}, status=status
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="taskyard"'
    return response


class FlowableErrors:
    """Answers errors in Flowable's format instead of Camunda's (the project's default)."""

    def get_exception_handler(self):
        return flowable_exception_handler


# ---------------------------------------------------------------------------------------------
# Variables: Flowable [{name, type, value}] <-> stored Camunda {name: {type, value, valueInfo}}


def variables_out(variables: Mapping | None) -> list[dict]:
    result = []
    for name, variable in (variables or {}).items():
        type_name = (variable.get("type") or "String").lower()
        value = variable.get("value")
        if type_name == "date" and isinstance(value, str):
            value = format_date_z(parse_date(value, name))
        elif type_name == "json" and isinstance(value, str):
            # Camunda clients send Json serialised; Flowable clients expect the JSON itself.
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        result.append({"name": name, "type": type_name, "value": value})
    return result


def variables_in(variables) -> dict:
    """Flowable's variable list as the Camunda-typed dict the services store."""
    if variables is None:
        return {}
    if not isinstance(variables, list):
        raise InvalidRequest("variables must be a list of {name, type, value} objects")
    converted = {}
    for item in variables:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidRequest("every variable needs a string name")
        type_name = item.get("type")
        value = item.get("value")
        if type_name is not None and str(type_name).lower() not in TYPES:
            raise InvalidRequest(f"Unsupported variable type '{type_name}' of '{item['name']}'")
        if type_name is not None and str(type_name).lower() == "date" and value is not None:
            value = format_date(parse_date(value, item["name"]))
        if (
            type_name is not None
            and str(type_name).lower() == "json"
            and isinstance(value, str)
            and value.strip()[:1] not in {"{", "["}
        ):
            raise InvalidRequest(f"Variable '{item['name']}' of type json is not valid JSON")
        converted[item["name"]] = {"value": value, "type": type_name}
    return from_request(converted)


# ---------------------------------------------------------------------------------------------
# Job bodies


def with_last_event(queryset):
    """Annotate each task with its latest log event, to tell a retry wait from a worker lock."""
    latest = ExternalTaskLog.objects.filter(task_id=OuterRef("pk")).order_by("-timestamp", "-id")
    return queryset.annotate(last_event=Subquery(latest.values("event")[:1]))


def due_date(task):
    last_event = getattr(task, "last_event", None)
    expires = task.lock_expiration_time
    if last_event == ExternalTaskLog.Event.FAILED and expires and expires > clock.now():
        return expires
    return None


def _retries(task) -> int:
    return task.retries if task.retries is not None else services.DEFAULT_RETRIES


def flowable_job(task, request=None) -> dict:
    """Flowable's ExternalWorkerJobResponse."""
    url = None
    if request is not None:
        url = request.build_absolute_uri(f"/external-job-api/jobs/{task.id}")
    return {
        "id": task.id,
        "url": url,
        "correlationId": task.id,
        "processInstanceId": task.process_instance_id,
        "processDefinitionId": task.process_definition_id,
        "executionId": task.execution_id,
        "scopeId": None,
        "subScopeId": None,
        "scopeDefinitionId": None,
        "scopeType": None,
        "elementId": task.activity_id,
        "elementName": task.activity_name,
        "retries": _retries(task),
        "exceptionMessage": task.error_message,
        "dueDate": format_date_z(due_date(task)),
        "createTime": format_date_z(task.create_time),
        "tenantId": task.tenant_id,
        "lockOwner": task.worker_id,
        "lockExpirationTime": format_date_z(task.lock_expiration_time),
    }


def seed_job(task, include_variables=True) -> dict:
    """The seed's job object, keys in the seed's order."""
    body = {"id": task.id}
    if include_variables:
        body["variables"] = variables_out(task.variables)
    body |= {
        "subscriptionId": task.tenant_id,
        "tenantId": task.tenant_id,
        "executionId": task.execution_id,
        "dueDate": format_date_z(due_date(task)),
        "elementName": task.activity_name,
        "retries": _retries(task),
        "topic": task.topic_name,
        "exceptionMessage": task.error_message,
        "correlationId": task.id,
        "lockOwner": task.worker_id,
        "elementId": task.activity_id,
        "lockExpirationTime": format_date_z(task.lock_expiration_time),
        "createTime": format_date_z(task.create_time),
        "processInstanceId": task.process_instance_id,
        "processDefinitionId": task.process_definition_id,
        "links": {"empty": True},
    }
    return body


def seed_page(items: list[dict]) -> dict:
    return {"links": {"empty": not items}, "content": items}


# ---------------------------------------------------------------------------------------------
# Request values


def _body(request) -> Mapping:
    data = request.data
    if data is None or data == {}:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidRequest("The request body must be a JSON object")
    return data


def acquire(request) -> list[ExternalTask]:
    body = FlowableAcquireSerializer.read(request)
    if body["lockDuration"] == 0:
        raise InvalidRequest("lockDuration must be greater than 0")
    # numberOfRetries: Flowable retries acquisition this many times under optimistic-lock
    # contention; SKIP LOCKED claims never conflict, so it is validated and otherwise unused.
    if body["scopeType"] not in (None, "bpmn"):
        return []
    topic = services.TopicRequest(body["topic"], body["lockDuration"])
    return services.fetch_and_lock(
        request.user, body["workerId"], body["numberOfTasks"] or 1, [topic]
    )


def complete_job(request, task_id):
    body = FlowableJobActionSerializer.read(request)
    variables = variables_in(body["variables"])
    services.complete(request.user, task_id, body["workerId"], variables)
    return Response(status=204)


def bpmn_error_job(request, task_id):
    body = FlowableJobActionSerializer.read(request)
    variables = variables_in(body["variables"])
    services.handle_bpmn_error(
        request.user, task_id, body["workerId"], body["errorCode"], None, variables
    )
    return Response(status=204)


def fail_job(request, task_id):
    body = FlowableJobActionSerializer.read(request)
    services.handle_failure(
        request.user,
        task_id,
        body["workerId"],
        error_message=body["errorMessage"],
        error_details=body["errorDetails"],
        retries=body["retries"],
        retry_timeout_ms=body["retryTimeout"],
    )
    return Response(status=204)


def _visible_task(user, task_id) -> ExternalTask:
    if has_nul(task_id):  # no such id can exist, and PostgreSQL would refuse the query
        raise NotFound(f"Could not find external worker job with id {task_id!r}.")
    try:
        return with_last_event(ExternalTask.objects.visible_to(user)).get(pk=task_id)
    except ExternalTask.DoesNotExist:
        raise NotFound(f"Could not find external worker job with id '{task_id}'.") from None


# ---------------------------------------------------------------------------------------------
# Queries shared by GET /external-job-api/jobs and GET /api/external-jobs

# Flowable/seed parameter -> ExternalTaskFilter parameter
_FILTER_NAMES = {
    "id": "externalTaskId",
    "processInstanceId": "processInstanceId",
    "executionId": "executionId",
    "processDefinitionId": "processDefinitionId",
    "elementId": "activityId",
    "elementName": "activityName",
    "topic": "topicName",
    "exceptionMessage": "errorMessage",
    "tenantId": "tenantId",
    "tenantIdLike": "tenantIdLike",
    "withException": "withErrorMessage",
    "locked": "locked",
    "unlocked": "notLocked",
    "withoutTenantId": "withoutTenantId",
}
_FLAGS = {
    "withException",
    "locked",
    "unlocked",
    "withoutTenantId",
    "withoutProcessInstanceId",
    "withoutScopeId",
    "withoutScopeType",
    "filterByCurrentSubscription",
}
_NO_SCOPE = {"scopeId", "subScopeId", "scopeDefinitionId", "scopeType"}

SORT_FIELDS = {
    "id": "id",
    "dueDate": "lock_expiration_time",
    "createTime": "create_time",
    "executionId": "execution_id",
    "processInstanceId": "process_instance_id",
    "retries": "retries",
    "tenantId": "tenant_id",
}


def query_tasks(user, params, allowed: set[str]):
    data = {}
    extra = Q()
    for name in params:
        if name not in allowed:
            continue
        value = params.get(name)
        if name in _FLAGS:
            if not parse_bool(value, name):
                continue
            if name == "withoutProcessInstanceId":
                extra &= Q(process_instance_id__isnull=True)
            elif name == "filterByCurrentSubscription":
                tenants = tenancy.tenant_ids(user)
                if tenants is not None:
                    extra &= Q(tenant_id__in=sorted(tenants))
            elif name in _FILTER_NAMES:
                data[_FILTER_NAMES[name]] = True
            continue
        if name in _NO_SCOPE:
            if value not in (None, ""):
                extra &= Q(pk__in=[])
            continue
        data[_FILTER_NAMES[name]] = value
    visible = ExternalTask.objects.visible_to(user)
    return with_last_event(ExternalTaskFilter(data, queryset=visible).filtered().filter(extra))


def _query_parameters(names) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(name, OpenApiTypes.BOOL if name in _FLAGS else OpenApiTypes.STR)
        for name in sorted(names)
    ]


FLOWABLE_PARAMS = (set(_FILTER_NAMES) | _FLAGS | _NO_SCOPE) - {
    "topic",
    "filterByCurrentSubscription",
}
FLOWABLE_LIST_PARAMETERS = [
    *_query_parameters(FLOWABLE_PARAMS),
    OpenApiParameter("sort", OpenApiTypes.STR, enum=sorted(SORT_FIELDS)),
    OpenApiParameter("order", OpenApiTypes.STR, enum=["asc", "desc"]),
    OpenApiParameter("start", OpenApiTypes.INT, description="Index of the first job"),
    OpenApiParameter("size", OpenApiTypes.INT, description="Number of jobs at most (10)"),
]


SEED_PARAMS = {
    "id",
    "executionId",
    "processInstanceId",
    "processDefinitionId",
    "elementId",
    "elementName",
    "topic",
    "withException",
    "exceptionMessage",
    "locked",
    "unlocked",
    "filterByCurrentSubscription",
}
SEED_LIST_PARAMETERS = [
    *_query_parameters(SEED_PARAMS),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Index of the first job"),
    OpenApiParameter("count", OpenApiTypes.INT, description="Number of jobs at most (10)"),
]


# ---------------------------------------------------------------------------------------------
# Flowable face: /external-job-api/


def _job_action(summary: str, operation_id: str, tags: list[str]):
    """The schema of a lock holder's POST on one acquired job: a body, 204, or 400/404."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=tags,
        request=FlowableJobActionSerializer,
        responses={204: None, **flowable_errors(400, 404)},
    )


FLOWABLE_TAGS = ["Flowable external worker"]


class FlowableViewSet(FlowableErrors, viewsets.ViewSet):
    """Flowable's external worker API. Its paths do not nest under one collection (acquire/jobs,
    unacquire/jobs, jobs), so the ViewSet is routed without a prefix and each action carries
    its whole path."""

    flowable_lock_words = True

    permission_classes = [CanView]

    @extend_schema(
        summary="Acquire external worker jobs (Flowable)",
        operation_id="flowableAcquireJobs",
        tags=FLOWABLE_TAGS,
        request=FlowableAcquireSerializer,
        responses={200: FlowableAcquiredJobSerializer(many=True), **flowable_errors(400)},
    )
    @action(detail=False, methods=["post"], url_path="acquire/jobs", permission_classes=[CanWork])
    def acquire(self, request):
        tasks = acquire(request)
        return Response(
            [flowable_job(t, request) | {"variables": variables_out(t.variables)} for t in tasks]
        )

    @_job_action("Complete an acquired job (Flowable)", "flowableCompleteJob", FLOWABLE_TAGS)
    @action(
        detail=False,
        methods=["post"],
        url_path="acquire/jobs/<str:task_id>/complete",
        permission_classes=[CanWork],
    )
    def complete(self, request, task_id):
        return complete_job(request, task_id)

    @_job_action(
        "Raise a BPMN error for an acquired job (Flowable)", "flowableBpmnErrorJob", FLOWABLE_TAGS
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="acquire/jobs/<str:task_id>/bpmnError",
        permission_classes=[CanWork],
    )
    def bpmn_error(self, request, task_id):
        return bpmn_error_job(request, task_id)

    @_job_action("Fail an acquired job (Flowable)", "flowableFailJob", FLOWABLE_TAGS)
    @action(
        detail=False,
        methods=["post"],
        url_path="acquire/jobs/<str:task_id>/fail",
        permission_classes=[CanWork],
    )
    def fail(self, request, task_id):
        return fail_job(request, task_id)

    @_job_action(
        "End an acquired CMMN job (Flowable; Taskyard's jobs are all BPMN: 400)",
        "flowableCmmnTerminateJob",
        FLOWABLE_TAGS,
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="acquire/jobs/<str:task_id>/cmmnTerminate",
        permission_classes=[CanWork],
    )
    def cmmn_terminate(self, request, task_id):
        variables_in(_body(request).get("variables"))
        task = _visible_task(request.user, task_id)
        raise InvalidRequest(
            f"External worker job {task.id} is a BPMN job; cmmnTerminate applies only to CMMN jobs"
        )

    @extend_schema(
        summary="Give back all jobs a worker holds (Flowable)",
        operation_id="flowableUnacquireJobs",
        tags=FLOWABLE_TAGS,
        request=WorkerIdSerializer,
        responses={204: None, **flowable_errors(400)},
    )
    @action(detail=False, methods=["post"], url_path="unacquire/jobs", permission_classes=[CanWork])
    def unacquire(self, request):
        services.release(request.user, WorkerIdSerializer.read(request)["workerId"])
        return Response(status=204)

    @extend_schema(
        summary="Give back one acquired job (Flowable)",
        operation_id="flowableUnacquireJob",
        tags=FLOWABLE_TAGS,
        request=WorkerIdSerializer,
        responses={204: None, **flowable_errors(400, 404)},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="unacquire/jobs/<str:task_id>",
        permission_classes=[CanWork],
    )
    def unacquire_one(self, request, task_id):
        services.release(request.user, WorkerIdSerializer.read(request)["workerId"], task_id)
        return Response(status=204)

    @extend_schema(
        summary="List external worker jobs (Flowable)",
        operation_id="flowableListJobs",
        tags=FLOWABLE_TAGS,
        parameters=FLOWABLE_LIST_PARAMETERS,
        request=None,
        responses={200: FlowableJobPageSerializer, **flowable_errors(400)},
    )
    @action(detail=False, methods=["get"], url_path="jobs")
    def jobs(self, request):
        return Response(flowable_page(request))

    @extend_schema(
        summary="Get one external worker job (Flowable)",
        operation_id="flowableGetJob",
        tags=FLOWABLE_TAGS,
        request=None,
        responses={200: FlowableJobSerializer, **flowable_errors(404)},
    )
    @action(detail=False, methods=["get"], url_path="jobs/<str:task_id>")
    def job(self, request, task_id):
        return Response(flowable_job(_visible_task(request.user, task_id), request))


def flowable_page(request) -> dict:
    """Flowable's DataResponse for GET /jobs: filters, sort and order, start and size."""
    params = request.query_params
    queryset = query_tasks(request.user, params, FLOWABLE_PARAMS)
    sort = params.get("sort") or "id"
    order = params.get("order") or "asc"
    if sort not in SORT_FIELDS:
        raise InvalidRequest(
            f"Value for param 'sort' is not valid, '{sort}' is not a valid property"
        )
    if order not in {"asc", "desc"}:
        raise InvalidRequest(
            f"Value for param 'order' is not valid : '{order}', must be 'asc' or 'desc'"
        )
    # Nulls sort as the smallest value on every database, as on the Camunda face.
    ordering = order_by([{"sortBy": sort, "sortOrder": order}], SORT_FIELDS)
    start = parse_int(params.get("start") or 0, "start", minimum=0)
    size = parse_int(params.get("size") or 10, "size", minimum=0)
    total = queryset.count()
    rows = list(queryset.order_by(*ordering)[start : start + size])
    return {
        "data": [flowable_job(t, request) for t in rows],
        "total": total,
        "start": start,
        "sort": sort,
        "order": order,
        "size": len(rows),
    }


SEED_TAGS = ["External jobs (seed)"]


class SeedViewSet(FlowableErrors, viewsets.ViewSet):
    """The seed's "acquire external worker jobs" API: GET lists, POST acquires, and the lock
    holder completes, fails or raises a BPMN error. Errors in Flowable's format."""

    permission_classes = [CanView]
    lookup_url_kwarg = "task_id"
    lookup_value_converter = "str"

    def get_permissions(self):
        # POST on the collection (bound by FaceRouter, so not an @action with its own
        # permission_classes) acquires: a worker's call.
        return [CanWork()] if self.action == "acquire" else super().get_permissions()

    @extend_schema(
        summary="List external worker jobs (seed API)",
        operation_id="seedListExternalJobs",
        tags=SEED_TAGS,
        parameters=SEED_LIST_PARAMETERS,
        request=None,
        responses={200: SeedJobPageSerializer, **flowable_errors(400)},
    )
    def page(self, request):
        params = request.query_params
        queryset = query_tasks(request.user, params, SEED_PARAMS)
        offset = parse_int(params.get("offset") or 0, "offset", minimum=0)
        count = parse_int(params.get("count") or 10, "count", minimum=0)
        rows = queryset.order_by("create_time", "id")[offset : offset + count]
        return Response(seed_page([seed_job(t, include_variables=False) for t in rows]))

    @extend_schema(
        summary="Acquire external worker jobs (seed API)",
        operation_id="seedAcquireExternalJobs",
        tags=SEED_TAGS,
        request=FlowableAcquireSerializer,
        responses={200: SeedJobPageSerializer, **flowable_errors(400)},
    )
    def acquire(self, request):
        tasks = acquire(request)
        return Response(seed_page([seed_job(t) for t in tasks]))

    @_job_action("Complete an acquired job (seed API)", "seedCompleteExternalJob", SEED_TAGS)
    @action(detail=True, methods=["post"], permission_classes=[CanWork])
    def complete(self, request, task_id):
        return complete_job(request, task_id)

    @_job_action("Fail an acquired job (seed API)", "seedFailExternalJob", SEED_TAGS)
    @action(detail=True, methods=["post"], permission_classes=[CanWork])
    def fail(self, request, task_id):
        return fail_job(request, task_id)

    @_job_action(
        "Raise a BPMN error for an acquired job (seed API)", "seedBpmnErrorExternalJob", SEED_TAGS
    )
    @action(detail=True, methods=["post"], url_path="bpmnError", permission_classes=[CanWork])
    def bpmn_error(self, request, task_id):
        return bpmn_error_job(request, task_id)
