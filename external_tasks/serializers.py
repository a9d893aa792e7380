"""External tasks as each REST face answers them. Every key is always present (null if unset)."""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from external_tasks.fields import (
    BodySerializer,
    IsoDuration,
    JavaInteger,
    PassedDict,
    PassedList,
    Text,
)
from external_tasks.filters import ExternalTaskFilter, VariableConditionsFilter
from external_tasks.services import CREATE_FIELDS
from project import filters
from project.filters import CREATION_LOG, DELETION_LOG, FAILURE_LOG, SUCCESS_LOG
from project.rest.dates import format_date
from project.schema import CamundaDateField
from project.schema import CountSerializer as CountSerializer  # shared with /incident
from project.variables import to_response


def camunda_task(task) -> dict:
    """Camunda's ExternalTaskDto (latest 7.x keys, including createTime and errorDetails)."""
    return {
        "activityId": task.activity_id,
        "activityInstanceId": task.activity_instance_id,
        "errorMessage": task.error_message,
        "errorDetails": task.error_details,
        "executionId": task.execution_id,
        "id": task.id,
        "lockExpirationTime": format_date(task.lock_expiration_time),
        "createTime": format_date(task.create_time),
        "processDefinitionId": task.process_definition_id,
        "processDefinitionKey": task.process_definition_key,
        "processDefinitionVersionTag": task.process_definition_version_tag,
        "processInstanceId": task.process_instance_id,
        "retries": task.retries,
        "suspended": task.suspended,
        "workerId": task.worker_id,
        "topicName": task.topic_name,
        "tenantId": task.tenant_id,
        "priority": task.priority,
        "businessKey": task.business_key,
    }


def camunda_locked_task(task, variable_names=None, include_extension_properties=False) -> dict:
    """Camunda's LockedExternalTaskDto: the task plus its variables and extension properties."""
    body = camunda_task(task)
    body["variables"] = to_response(task.variables, variable_names)
    body["extensionProperties"] = (
        dict(task.extension_properties or {}) if include_extension_properties else {}
    )
    return body


# ---------------------------------------------------------------------------------------------
# OpenAPI descriptions of the bodies above and of the request bodies. The functions above build
# the answers; these serializers document them (the fuzz test in tests/security checks
# every answer against them).


def _text(**kwargs):
    return serializers.CharField(allow_null=True, **kwargs)


def _date(**kwargs):
    return CamundaDateField(allow_null=True, **kwargs)


def _flowable_date(**kwargs):
    # Flowable's dates end in "Z" with milliseconds: RFC 3339.
    return serializers.DateTimeField(allow_null=True, **kwargs)


@extend_schema_serializer(component_name="VariableValueDto")
class VariableValueSerializer(serializers.Serializer):
    """Camunda's VariableValueDto: value of any JSON type, its type name and valueInfo."""

    value = serializers.JSONField(allow_null=True)
    type = _text()
    valueInfo = serializers.DictField(required=False)  # noqa: N815 - Camunda's key


@extend_schema_serializer(component_name="ExternalTaskDto")
class ExternalTaskSerializer(serializers.Serializer):
    """Camunda's ExternalTaskDto."""

    activityId = _text()  # noqa: N815
    activityInstanceId = _text()  # noqa: N815
    errorMessage = _text()  # noqa: N815
    errorDetails = _text()  # noqa: N815
    executionId = _text()  # noqa: N815
    id = serializers.CharField()
    lockExpirationTime = _date()  # noqa: N815
    createTime = CamundaDateField()  # noqa: N815
    processDefinitionId = _text()  # noqa: N815
    processDefinitionKey = _text()  # noqa: N815
    processDefinitionVersionTag = _text()  # noqa: N815
    processInstanceId = _text()  # noqa: N815
    retries = serializers.IntegerField(allow_null=True)
    suspended = serializers.BooleanField()
    workerId = _text()  # noqa: N815
    topicName = serializers.CharField()  # noqa: N815
    tenantId = _text()  # noqa: N815
    priority = serializers.IntegerField(min_value=-(2**63), max_value=2**63 - 1)
    businessKey = _text()  # noqa: N815


