"""Camunda 7 REST resources /job and /job-definition, plus the /job/create producer extension.

One ViewSet per resource (routed in jobs/api_urls.py): the GET list, the POST query, the count
and the detail are its actions, and every Camunda operation is an `@action` with Camunda's
`url_path`, so a resource's whole API reads in one class. Actions parse and validate Camunda's
parameters, call one function of jobs.services and answer Camunda's shapes and statuses.
Scoping happens in the QuerySet (`visible_to`), so another tenant's job answers 404 exactly
like a missing one.
"""

import re
from collections.abc import Mapping

from django.db.models import Q
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs import runner, services
from jobs.filters import JOB_LOG_SORT_KEYS, JobDefinitionFilter, JobFilter, JobLogFilter
from jobs.models import Job, JobDefinition, JobLog
from jobs.serializers import (
    CountSerializer,
    CreatedJobSerializer,
    CreateJobRequest,
    DuedateRequest,
    HistoricJobLogSerializer,
    JobDefinitionPriorityRequest,
    JobDefinitionSerializer,
    JobDefinitionsSuspensionStateRequest,
    JobDefinitionSuspensionStateRequest,
    JobSerializer,
    JobSuspensionStateRequest,
    PriorityRequest,
    RetriesRequest,
    SetJobRetriesRequest,
    SuspensionStateRequest,
)
from project import batches, clock
from project.audit import MAX_IDS
from project.batch_api import BatchSerializer, batch_dto
from project.errors import BadUserRequest, DomainError, InvalidRequest, NotFound
from project.rest.auth import CanDelete, CanOperate, CanView
from project.rest.dates import format_date, parse_date
from project.rest.history import HistoricLogViewSet
from project.rest.paging import order_by, page, sorting_from_body, sorting_from_query
from project.rest.parsers import json_body, parse_bool, parse_int
from project.schema import errors, filter_parameters, paging_parameters, sorting_parameters

# ---------------------------------------------------------------------------------------------
# Request helpers


def _filtered(request, filter_class, queryset):
    """Filter a scoped queryset by GET parameters or a POST body, with the same FilterSet."""
    if request.method == "GET":
        data = filter_class.data_from_query(request.query_params)
    else:
        body = json_body(request)
        unknown = sorted(set(body) - set(filter_class.base_filters) - {"sorting"})
        if unknown:
            raise InvalidRequest(f"Unknown query parameter(s) in the request body: {unknown}")
        data = filter_class.data_from_body(body)
    return filter_class(data, queryset=queryset).filtered()


def _sorting(request) -> list[dict]:
    if request.method == "GET":
        return sorting_from_query(request.query_params)
    return sorting_from_body(json_body(request))


def _list(request, filter_class, queryset, serializer_class):
    # Validate sorting before running anything, so a bad sort key is a 400 even on no rows.
    expressions = order_by(_sorting(request), filter_class.sort_keys)
    queryset = _filtered(request, filter_class, queryset).order_by(*expressions)
    return Response(serializer_class(page(queryset, request.query_params), many=True).data)


def _count(request, filter_class, queryset):
    if request.method != "GET":
        # Sorting "does not have an effect for the count endpoint", but it must still be valid.
        order_by(_sorting(request), filter_class.sort_keys)
    return Response({"count": _filtered(request, filter_class, queryset).count()})


def _int(body: Mapping, name: str, *, java_type: str = "int", required: bool = True):
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, float):
        raise InvalidRequest(f"Cannot convert value {value} of '{name}' to java type {java_type}")
    return parse_int(value, name, java_type=java_type)


def _bool(body: Mapping, name: str, *, required: bool = False, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"'{name}' is required (true or false)")
        return default
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return parse_bool(value, name)
    if not isinstance(value, bool):
        raise InvalidRequest(f"Cannot convert value '{value}' of '{name}' to a boolean")
    return value


def _date(body: Mapping, name: str):
    value = body.get(name)
    return None if value in (None, "") else parse_date(value, name)


