"""Camunda's JSON shapes for jobs and job definitions (every key present, null where unset)."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from project.filters import CREATION_LOG, DELETION_LOG, FAILURE_LOG, SUCCESS_LOG
from project.rest.dates import format_date


class CamundaDateTimeField(serializers.DateTimeField):
    """Dates out as yyyy-MM-dd'T'HH:mm:ss.SSSZ, Camunda's REST date format."""

    def to_representation(self, value):
        return format_date(value)


class JobSerializer(serializers.Serializer):
    """Camunda's JobDto (7.x), plus `batchId` of later versions (a batch's jobs name it)."""

    id = serializers.CharField()
    jobDefinitionId = serializers.CharField(source="job_definition_id", allow_null=True)
    processInstanceId = serializers.CharField(source="process_instance_id", allow_null=True)
    processDefinitionId = serializers.CharField(source="process_definition_id", allow_null=True)
    processDefinitionKey = serializers.CharField(source="process_definition_key", allow_null=True)
    executionId = serializers.CharField(source="execution_id", allow_null=True)
    exceptionMessage = serializers.CharField(source="exception_message", allow_null=True)
    failedActivityId = serializers.CharField(source="failed_activity_id", allow_null=True)
    retries = serializers.IntegerField()
    dueDate = CamundaDateTimeField(source="due_date", allow_null=True)
    suspended = serializers.BooleanField()
    priority = serializers.IntegerField()
    tenantId = serializers.CharField(source="tenant_id", allow_null=True)
    createTime = CamundaDateTimeField(source="create_time")
    batchId = serializers.SerializerMethodField()

    def get_batchId(self, job) -> str | None:  # noqa: N802 - Camunda's key
        # A batch's seed, monitor and batch jobs name it, as Camunda's JobDto does.
        if job.queue_name == "batch" and isinstance(job.payload, dict):
            batch_id = job.payload.get("batch")
            return batch_id if isinstance(batch_id, str) else None
        return None


class CreatedJobSerializer(JobSerializer):
    """A job as answered by the /job/create extension: the Camunda shape plus what was run."""

    type = serializers.CharField()
    handler = serializers.CharField()
    payload = serializers.JSONField()


class JobDefinitionSerializer(serializers.Serializer):
    """Camunda's JobDefinitionDto; `deploymentId` is always null (there are no deployments)."""

    id = serializers.CharField()
    processDefinitionId = serializers.CharField(source="process_definition_id", allow_null=True)
    processDefinitionKey = serializers.CharField(source="process_definition_key", allow_null=True)
    activityId = serializers.CharField(source="activity_id", allow_null=True)
    jobType = serializers.CharField(source="job_type", allow_null=True)
    jobConfiguration = serializers.CharField(source="job_configuration", allow_null=True)
    overridingJobPriority = serializers.IntegerField(source="overriding_priority", allow_null=True)
    suspended = serializers.BooleanField()
    tenantId = serializers.CharField(source="tenant_id", allow_null=True)
    deploymentId = serializers.SerializerMethodField()

    def get_deploymentId(self, definition) -> str | None:  # noqa: N802 - Camunda's key
        return None


class CountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


# Request bodies, for the OpenAPI schema (the views validate with Camunda's messages).


class RetriesRequest(serializers.Serializer):
    retries = serializers.IntegerField(min_value=0)
    dueDate = serializers.CharField(required=False, allow_null=True)


class SuspensionStateRequest(serializers.Serializer):
    suspended = serializers.BooleanField()


class DuedateRequest(serializers.Serializer):
    duedate = serializers.CharField(allow_null=True)
    cascade = serializers.BooleanField(required=False, allow_null=True)


class PriorityRequest(serializers.Serializer):
    priority = serializers.IntegerField()


class SetJobRetriesRequest(serializers.Serializer):
    retries = serializers.IntegerField(min_value=0)
    jobIds = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True)
    jobQuery = serializers.DictField(required=False, allow_null=True)
    dueDate = serializers.CharField(required=False, allow_null=True)


class JobSuspensionStateRequest(serializers.Serializer):
    jobDefinitionId = serializers.CharField(required=False, allow_null=True)
    processInstanceId = serializers.CharField(required=False, allow_null=True)
    processDefinitionId = serializers.CharField(required=False, allow_null=True)
    processDefinitionKey = serializers.CharField(required=False, allow_null=True)
    processDefinitionTenantId = serializers.CharField(required=False, allow_null=True)
    processDefinitionWithoutTenantId = serializers.BooleanField(required=False, allow_null=True)
    suspended = serializers.BooleanField()


class JobDefinitionSuspensionStateRequest(serializers.Serializer):
    suspended = serializers.BooleanField()
    includeJobs = serializers.BooleanField(required=False, allow_null=True)
    executionDate = serializers.CharField(required=False, allow_null=True)