@extend_schema_serializer(component_name="LockedExternalTaskDto")
class LockedExternalTaskSerializer(ExternalTaskSerializer):
    """Camunda's LockedExternalTaskDto."""

    variables = serializers.DictField(child=VariableValueSerializer())
    extensionProperties = serializers.DictField(child=serializers.CharField())  # noqa: N815


# Request bodies (Camunda's DTO names). The BodySerializers validate as well as document; the
# fetchAndLock, bulk-retries and create bodies are still read by their views (see api.py).


@extend_schema_serializer(component_name="SortingDto")
class SortingSerializer(serializers.Serializer):
    sortBy = serializers.CharField()  # noqa: N815
    sortOrder = serializers.ChoiceField(choices=["asc", "desc"])  # noqa: N815


@extend_schema_serializer(component_name="VariableQueryParameterDto")
class VariableConditionSerializer(serializers.Serializer):
    name = serializers.CharField()
    operator = serializers.ChoiceField(
        choices=["eq", "neq", "gt", "gteq", "lt", "lteq", "like", "notLike"]
    )
    value = serializers.JSONField()


def _query_body_fields():
    """ExternalTaskQueryDto, field for field from the FilterSet the POST query runs through."""
    fields = {}
    for name, declared in ExternalTaskFilter.base_filters.items():
        if isinstance(declared, filters.ListFilter):
            field = serializers.ListField(child=serializers.CharField(), allow_null=True)
        elif isinstance(declared, filters.TrueFilter):
            field = serializers.BooleanField(allow_null=True)
        elif isinstance(declared, filters.DateFilter):
            field = serializers.DateTimeField(allow_null=True)
        elif isinstance(declared, filters.LongFilter):
            field = serializers.IntegerField(allow_null=True)
        elif isinstance(declared, VariableConditionsFilter):
            field = VariableConditionSerializer(many=True, allow_null=True)
        else:
            field = serializers.CharField(allow_null=True)
        field.required = False
        fields[name] = field
    fields["sorting"] = SortingSerializer(many=True, required=False, allow_null=True)
    return fields


ExternalTaskQuerySerializer = type(
    "ExternalTaskQueryDto", (serializers.Serializer,), _query_body_fields()
)


@extend_schema_serializer(component_name="FetchExternalTaskTopicDto")
class FetchTopicSerializer(serializers.Serializer):
    """Camunda's FetchExternalTaskTopicDto."""

    topicName = serializers.CharField()  # noqa: N815
    lockDuration = serializers.IntegerField(min_value=1)  # noqa: N815
    variables = serializers.ListField(child=serializers.CharField(), required=False)
    localVariables = serializers.BooleanField(required=False)  # noqa: N815
    businessKey = serializers.CharField(required=False, allow_null=True)  # noqa: N815
    processDefinitionId = serializers.CharField(required=False, allow_null=True)  # noqa: N815
    processDefinitionIdIn = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), required=False
    )
    processDefinitionKey = serializers.CharField(required=False, allow_null=True)  # noqa: N815
    processDefinitionKeyIn = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), required=False
    )
    processDefinitionVersionTag = serializers.CharField(  # noqa: N815
        required=False, allow_null=True
    )
    withoutTenantId = serializers.BooleanField(required=False)  # noqa: N815
    tenantIdIn = serializers.ListField(child=serializers.CharField(), required=False)  # noqa: N815
    processVariables = serializers.DictField(required=False)  # noqa: N815
    deserializeValues = serializers.BooleanField(required=False)  # noqa: N815
    includeExtensionProperties = serializers.BooleanField(required=False)  # noqa: N815