def _string(body: Mapping, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string, got {value!r}")
    return value


def _retries(body: Mapping) -> int:
    if body.get("retries") is None:
        raise InvalidRequest(
            "The number of job retries must be a non-negative Integer, but 'null' has been "
            "provided."
        )
    retries = _int(body, "retries")
    if retries < 0:
        raise InvalidRequest(
            "The number of job retries must be a non-negative Integer, but "
            f"'{retries}' has been provided."
        )
    return retries


def _only(body: Mapping, allowed: set[str]) -> Mapping:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown property(ies) in the request body: {unknown}")
    return body


def _execution_date(body: Mapping):
    """A future `executionDate` schedules the change; a past one (or none) applies it now."""
    execution_date = _date(body, "executionDate")
    if execution_date is not None and execution_date <= clock.now():
        return None
    return execution_date


def _no_content():
    return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------
# /job


def _job_query_parameters():
    return [
        OpenApiParameter(name, OpenApiTypes.STR, description=f"Camunda's `{name}` parameter")
        for name in JobFilter.base_filters
    ] + [
        OpenApiParameter("sortBy", OpenApiTypes.STR, enum=list(JobFilter.sort_keys)),
        OpenApiParameter("sortOrder", OpenApiTypes.STR, enum=["asc", "desc"]),
        OpenApiParameter("firstResult", OpenApiTypes.INT),
        OpenApiParameter("maxResults", OpenApiTypes.INT),
    ]


class CamundaViewSet(viewsets.ViewSet):
    """Reads need a viewer, each operation names its own permission; ids are path segments."""

    # A Camunda id is any string without a slash: the detail route must not swallow
    # "<id>/retries" (the router's default converter, `path`, would).
    lookup_value_converter = "str"
    read_actions = frozenset({"list", "query", "count", "retrieve"})

    def get_permissions(self):
        if self.action == "destroy":
            return [CanDelete()]
        if self.action in self.read_actions or self.action is None:
            return [CanView()]
        return [CanOperate()]


class JobViewSet(CamundaViewSet):
    """Camunda's /job resource."""

    lookup_url_kwarg = "job_id"
    read_actions = CamundaViewSet.read_actions | {"stacktrace"}

    def _jobs(self):
        return Job.objects.visible_to(self.request.user)

    @extend_schema(
        summary="Get Jobs",
        operation_id="getJobs",
        tags=["Job"],
        parameters=_job_query_parameters(),
        responses={200: JobSerializer(many=True), **errors(400)},
    )
    def list(self, request):
        return _list(request, JobFilter, self._jobs(), JobSerializer)

    @extend_schema(
        summary="Get Jobs (POST)",
        operation_id="queryJobs",
        tags=["Job"],
        request=OpenApiTypes.OBJECT,
        responses={200: JobSerializer(many=True), **errors(400)},
    )
    def query(self, request):
        return _list(request, JobFilter, self._jobs(), JobSerializer)

    @extend_schema(
        methods=["GET"],
        summary="Get Job Count",
        operation_id="getJobsCount",
        tags=["Job"],
        responses={200: CountSerializer, **errors(400)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Get Job Count (POST)",
        operation_id="queryJobsCount",
        tags=["Job"],
        request=OpenApiTypes.OBJECT,
        responses={200: CountSerializer, **errors(400)},
    )
    @action(detail=False, methods=["get", "post"])
    def count(self, request):
        return _count(request, JobFilter, self._jobs())

    @extend_schema(
        summary="Get Job",
        operation_id="getJob",
        tags=["Job"],
        responses={200: JobSerializer, **errors(404)},
    )
    def retrieve(self, request, job_id):
        return Response(JobSerializer(services.get_job(request.user, job_id)).data)

    @extend_schema(
        summary="Delete Job",
        operation_id="deleteJob",
        tags=["Job"],
        responses={204: None, **errors(404)},
    )
    def destroy(self, request, job_id):
        job = services.get_job(request.user, job_id)
        services.delete(request.user, [job.id])
        return _no_content()

    @extend_schema(
        summary="Get Exception Stacktrace",
        operation_id="getStacktrace",
        tags=["Job"],
        responses={(200, "text/plain"): str, 204: None, **errors(404)},
    )
    @action(detail=True, methods=["get"])
    def stacktrace(self, request, job_id):
        job = services.get_job(request.user, job_id)
        if job.exception_stacktrace is None:
            # Camunda answers an empty 204 when the job never failed.
            return HttpResponse(status=204)
        return HttpResponse(job.exception_stacktrace, content_type="text/plain; charset=utf-8")

    @extend_schema(
        summary="Set Job Retries",
        operation_id="setJobRetries",
        tags=["Job"],
        request=RetriesRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"])
    def retries(self, request, job_id):
        body = _only(json_body(request), {"retries", "dueDate"})
        retries = _retries(body)
        due_date = _date(body, "dueDate")
        job = services.get_job(request.user, job_id)
        services.set_retries(request.user, [job.id], retries, due_date=due_date)
        return _no_content()

    @extend_schema(
        summary="Activate/Suspend Job By Id",
        operation_id="updateJobSuspensionState",
        tags=["Job"],
        responses={204: None, **errors(400, 404)},
        request=SuspensionStateRequest,
    )
    @action(detail=True, methods=["put"])
    def suspended(self, request, job_id):
        body = _only(json_body(request), {"suspended"})
        suspended = _bool(body, "suspended", required=True)
        job = services.get_job(request.user, job_id)
        services.set_suspended(request.user, [job.id], suspended)
        return _no_content()

    @extend_schema(
        summary="Set Job Due Date",
        operation_id="setJobDuedate",
        tags=["Job"],
        request=DuedateRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"])
    def duedate(self, request, job_id):
        body = _only(json_body(request), {"duedate", "cascade"})
        due_date = _date(body, "duedate")
        cascade = _bool(body, "cascade")
        job = services.get_job(request.user, job_id)
        services.set_due_date(request.user, [job.id], due_date, cascade=cascade)
        return _no_content()

    @extend_schema(
        summary="Recalculate Job Due Date",
        operation_id="recalculateDuedate",
        tags=["Job"],
        parameters=[OpenApiParameter("creationDateBased", OpenApiTypes.BOOL)],
        request=None,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["post"], url_path="duedate/recalculate")
    def recalculate_duedate(self, request, job_id):
        value = request.query_params.get("creationDateBased")
        based_on_creation = True if value in (None, "") else parse_bool(value, "creationDateBased")
        services.recalculate_due_date(request.user, job_id, creation_date_based=based_on_creation)
        return _no_content()

    @extend_schema(
        summary="Set Job Priority",
        operation_id="setJobPriority",
        tags=["Job"],
        request=PriorityRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"])
    def priority(self, request, job_id):
        body = _only(json_body(request), {"priority"})
        priority = _int(body, "priority", java_type="long")
        job = services.get_job(request.user, job_id)
        services.set_priority(request.user, [job.id], priority)
        return _no_content()

    @extend_schema(
        summary="Execute Job",
        operation_id="executeJob",
        tags=["Job"],
        request=None,
        responses={204: None, **errors(400, 404, 500)},
    )
    @action(detail=True, methods=["post"])
    def execute(self, request, job_id):
        try:
            runner.execute_now(request.user, job_id)
        except services.JobExecutionFailed as failure:
            # Camunda answers 500 with the job's exception; the failure is already recorded.
            raise DomainError(
                failure.message, status_code=500, error_type="ProcessEngineException"
            ) from None
        return _no_content()

    @extend_schema(
        summary="Set Job Retries Async (POST)",
        operation_id="setJobRetriesAsyncOperation",
        tags=["Job"],
        request=SetJobRetriesRequest,
        responses={200: BatchSerializer, **errors(400, 404)},
    )
    @action(detail=False, methods=["post"], url_path="retries", url_name="retries-batch")
    def retries_batch(self, request):
        """As in Camunda: a set-job-retries batch over the jobs named or matched now (their ids
        are snapshotted), answered at once; the job executor runs it in chunks."""
        body = _only(json_body(request), {"retries", "jobIds", "jobQuery", "dueDate"})
        retries = _retries(body)
        due_date = _date(body, "dueDate")
        job_ids, job_query = _batch_selectors(body)
        selection = _batch_selection(self._jobs(), job_ids, job_query)
        batch = batches.start(
            request.user,
            "set-job-retries",
            selection,
            {"retries": retries, "dueDate": format_date(due_date)},
            filter={"jobIds": (job_ids or [])[:MAX_IDS], "jobQuery": job_query},
            source="api",
        )
        return Response(batch_dto(batch))

    @extend_schema(
        summary="Activate/Suspend Jobs",
        operation_id="updateSuspensionStateBy",
        tags=["Job"],
        request=JobSuspensionStateRequest,
        responses={204: None, **errors(400)},
    )
    @action(detail=False, methods=["put"], url_path="suspended", url_name="suspended-by")
    def suspended_by(self, request):
        body = _only(
            json_body(request), {*JOB_SELECTORS, "processDefinitionWithoutTenantId", "suspended"}
        )
        suspended = _bool(body, "suspended", required=True)
        selection = services.jobs_selected_by(
            **{field: _string(body, name) for name, field in JOB_SELECTORS.items()},
            process_definition_without_tenant_id=_bool(body, "processDefinitionWithoutTenantId"),
        )
        services.set_suspended(
            request.user,
            selection,
            suspended,
            filter={name: body[name] for name in JOB_SELECTORS if body.get(name) is not None},
        )
        return _no_content()

    @extend_schema(
        summary="Create jobs (Taskyard extension, not part of Camunda's API)",
        operation_id="createJobs",
        tags=["Job"],
        description="Takes one job or a list of jobs: handler (dotted path of a callable), "
        "payload ({args, kwargs}), type (timer|message; timer when dueDate is set), dueDate, "
        "retries (default 3), priority, queueName (the runjobs queue; default: default) and the "
        "process fields. Answers the created jobs.",
        request=CreateJobRequest,
        responses={200: CreatedJobSerializer(many=True), **errors(400)},
    )
    @action(detail=False, methods=["post"], url_path="create")
    def create_jobs(self, request):
        data = request.data
        if isinstance(data, list):
            if not data:
                raise InvalidRequest("The list of jobs to create is empty")
            specs = [_job_spec(item, index) for index, item in enumerate(data)]
        elif isinstance(data, Mapping) and data:
            specs = [_job_spec(data, None)]
        else:
            raise InvalidRequest("The request body must be a job object or a list of job objects")
        jobs = services.create_jobs(request.user, specs)
        many = isinstance(data, list)
        serializer = CreatedJobSerializer(jobs if many else jobs[0], many=many)
        return Response(serializer.data, status=status.HTTP_200_OK)


def _batch_selectors(body: Mapping) -> tuple[list[str] | None, Mapping | None]:
    """POST /job/retries: `jobIds` and/or `jobQuery`, at least one of them."""
    job_ids = body.get("jobIds")
    job_query = body.get("jobQuery")
    if job_ids is not None and (
        not isinstance(job_ids, list) or not all(isinstance(i, str) for i in job_ids)
    ):
        raise InvalidRequest("'jobIds' must be a list of job ids")
    if job_query is not None and not isinstance(job_query, Mapping):
        raise InvalidRequest("'jobQuery' must be a job query object")
    if job_ids is None and job_query is None:
        raise InvalidRequest("Either jobIds or jobQuery has to be provided")
    return job_ids, job_query


def _batch_selection(visible, job_ids, job_query):
    """The visible jobs named by `job_ids` or matched by `job_query`."""
    condition = Q(pk__in=[])
    if job_ids:
        # As on the external task face: an unknown (or other tenant's) id is a 404 and nothing
        # changes, rather than a batch that silently does less than asked.
        found = set(visible.filter(id__in=job_ids).values_list("id", flat=True))
        missing = [job_id for job_id in job_ids if job_id not in found]
        if missing:
            raise NotFound(f"Job with id {missing[0]} does not exist")
        condition |= Q(id__in=job_ids)
    if job_query is not None:
        unknown = sorted(set(job_query) - set(JobFilter.base_filters) - {"sorting"})
        if unknown:
            raise InvalidRequest(f"Unknown query parameter(s) in jobQuery: {unknown}")
        sorting_from_body(job_query)
        matched = JobFilter(JobFilter.data_from_body(job_query), queryset=visible).filtered()
        condition |= Q(id__in=matched.values("id"))
    selection = visible.filter(condition)
    if not job_ids and not selection.exists():
        raise BadUserRequest("jobIds is empty")
    return selection


JOB_SELECTORS = {
    "jobDefinitionId": "job_definition_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "processDefinitionTenantId": "process_definition_tenant_id",
}


_HANDLER_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
CREATE_FIELDS = {
    "handler": "handler",
    "payload": "payload",
    "type": "type",
    "dueDate": "due_date",
    "retries": "retries",
    "priority": "priority",
    "queueName": "queue_name",
    "jobDefinitionId": "job_definition_id",
    "processInstanceId": "process_instance_id",
    "executionId": "execution_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "activityId": "activity_id",
    "tenantId": "tenant_id",
}


def _job_spec(item, index: int) -> dict:
    where = f"job {index}: " if index is not None else ""
    if not isinstance(item, Mapping):
        raise InvalidRequest(f"{where}each job must be a JSON object")
    unknown = sorted(set(item) - set(CREATE_FIELDS))
    if unknown:
        raise InvalidRequest(f"{where}unknown job field(s) {unknown}")
    handler = item.get("handler")
    if not isinstance(handler, str) or not _HANDLER_RE.match(handler):
        raise InvalidRequest(
            f"{where}'handler' must be the dotted path of a callable, e.g. myapp.tasks.send_mail"
        )
    payload = item.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping) or set(payload) - {"args", "kwargs"}:
        raise InvalidRequest(f"{where}'payload' must be an object with 'args' and/or 'kwargs'")
    if not isinstance(payload.get("args", []), list):
        raise InvalidRequest(f"{where}'payload.args' must be a list")
    if not isinstance(payload.get("kwargs", {}), Mapping):
        raise InvalidRequest(f"{where}'payload.kwargs' must be an object")
    spec = {"handler": handler, "payload": dict(payload)}
    job_type = _string(item, "type")
    if job_type is not None:
        if job_type not in Job.Type.values:
            raise InvalidRequest(f"{where}'type' must be one of {Job.Type.values}")
        spec["type"] = job_type
    spec["due_date"] = _date(item, "dueDate")
    if item.get("retries") is not None:
        spec["retries"] = _retries(item)
    spec["priority"] = _int(item, "priority", java_type="long", required=False)
    for name, field in CREATE_FIELDS.items():
        if field not in spec and name not in {"handler", "payload", "type"}:
            spec[field] = _string(item, name)
    return spec


DEFINITION_SELECTORS = {
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "processDefinitionTenantId": "process_definition_tenant_id",
}


# ---------------------------------------------------------------------------------------------
# /job-definition


class JobDefinitionViewSet(CamundaViewSet):
    """Camunda's /job-definition resource."""

    lookup_url_kwarg = "job_definition_id"

    def _definitions(self):
        return JobDefinition.objects.visible_to(self.request.user)

    @extend_schema(
        summary="Get Job Definitions",
        operation_id="getJobDefinitions",
        tags=["Job Definition"],
        responses={200: JobDefinitionSerializer(many=True), **errors(400)},
    )
    def list(self, request):
        return _list(request, JobDefinitionFilter, self._definitions(), JobDefinitionSerializer)

    @extend_schema(
        summary="Get Job Definitions (POST)",
        operation_id="queryJobDefinitions",
        tags=["Job Definition"],
        request=OpenApiTypes.OBJECT,
        responses={200: JobDefinitionSerializer(many=True), **errors(400)},
    )
    def query(self, request):
        return _list(request, JobDefinitionFilter, self._definitions(), JobDefinitionSerializer)

    @extend_schema(
        methods=["GET"],
        summary="Get Job Definition Count",
        operation_id="getJobDefinitionsCount",
        tags=["Job Definition"],
        responses={200: CountSerializer, **errors(400)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Get Job Definition Count (POST)",
        operation_id="queryJobDefinitionsCount",
        tags=["Job Definition"],
        request=OpenApiTypes.OBJECT,
        responses={200: CountSerializer, **errors(400)},
    )
    @action(detail=False, methods=["get", "post"])
    def count(self, request):
        return _count(request, JobDefinitionFilter, self._definitions())

    @extend_schema(
        summary="Get Job Definition",
        operation_id="getJobDefinition",
        tags=["Job Definition"],
        responses={200: JobDefinitionSerializer, **errors(404)},
    )
    def retrieve(self, request, job_definition_id):
        definition = services.get_job_definition(request.user, job_definition_id)
        return Response(JobDefinitionSerializer(definition).data)

    @extend_schema(
        summary="Activate/Suspend Job Definition By Id",
        operation_id="updateSuspensionStateJobDefinition",
        tags=["Job Definition"],
        request=JobDefinitionSuspensionStateRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"])
    def suspended(self, request, job_definition_id):
        body = _only(json_body(request), {"suspended", "includeJobs", "executionDate"})
        change = _suspension_change(body)
        definition = services.get_job_definition(request.user, job_definition_id)
        _suspend_definitions(request.user, [definition.id], change)
        return _no_content()

    @extend_schema(
        summary="Activate/Suspend Job Definitions",
        operation_id="updateSuspensionStateJobDefinitions",
        tags=["Job Definition"],
        request=JobDefinitionsSuspensionStateRequest,
        responses={204: None, **errors(400)},
    )
    @action(detail=False, methods=["put"], url_path="suspended", url_name="suspended-by")
    def suspended_by(self, request):
        body = _only(
            json_body(request),
            {
                *DEFINITION_SELECTORS,
                "processDefinitionWithoutTenantId",
                "suspended",
                "includeJobs",
                "executionDate",
            },
        )
        change = _suspension_change(body)
        selection = services.job_definitions_selected_by(
            **{field: _string(body, name) for name, field in DEFINITION_SELECTORS.items()},
            process_definition_without_tenant_id=_bool(body, "processDefinitionWithoutTenantId"),
        )
        selected = {name: body[name] for name in DEFINITION_SELECTORS if body.get(name) is not None}
        _suspend_definitions(request.user, selection, change, filter=selected)
        return _no_content()

    @extend_schema(
        summary="Set Job Definition Priority by Id",
        operation_id="setJobPriorityJobDefinition",
        tags=["Job Definition"],
        request=JobDefinitionPriorityRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"], url_path="jobPriority", url_name="priority")
    def job_priority(self, request, job_definition_id):
        body = _only(json_body(request), {"priority", "includeJobs"})
        priority = _int(body, "priority", java_type="long", required=False)
        include_jobs = _bool(body, "includeJobs")
        services.set_job_definition_priority(
            request.user, job_definition_id, priority, include_jobs=include_jobs
        )
        return _no_content()

    @extend_schema(
        summary="Set Job Retries By Job Definition Id",
        operation_id="setJobRetriesJobDefinition",
        tags=["Job Definition"],
        request=RetriesRequest,
        responses={204: None, **errors(400, 404)},
    )
    @action(detail=True, methods=["put"])
    def retries(self, request, job_definition_id):
        body = _only(json_body(request), {"retries"})
        retries = _retries(body)
        services.set_job_definition_retries(request.user, job_definition_id, retries)
        return _no_content()


def _suspension_change(body: Mapping) -> tuple[bool, bool, object]:
    """(suspended, includeJobs, executionDate or None for now) of a suspension request."""
    return (
        _bool(body, "suspended", required=True),
        _bool(body, "includeJobs"),
        _execution_date(body),
    )


def _suspend_definitions(user, definitions, change, *, filter=None) -> None:
    """Suspend or activate job definitions now, or at a future `executionDate`."""
    suspended, include_jobs, execution_date = change
    if execution_date is not None:
        services.schedule_job_definitions_suspension(
            user,
            definitions,
            suspended,
            include_jobs=include_jobs,
            execution_date=execution_date,
            filter=filter,
        )
    else:
        services.set_job_definitions_suspended(
            user, definitions, suspended, include_jobs=include_jobs, filter=filter
        )


# ---------------------------------------------------------------------------------------------
# /history/job-log


class HistoricJobLogViewSet(HistoricLogViewSet):
    """Camunda's /history/job-log resource: the job log's creation, failure, success and
    deletion entries (JobLog.objects.history())."""

    log_model = JobLog
    filter_class = JobLogFilter
    serializer_class = HistoricJobLogSerializer
    not_found = "Historic job log with id {id} does not exist"
    text_not_found = "No historic job log found with id {id}: historicJobLog is null"
    text_field = "exception_stacktrace"

    @extend_schema(
        summary="Get Job Logs",
        operation_id="getHistoricJobLogs",
        tags=["Historic Job Log"],
        parameters=[
            *filter_parameters(JobLogFilter),
            *sorting_parameters(JOB_LOG_SORT_KEYS),
            *paging_parameters(),
        ],
        responses={200: HistoricJobLogSerializer(many=True), **errors(400)},
    )
    def list(self, request):
        return self.list_entries(request)

    @extend_schema(
        summary="Get Job Logs (POST)",
        operation_id="queryHistoricJobLogs",
        tags=["Historic Job Log"],
        parameters=paging_parameters(),
        request=OpenApiTypes.OBJECT,
        responses={200: HistoricJobLogSerializer(many=True), **errors(400)},
    )
    def query(self, request):
        return self.list_entries(request)

    @extend_schema(
        methods=["GET"],
        summary="Get Job Log Count",
        operation_id="getHistoricJobLogsCount",
        tags=["Historic Job Log"],
        parameters=filter_parameters(JobLogFilter),
        responses={200: CountSerializer, **errors(400)},
    )
    @extend_schema(
        methods=["POST"],
        summary="Get Job Log Count (POST)",
        operation_id="queryHistoricJobLogsCount",
        tags=["Historic Job Log"],
        request=OpenApiTypes.OBJECT,
        responses={200: CountSerializer, **errors(400)},
    )
    @action(detail=False, methods=["get", "post"])
    def count(self, request):
        return self.count_entries(request)

    @extend_schema(
        summary="Get Job Log",
        operation_id="getHistoricJobLog",
        tags=["Historic Job Log"],
        responses={200: HistoricJobLogSerializer, **errors(404)},
    )
    def retrieve(self, request, log_id):
        return self.retrieve_entry(log_id)

    @extend_schema(
        summary="Get Job Log Exception Stacktrace",
        operation_id="getStacktraceHistoricJobLog",
        tags=["Historic Job Log"],
        responses={(200, "text/plain"): str, 204: None, **errors(404)},
    )
    @action(detail=True, methods=["get"])
    def stacktrace(self, request, log_id):
        return self.text_response(log_id)
