"""Camunda 7 /engine-rest/batch and /engine-rest/history/batch: the batches of bulk operations.

Batches are project's own rows (project.batches starts, suspends, cancels and deletes them; the
job executor runs them), so the resource lives here, below the apps, and the Camunda face routes
it (project/urls.py). One table serves both resources: /batch shows the running batches (no end
time yet), /history/batch every batch, ended or not, until its history is deleted. The query
parameters, sort keys, BatchDto, BatchStatisticsDto, HistoricBatchDto, status codes and messages
are Camunda's (engine-rest-openapi templates, paths/batch/… and paths/history/batch/…).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from project import batches, tenancy
from project.errors import InvalidRequest, NotFound
from project.filters import (
    BooleanFilter,
    CamundaFilterSet,
    DateFilter,
    ListFilter,
    StringFilter,
    TrueFilter,
)
from project.models import Batch
from project.rest.auth import CanOperate, CanView
from project.rest.dates import format_date
from project.rest.paging import order_by, page, sorting_from_query
from project.rest.parsers import json_body
from project.schema import (
    CamundaDateField,
    action_schema,
    count_schema,
    detail_schema,
    list_schema,
)

# Camunda's sortBy values, in the templates' order (lib/commons/batch.ftl and
# historic-batch-params.ftl).
SORT_KEYS = {"batchId": "id", "tenantId": "tenant_id"}
HISTORY_SORT_KEYS = {
    "batchId": "id",
    "startTime": "start_time",
    "endTime": "end_time",
    "tenantId": "tenant_id",
}


class _TenantFilterSet(CamundaFilterSet):
    """`tenantIdIn` and `withoutTenantId`, applied together: `withoutTenantId` wins, as the
    engine's query resets the tenant list when it is set (the other resources do the same)."""

    tenantIdIn = ListFilter(method="filter_together")  # noqa: N815
    withoutTenantId = TrueFilter(method="filter_together")  # noqa: N815

    def filter_together(self, qs, name, value):
        return qs

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if data.get("withoutTenantId"):
            return queryset.filter(tenant_id__isnull=True)
        if data.get("tenantIdIn"):
            return queryset.filter(tenant_id__in=data["tenantIdIn"])
        return queryset


class BatchFilter(_TenantFilterSet):
    """Every query parameter of Camunda's GET /batch, /batch/count, /batch/statistics and
    /batch/statistics/count (lib/commons/batch.ftl).

    `startedBefore` / `startedAfter` include the given instant. `withFailures` keeps the batches
    with at least one failed batch job (retries 0), `withoutFailures` those with none; asking for
    both is a contradiction and a 400 rather than an empty list."""

    batchId = StringFilter(field_name="id")  # noqa: N815
    type = StringFilter(field_name="type")
    suspended = BooleanFilter(field_name="suspended")
    createdBy = StringFilter(field_name="create_user_id")  # noqa: N815
    startedBefore = DateFilter(field_name="start_time", lookup_expr="lte")  # noqa: N815
    startedAfter = DateFilter(field_name="start_time", lookup_expr="gte")  # noqa: N815
    withFailures = TrueFilter(method="filter_failures")  # noqa: N815
    withoutFailures = TrueFilter(method="filter_failures")  # noqa: N815

    class Meta:
        model = Batch
        fields: list[str] = []

    def filter_failures(self, qs, name, value):
        return qs  # applied once, after the other filters, in filter_queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        with_failures, without_failures = data.get("withFailures"), data.get("withoutFailures")
        if with_failures and without_failures:
            raise InvalidRequest(
                "Parameter 'withFailures' cannot be used together with parameter 'withoutFailures'."
            )
        if not (with_failures or without_failures):
            return queryset
        # The failed jobs are the engine's (jobs/), which project/ cannot join: ask it about the
        # batches that match so far (running batches: a handful, not a table scan).
        candidates = list(queryset.values_list("id", flat=True))
        failing = [batch_id for batch_id, n in batches.failed_jobs(candidates).items() if n]
        if with_failures:
            return queryset.filter(id__in=failing)
        return queryset.exclude(id__in=failing)