@extend_schema_serializer(component_name="FetchExternalTasksDto")
class FetchExternalTasksSerializer(serializers.Serializer):
    """Camunda's FetchExternalTasksDto."""

    workerId = serializers.CharField()  # noqa: N815
    maxTasks = serializers.IntegerField(min_value=0)  # noqa: N815
    usePriority = serializers.BooleanField(required=False)  # noqa: N815
    asyncResponseTimeout = serializers.IntegerField(  # noqa: N815
        required=False, allow_null=True, min_value=0
    )
    includeExtensionProperties = serializers.BooleanField(required=False)  # noqa: N815
    topics = FetchTopicSerializer(many=True, required=False)
    sorting = SortingSerializer(many=True, required=False)


@extend_schema_serializer(component_name="CompleteExternalTaskDto")
class CompleteSerializer(BodySerializer):
    """Camunda's CompleteExternalTaskDto."""

    workerId = Text(required=True)  # noqa: N815
    variables = PassedDict(child=VariableValueSerializer())
    localVariables = PassedDict(child=VariableValueSerializer())  # noqa: N815


@extend_schema_serializer(component_name="ExternalTaskFailureDto")
class FailureSerializer(BodySerializer):
    """Camunda's ExternalTaskFailureDto."""

    workerId = Text(required=True)  # noqa: N815
    errorMessage = Text()  # noqa: N815
    errorDetails = Text()  # noqa: N815
    retries = JavaInteger(min_value=0)
    retryTimeout = JavaInteger("long", min_value=0)  # noqa: N815
    variables = PassedDict(child=VariableValueSerializer())
    localVariables = PassedDict(child=VariableValueSerializer())  # noqa: N815


@extend_schema_serializer(component_name="ExternalTaskBpmnError")
class BpmnErrorSerializer(BodySerializer):
    """Camunda's ExternalTaskBpmnError."""

    workerId = Text(required=True)  # noqa: N815
    errorCode = Text(required=True)  # noqa: N815
    errorMessage = Text()  # noqa: N815
    variables = PassedDict(child=VariableValueSerializer())


@extend_schema_serializer(component_name="ExtendLockOnExternalTaskDto")
class ExtendLockSerializer(BodySerializer):
    """Camunda's ExtendLockOnExternalTaskDto."""

    workerId = Text(required=True)  # noqa: N815
    newDuration = JavaInteger("long", required=True)  # noqa: N815


@extend_schema_serializer(component_name="LockExternalTaskDto")
class LockSerializer(BodySerializer):
    """Camunda's LockExternalTaskDto."""

    workerId = Text(required=True)  # noqa: N815
    lockDuration = JavaInteger("long", required=True)  # noqa: N815


@extend_schema_serializer(component_name="RetriesDto")
class RetriesSerializer(BodySerializer):
    # A negative value is the service's to refuse, in Camunda's words.
    retries = JavaInteger(required=True)


@extend_schema_serializer(component_name="PriorityDto")
class PrioritySerializer(BodySerializer):
    priority = JavaInteger("long", required=True)


@extend_schema_serializer(component_name="SetRetriesForExternalTasksDto")
class SetRetriesSerializer(serializers.Serializer):
    """Camunda's SetRetriesForExternalTasksDto (without the process instance queries, which
    Taskyard refuses with 400: it has no process instances)."""

    retries = serializers.IntegerField(min_value=0)
    externalTaskIds = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), required=False, allow_null=True
    )
    processInstanceIds = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), required=False, allow_null=True
    )
    externalTaskQuery = ExternalTaskQuerySerializer(required=False, allow_null=True)  # noqa: N815


def _create_fields():
    fields = {
        name: serializers.CharField(required=False, allow_null=True)
        for name in CREATE_FIELDS
        if name not in {"priority", "retries"}
    }
    fields["topicName"] = serializers.CharField()
    fields["id"] = serializers.CharField(required=False, allow_null=True)
    fields["priority"] = serializers.IntegerField(required=False, allow_null=True)
    fields["retries"] = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    fields["variables"] = serializers.DictField(child=VariableValueSerializer(), required=False)
    fields["extensionProperties"] = serializers.DictField(
        child=serializers.CharField(), required=False
    )
    return fields