class JobDefinitionsSuspensionStateRequest(JobDefinitionSuspensionStateRequest):
    processDefinitionId = serializers.CharField(required=False, allow_null=True)
    processDefinitionKey = serializers.CharField(required=False, allow_null=True)
    processDefinitionTenantId = serializers.CharField(required=False, allow_null=True)
    processDefinitionWithoutTenantId = serializers.BooleanField(required=False, allow_null=True)


class JobDefinitionPriorityRequest(serializers.Serializer):
    priority = serializers.IntegerField(allow_null=True)
    includeJobs = serializers.BooleanField(required=False, allow_null=True)


class CreateJobRequest(serializers.Serializer):
    handler = serializers.CharField()
    payload = serializers.DictField(required=False, allow_null=True)
    type = serializers.ChoiceField(choices=["timer", "message"], required=False, allow_null=True)
    dueDate = serializers.CharField(required=False, allow_null=True)
    retries = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    priority = serializers.IntegerField(required=False, allow_null=True)
    queueName = serializers.CharField(required=False, allow_null=True, max_length=100)
    jobDefinitionId = serializers.CharField(required=False, allow_null=True)
    processInstanceId = serializers.CharField(required=False, allow_null=True)
    executionId = serializers.CharField(required=False, allow_null=True)
    processDefinitionId = serializers.CharField(required=False, allow_null=True)
    processDefinitionKey = serializers.CharField(required=False, allow_null=True)
    activityId = serializers.CharField(required=False, allow_null=True)
    tenantId = serializers.CharField(required=False, allow_null=True)


@extend_schema_serializer(component_name="HistoricJobLogDto")
class HistoricJobLogSerializer(serializers.Serializer):
    """Camunda's HistoricJobLogDto. There are no deployments, process instance trees, history
    cleanup or job batches here: deploymentId, rootProcessInstanceId, removalTime and batchId
    are always null. The four flags say which Camunda log state the entry is
    (JobLog.history_state)."""

    id = serializers.CharField()
    timestamp = CamundaDateTimeField()
    removalTime = serializers.SerializerMethodField()
    jobId = serializers.CharField(source="job_id")
    jobDueDate = CamundaDateTimeField(source="due_date", allow_null=True)
    jobRetries = serializers.IntegerField(source="retries", allow_null=True)
    jobPriority = serializers.IntegerField(source="priority", allow_null=True)
    jobExceptionMessage = serializers.CharField(source="exception_message", allow_null=True)
    failedActivityId = serializers.CharField(source="failed_activity_id", allow_null=True)
    jobDefinitionId = serializers.CharField(source="job_definition_id", allow_null=True)
    jobDefinitionType = serializers.CharField(source="job_definition_type", allow_null=True)
    jobDefinitionConfiguration = serializers.CharField(
        source="job_definition_configuration", allow_null=True
    )
    activityId = serializers.CharField(source="activity_id", allow_null=True)
    executionId = serializers.CharField(source="execution_id", allow_null=True)
    processInstanceId = serializers.CharField(source="process_instance_id", allow_null=True)
    processDefinitionId = serializers.CharField(source="process_definition_id", allow_null=True)
    processDefinitionKey = serializers.CharField(source="process_definition_key", allow_null=True)
    deploymentId = serializers.SerializerMethodField()
    rootProcessInstanceId = serializers.SerializerMethodField()
    tenantId = serializers.CharField(source="tenant_id", allow_null=True)
    hostname = serializers.CharField(allow_null=True)
    batchId = serializers.SerializerMethodField()
    creationLog = serializers.SerializerMethodField()
    failureLog = serializers.SerializerMethodField()
    successLog = serializers.SerializerMethodField()
    deletionLog = serializers.SerializerMethodField()

    def get_removalTime(self, entry) -> str | None:  # noqa: N802 - Camunda's key
        return None

    def get_deploymentId(self, entry) -> str | None:  # noqa: N802 - Camunda's key
        return None

    def get_rootProcessInstanceId(self, entry) -> str | None:  # noqa: N802 - Camunda's key
        return None

    def get_batchId(self, entry) -> str | None:  # noqa: N802 - Camunda's key
        return None

    def get_creationLog(self, entry) -> bool:  # noqa: N802 - Camunda's key
        return entry.history_state == CREATION_LOG

    def get_failureLog(self, entry) -> bool:  # noqa: N802 - Camunda's key
        return entry.history_state == FAILURE_LOG

    def get_successLog(self, entry) -> bool:  # noqa: N802 - Camunda's key
        return entry.history_state == SUCCESS_LOG

    def get_deletionLog(self, entry) -> bool:  # noqa: N802 - Camunda's key
        return entry.history_state == DELETION_LOG