class HistoricBatchFilter(_TenantFilterSet):
    """Every query parameter of Camunda's GET /history/batch and /history/batch/count
    (lib/commons/historic-batch-params.ftl)."""

    batchId = StringFilter(field_name="id")  # noqa: N815
    type = StringFilter(field_name="type")
    completed = BooleanFilter(field_name="end_time", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Batch
        fields: list[str] = []


# ---------------------------------------------------------------------------------------------
# The DTOs, key for key in Camunda's order.


def batch_dto(batch: Batch) -> dict:
    """Camunda's BatchDto."""
    return {
        "id": batch.id,
        "type": batch.type,
        "totalJobs": batch.total_jobs,
        "jobsCreated": batch.jobs_created,
        "batchJobsPerSeed": batch.batch_jobs_per_seed,
        "invocationsPerBatchJob": batch.invocations_per_batch_job,
        "seedJobDefinitionId": batch.seed_job_definition_id,
        "monitorJobDefinitionId": batch.monitor_job_definition_id,
        "batchJobDefinitionId": batch.batch_job_definition_id,
        "suspended": batch.suspended,
        "tenantId": batch.tenant_id,
        "createUserId": batch.create_user_id,
        "startTime": format_date(batch.start_time),
        "executionStartTime": format_date(batch.execution_start_time),
    }


def batch_statistics_dto(batch: Batch, failed_jobs: int) -> dict:
    """Camunda's BatchStatisticsDto: the BatchDto and the progress of its batch jobs. Remaining
    jobs include the failed ones and those the seed job has yet to create."""
    return {
        **batch_dto(batch),
        "remainingJobs": max(batch.total_jobs - batch.completed_jobs, 0),
        "completedJobs": batch.completed_jobs,
        "failedJobs": failed_jobs,
    }


def historic_batch_dto(batch: Batch) -> dict:
    """Camunda's HistoricBatchDto."""
    return {
        "id": batch.id,
        "type": batch.type,
        "totalJobs": batch.total_jobs,
        "batchJobsPerSeed": batch.batch_jobs_per_seed,
        "invocationsPerBatchJob": batch.invocations_per_batch_job,
        "seedJobDefinitionId": batch.seed_job_definition_id,
        "monitorJobDefinitionId": batch.monitor_job_definition_id,
        "batchJobDefinitionId": batch.batch_job_definition_id,
        "tenantId": batch.tenant_id,
        "createUserId": batch.create_user_id,
        "startTime": format_date(batch.start_time),
        "executionStartTime": format_date(batch.execution_start_time),
        "endTime": format_date(batch.end_time),
        "removalTime": format_date(batch.removal_time),
    }


def _text():
    return serializers.CharField(allow_null=True)


class BatchSerializer(serializers.Serializer):
    """Documents BatchDto (answers are built by batch_dto)."""

    id = serializers.CharField()
    type = serializers.CharField()
    totalJobs = serializers.IntegerField()  # noqa: N815
    jobsCreated = serializers.IntegerField()  # noqa: N815
    batchJobsPerSeed = serializers.IntegerField()  # noqa: N815
    invocationsPerBatchJob = serializers.IntegerField()  # noqa: N815
    seedJobDefinitionId = _text()  # noqa: N815
    monitorJobDefinitionId = _text()  # noqa: N815
    batchJobDefinitionId = _text()  # noqa: N815
    suspended = serializers.BooleanField()
    tenantId = _text()  # noqa: N815
    createUserId = _text()  # noqa: N815
    startTime = CamundaDateField()  # noqa: N815
    executionStartTime = CamundaDateField(allow_null=True)  # noqa: N815

    class Meta:
        ref_name = "BatchDto"


class BatchStatisticsSerializer(BatchSerializer):
    """Documents BatchStatisticsDto (answers are built by batch_statistics_dto)."""

    remainingJobs = serializers.IntegerField()  # noqa: N815
    completedJobs = serializers.IntegerField()  # noqa: N815
    failedJobs = serializers.IntegerField()  # noqa: N815

    class Meta:
        ref_name = "BatchStatisticsDto"


class HistoricBatchSerializer(serializers.Serializer):
    """Documents HistoricBatchDto (answers are built by historic_batch_dto)."""

    id = serializers.CharField()
    type = serializers.CharField()
    totalJobs = serializers.IntegerField()  # noqa: N815
    batchJobsPerSeed = serializers.IntegerField()  # noqa: N815
    invocationsPerBatchJob = serializers.IntegerField()  # noqa: N815
    seedJobDefinitionId = _text()  # noqa: N815
    monitorJobDefinitionId = _text()  # noqa: N815
    batchJobDefinitionId = _text()  # noqa: N815
    tenantId = _text()  # noqa: N815
    createUserId = _text()  # noqa: N815
    startTime = CamundaDateField()  # noqa: N815
    executionStartTime = CamundaDateField(allow_null=True)  # noqa: N815
    endTime = CamundaDateField(allow_null=True)  # noqa: N815
    removalTime = CamundaDateField(allow_null=True)  # noqa: N815

    class Meta:
        ref_name = "HistoricBatchDto"


class SuspensionStateSerializer(serializers.Serializer):
    """Documents SuspensionStateDto (the view reads the body with Camunda's messages)."""

    suspended = serializers.BooleanField()

    class Meta:
        ref_name = "SuspensionStateDto"


ID_PARAMETER = OpenApiParameter("batch_id", OpenApiTypes.STR, OpenApiParameter.PATH)
CASCADE_PARAMETER = OpenApiParameter(
    "cascade",
    OpenApiTypes.BOOL,
    description="true: delete the batch's history too (admins only)",
)


# ---------------------------------------------------------------------------------------------
# Reading requests


def _flag(params, name: str) -> bool:
    """A true/false query parameter (`cascade`); absent is false, anything else a 400."""
    value = params.get(name)
    if value in (None, ""):
        return False
    text = str(value).strip().lower()
    if text not in {"true", "false"}:
        raise InvalidRequest(
            f"Cannot set query parameter '{name}' to value '{value}': expected true or false"
        )
    return text == "true"


def _suspended(request) -> bool:
    body = json_body(request)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    unknown = sorted(set(body) - {"suspended"})
    if unknown:
        raise InvalidRequest(f"Unknown property(ies) in the request body: {unknown}")
    value = body.get("suspended")
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise InvalidRequest(
            f"'suspended' is required (true or false), got {'null' if value is None else value!r}"
        )
    return value


def running_batches(user, params):
    """The running batches the user may see, filtered by Camunda's query parameters."""
    queryset = batches.visible(user).filter(end_time__isnull=True)
    return BatchFilter(BatchFilter.data_from_query(params), queryset=queryset).filtered()


def historic_batches(user, params):
    """Every batch the user may see (running or ended), filtered by Camunda's parameters."""
    queryset = batches.visible(user)
    return HistoricBatchFilter(
        HistoricBatchFilter.data_from_query(params), queryset=queryset
    ).filtered()


def _running(user, batch_id: str) -> Batch:
    """The running batch, or Camunda's 404 for unknown, ended and other tenants' ids alike."""
    batch = batches.visible(user).filter(pk=batch_id, end_time__isnull=True).first()
    if batch is None:
        raise NotFound(f"Batch with id '{batch_id}' does not exist")
    return batch


class CanViewBatches(CanView):
    message = "You are not allowed to read batches."


class CanOperateBatches(CanOperate):
    message = "Only operators and admins may suspend, activate or delete batches."


# ---------------------------------------------------------------------------------------------
# The resources


class BatchViewSet(viewsets.ViewSet):
    """Camunda's batch resource: the running batches; reads for viewers, suspend/activate and
    delete (cancel) for operators, delete with `cascade` (the history too) for admins."""

    lookup_url_kwarg = "batch_id"
    lookup_value_converter = "str"

    def get_permissions(self):
        if self.action in {"suspended", "destroy"}:
            return [CanOperateBatches()]
        return [CanViewBatches()]

    def _sorted_page(self, request):
        # The sorting is checked first, so a bad sort key is a 400 even on no rows.
        expressions = order_by(sorting_from_query(request.query_params), SORT_KEYS)
        rows = running_batches(request.user, request.query_params).order_by(*expressions)
        return list(page(rows, request.query_params))

    @list_schema("Get List", "getBatches", "Batch", BatchFilter, SORT_KEYS, BatchSerializer)
    def list(self, request):
        return Response([batch_dto(batch) for batch in self._sorted_page(request)])

    @count_schema("Get List Count", "getBatchesCount", "Batch", BatchFilter)
    @action(detail=False, methods=["get"])
    def count(self, request):
        return Response({"count": running_batches(request.user, request.query_params).count()})

    @list_schema(
        "Get Statistics",
        "getBatchStatistics",
        "Batch",
        BatchFilter,
        SORT_KEYS,
        BatchStatisticsSerializer,
    )
    @action(detail=False, methods=["get"])
    def statistics(self, request):
        rows = self._sorted_page(request)
        failed = batches.failed_jobs([batch.id for batch in rows]) if rows else {}
        return Response([batch_statistics_dto(batch, failed.get(batch.id, 0)) for batch in rows])

    @count_schema("Get Statistics Count", "getBatchStatisticsCount", "Batch", BatchFilter)
    @action(detail=False, methods=["get"], url_path="statistics/count")
    def statistics_count(self, request):
        return Response({"count": running_batches(request.user, request.query_params).count()})

    @detail_schema("Get", "getBatch", "Batch", ID_PARAMETER, BatchSerializer)
    def retrieve(self, request, batch_id):
        return Response(batch_dto(_running(request.user, batch_id)))

    @action_schema(
        "Activate/Suspend",
        "updateBatchSuspensionState",
        "Batch",
        [ID_PARAMETER],
        request=SuspensionStateSerializer,
        description="A suspended batch runs no further batch job until it is activated. An "
        "unknown or ended batch is a 400, as in Camunda (404: a path that can name no batch).",
    )
    @action(detail=True, methods=["put"])
    def suspended(self, request, batch_id):
        suspended = _suspended(request)
        verb = "suspend" if suspended else "activate"
        try:
            _running(request.user, batch_id)
            batches.set_suspended(request.user, batch_id, suspended)
        except NotFound:
            # Camunda's wording and status for a batch it cannot find (or that has ended).
            raise InvalidRequest(f"Unable to {verb} batch with id '{batch_id}'") from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action_schema(
        "Delete",
        "deleteBatch",
        "Batch",
        [ID_PARAMETER, CASCADE_PARAMETER],
        description="Cancels a running batch: its jobs and job definitions are deleted (a "
        "batch job already running finishes first) and its history is kept, ended, unless "
        "`cascade` is true. An unknown or ended batch is a 400, as in Camunda (404: a path "
        "that can name no batch).",
    )
    def destroy(self, request, batch_id):
        cascade = _flag(request.query_params, "cascade")
        if cascade and not tenancy.can_delete(request.user):
            raise PermissionDenied("Only admins may delete a batch's history (cascade=true).")
        try:
            _running(request.user, batch_id)
            batches.delete(request.user, batch_id, cascade=cascade)
        except NotFound:
            raise InvalidRequest(f"Unable to delete batch with id '{batch_id}'") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class CanDeleteHistory(CanView):
    def has_permission(self, request, view):
        return tenancy.can_delete(request.user)

    message = "Only admins may delete a batch's history."


class HistoricBatchViewSet(viewsets.ViewSet):
    """Camunda's historic batch resource: every batch, running or ended, until its history is
    deleted; reads for viewers, deletion for admins."""

    lookup_url_kwarg = "batch_id"
    lookup_value_converter = "str"

    def get_permissions(self):
        if self.action == "destroy":
            return [CanDeleteHistory()]
        return [CanViewBatches()]

    def _get(self, request, batch_id) -> Batch:
        batch = batches.visible(request.user).filter(pk=batch_id).first()
        if batch is None:
            raise NotFound(f"Historic batch with id '{batch_id}' does not exist")
        return batch

    @list_schema(
        "Get Historic Batches",
        "getHistoricBatches",
        "Historic Batch",
        HistoricBatchFilter,
        HISTORY_SORT_KEYS,
        HistoricBatchSerializer,
    )
    def list(self, request):
        expressions = order_by(sorting_from_query(request.query_params), HISTORY_SORT_KEYS)
        rows = historic_batches(request.user, request.query_params).order_by(*expressions)
        return Response([historic_batch_dto(row) for row in page(rows, request.query_params)])

    @count_schema(
        "Get Historic Batch Count", "getHistoricBatchesCount", "Historic Batch", HistoricBatchFilter
    )
    @action(detail=False, methods=["get"])
    def count(self, request):
        return Response({"count": historic_batches(request.user, request.query_params).count()})

    @detail_schema(
        "Get Historic Batch",
        "getHistoricBatch",
        "Historic Batch",
        ID_PARAMETER,
        HistoricBatchSerializer,
    )
    def retrieve(self, request, batch_id):
        return Response(historic_batch_dto(self._get(request, batch_id)))

    @action_schema(
        "Delete Historic Batch",
        "deleteHistoricBatch",
        "Historic Batch",
        [ID_PARAMETER],
        description="Deletes an ended batch's history. A running batch's history is its "
        "runtime row too: cancel it first (DELETE /batch/{id}, or with cascade=true to delete "
        "both at once); until then this is a 400.",
    )
    def destroy(self, request, batch_id):
        self._get(request, batch_id)
        try:
            batches.delete_history(request.user, batch_id)
        except NotFound:
            raise NotFound(f"Historic batch with id '{batch_id}' does not exist") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