# One external task for the /external-task/create extension (which takes one or a list).
CreateTaskSerializer = type("CreateExternalTaskDto", (serializers.Serializer,), _create_fields())


# ---------------------------------------------------------------------------------------------
# Flowable's external worker API and the seed's version of it.


@extend_schema_serializer(component_name="FlowableEngineRestVariable")
class FlowableVariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(allow_null=True)
    value = serializers.JSONField(allow_null=True)


@extend_schema_serializer(component_name="ExternalWorkerJobResponse")
class FlowableJobSerializer(serializers.Serializer):
    """Flowable's ExternalWorkerJobResponse."""

    id = serializers.CharField()
    url = serializers.URLField(allow_null=True)
    correlationId = serializers.CharField()  # noqa: N815
    processInstanceId = _text()  # noqa: N815
    processDefinitionId = _text()  # noqa: N815
    executionId = _text()  # noqa: N815
    scopeId = _text()  # noqa: N815
    subScopeId = _text()  # noqa: N815
    scopeDefinitionId = _text()  # noqa: N815
    scopeType = _text()  # noqa: N815
    elementId = _text()  # noqa: N815
    elementName = _text()  # noqa: N815
    retries = serializers.IntegerField()
    exceptionMessage = _text()  # noqa: N815
    dueDate = _flowable_date()  # noqa: N815
    createTime = serializers.DateTimeField()  # noqa: N815
    tenantId = _text()  # noqa: N815
    lockOwner = _text()  # noqa: N815
    lockExpirationTime = _flowable_date()  # noqa: N815


@extend_schema_serializer(component_name="AcquiredExternalWorkerJobResponse")
class FlowableAcquiredJobSerializer(FlowableJobSerializer):
    """An acquired job: the job plus its variables."""

    variables = FlowableVariableSerializer(many=True)


@extend_schema_serializer(component_name="DataResponseExternalWorkerJobResponse")
class FlowableJobPageSerializer(serializers.Serializer):
    """Flowable's DataResponse of jobs."""

    data = FlowableJobSerializer(many=True)
    total = serializers.IntegerField()
    start = serializers.IntegerField()
    sort = serializers.CharField()
    order = serializers.CharField()
    size = serializers.IntegerField()


@extend_schema_serializer(component_name="AcquireExternalWorkerJobRequest")
class FlowableAcquireSerializer(BodySerializer):
    """Flowable's AcquireExternalWorkerJobRequest (the seed face takes the same body)."""

    quote_names = False
    blank_is_missing = True

    topic = Text(required=True)
    lockDuration = IsoDuration(required=True)  # noqa: N815
    numberOfTasks = JavaInteger(min_value=1)  # noqa: N815
    numberOfRetries = JavaInteger(min_value=0)  # noqa: N815
    workerId = Text(required=True)  # noqa: N815
    scopeType = Text()  # noqa: N815


@extend_schema_serializer(component_name="ExternalWorkerJobActionRequest")
class FlowableJobActionSerializer(BodySerializer):
    """The body of complete, bpmnError, cmmnTerminate and fail (fields by action)."""

    quote_names = False
    blank_is_missing = True

    workerId = Text(required=True)  # noqa: N815
    variables = PassedList(child=FlowableVariableSerializer())
    errorCode = Text()  # noqa: N815
    errorMessage = Text()  # noqa: N815
    errorDetails = Text()  # noqa: N815
    retries = JavaInteger(min_value=0)
    retryTimeout = IsoDuration()  # noqa: N815


@extend_schema_serializer(component_name="ExternalWorkerJobUnacquireRequest")
class WorkerIdSerializer(BodySerializer):
    quote_names = False
    blank_is_missing = True

    workerId = Text(required=True)  # noqa: N815


@extend_schema_serializer(component_name="SeedLinks")
class SeedLinksSerializer(serializers.Serializer):
    empty = serializers.BooleanField()


@extend_schema_serializer(component_name="SeedExternalJob")
class SeedJobSerializer(serializers.Serializer):
    """The seed's job object (variables only when acquired)."""

    id = serializers.CharField()
    variables = FlowableVariableSerializer(many=True, required=False)
    subscriptionId = _text()  # noqa: N815
    tenantId = _text()  # noqa: N815
    executionId = _text()  # noqa: N815
    dueDate = _flowable_date()  # noqa: N815
    elementName = _text()  # noqa: N815
    retries = serializers.IntegerField()
    topic = serializers.CharField()
    exceptionMessage = _text()  # noqa: N815
    correlationId = serializers.CharField()  # noqa: N815
    lockOwner = _text()  # noqa: N815
    elementId = _text()  # noqa: N815
    lockExpirationTime = _flowable_date()  # noqa: N815
    createTime = serializers.DateTimeField()  # noqa: N815
    processInstanceId = _text()  # noqa: N815
    processDefinitionId = _text()  # noqa: N815
    links = SeedLinksSerializer()


@extend_schema_serializer(component_name="SeedExternalJobPage")
class SeedJobPageSerializer(serializers.Serializer):
    links = SeedLinksSerializer()
    content = SeedJobSerializer(many=True)


def camunda_log_entry(entry) -> dict:
    """Camunda's HistoricExternalTaskLogDto for one entry of the history
    (ExternalTaskLog.objects.history()). There are no process instance trees or history
    cleanup here: rootProcessInstanceId and removalTime are always null."""
    state = entry.history_state
    return {
        "id": str(entry.pk),
        "externalTaskId": entry.task_id,
        "timestamp": format_date(entry.timestamp),
        "topicName": entry.topic_name,
        "workerId": entry.worker_id,
        "retries": entry.retries,
        "priority": entry.priority,
        "errorMessage": entry.error_message,
        "activityId": entry.activity_id,
        "activityInstanceId": entry.activity_instance_id,
        "executionId": entry.execution_id,
        "processInstanceId": entry.process_instance_id,
        "processDefinitionId": entry.process_definition_id,
        "processDefinitionKey": entry.process_definition_key,
        "tenantId": entry.tenant_id,
        "creationLog": state == CREATION_LOG,
        "failureLog": state == FAILURE_LOG,
        "successLog": state == SUCCESS_LOG,
        "deletionLog": state == DELETION_LOG,
        "removalTime": None,
        "rootProcessInstanceId": None,
    }


@extend_schema_serializer(component_name="HistoricExternalTaskLogDto")
class HistoricExternalTaskLogSerializer(serializers.Serializer):
    """Camunda's HistoricExternalTaskLogDto (documents camunda_log_entry)."""

    id = serializers.CharField()
    externalTaskId = serializers.CharField()  # noqa: N815
    timestamp = CamundaDateField()
    topicName = serializers.CharField()  # noqa: N815
    workerId = _text()  # noqa: N815
    retries = serializers.IntegerField(allow_null=True)
    priority = serializers.IntegerField(allow_null=True, min_value=-(2**63), max_value=2**63 - 1)
    errorMessage = _text()  # noqa: N815
    activityId = _text()  # noqa: N815
    activityInstanceId = _text()  # noqa: N815
    executionId = _text()  # noqa: N815
    processInstanceId = _text()  # noqa: N815
    processDefinitionId = _text()  # noqa: N815
    processDefinitionKey = _text()  # noqa: N815
    tenantId = _text()  # noqa: N815
    creationLog = serializers.BooleanField()  # noqa: N815
    failureLog = serializers.BooleanField()  # noqa: N815
    successLog = serializers.BooleanField()  # noqa: N815
    deletionLog = serializers.BooleanField()  # noqa: N815
    removalTime = _date()  # noqa: N815
    rootProcessInstanceId = _text()  # noqa: N815
