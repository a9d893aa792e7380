"""The one FilterSet per model for jobs and job definitions, with Camunda's parameter names.

The Camunda GET adapter (`data_from_query`), the POST adapter (`data_from_body`) and the console
all feed these classes. Tenant scoping happens before (project.tenancy.scope), never here.
Sorting is not a filter: `JOB_SORT_KEYS` / `JOB_DEFINITION_SORT_KEYS` map Camunda's sortBy values
to model fields for project.rest.paging.order_by.
"""

import re
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, F, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform

from project import clock, incidents
from project.errors import InvalidRequest
from project.filters import (
    CamundaFilterSet,
    CamundaLogFilterSet,
    ContainsFilter,
    FailureGroupFilter,
    IncidentAnnotationFilter,
    Like,
    ListFilter,
    LongFilter,
    NoneFilter,
    StringFilter,
    TrueFilter,
    VariableConditionsField,
    VariableConditionsFilter,
    like_pattern,
)
from project.rest.dates import parse_date

from .models import WITH_EXCEPTION, Job, JobDefinition, JobLog

# Camunda's sortBy values for GET/POST /job, in the order the reference lists them.
JOB_SORT_KEYS = {
    "jobId": "id",
    "executionId": "execution_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "jobPriority": "priority",
    "jobRetries": "retries",
    "jobDueDate": "due_date",
    "tenantId": "tenant_id",
}

JOB_DEFINITION_SORT_KEYS = {
    "jobDefinitionId": "id",
    "activityId": "activity_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "jobType": "job_type",
    "jobConfiguration": "job_configuration",
    "tenantId": "tenant_id",
}

# Camunda's sortBy values for GET/POST /history/job-log. There are no deployments: every entry's
# deploymentId is null, so sorting by it leaves the order to the other keys. `occurrence`
# (Camunda's sequence counter) is the order entries were written in.
JOB_LOG_SORT_KEYS = {
    "timestamp": "timestamp",
    "jobId": "job_id",
    "jobDefinitionId": "job_definition_id",
    "jobDueDate": "due_date",
    "jobRetries": "retries",
    "jobPriority": "priority",
    "activityId": "activity_id",
    "executionId": "execution_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "deploymentId": None,
    "hostname": "hostname",
    "occurrence": "id",
    "tenantId": "tenant_id",
}

# Messages Camunda answers word for word; they are passed through without a parameter prefix.
VERBATIM = "verbatim"


class Condition:
    """One `operator_value` date condition (dueDates / createTimes): gt or lt a date."""

    OPERATORS = {"gt": "gt", "lt": "lt"}

    def __init__(self, operator: str, value):
        self.operator = operator
        self.value = value

    def __repr__(self):
        return f"Condition({self.operator!r}, {self.value!r})"

    def __eq__(self, other):
        return isinstance(other, Condition) and (self.operator, self.value) == (
            other.operator,
            other.value,
        )

    __hash__ = None


def _fix_plus(text: str) -> str:
    # An unencoded "+0200" in a query string arrives as " 0200"; put the plus back so clients
    # that forget to percent-encode the offset (Camunda's own docs examples do) still work.
    if len(text) > 5 and text[-5] == " " and text[-4:].isdigit():
        return text[:-5] + "+" + text[-4:]
    if len(text) > 6 and text[-6] == " " and text[-5:-3].isdigit() and text[-3] == ":":
        return text[:-6] + "+" + text[-5:]
    return text


class ConditionListField(forms.Field):
    """`gt_<date>,lt_<date>` (GET) or `[{"operator": "gt", "value": "<date>"}]` (POST)."""

    def __init__(self, *args, parameter: str = "dueDate", **kwargs):
        self.parameter = parameter
        super().__init__(*args, **kwargs)

    def _bad_operator(self, operator) -> ValidationError:
        return ValidationError(
            f"Invalid {self.parameter} comparator specified: {operator}", code=VERBATIM
        )

    def _condition(self, operator, value) -> Condition:
        if not isinstance(operator, str) or operator not in Condition.OPERATORS:
            raise self._bad_operator(operator)
        if value in (None, ""):
            raise ValidationError(
                f"Invalid {self.parameter} condition: '{operator}' needs a date value",
                code=VERBATIM,
            )
        try:
            date = parse_date(_fix_plus(str(value).strip()), f"{self.parameter}s")
        except InvalidRequest as error:
            raise ValidationError(error.message, code=VERBATIM) from None
        return Condition(operator, date)

    def _from_text(self, text: str) -> list[Condition]:
        conditions = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            operator, sep, value = part.partition("_")
            if not sep:
                raise ValidationError(
                    f"Invalid {self.parameter} condition '{part}': expected operator_value, "
                    "e.g. gt_2013-01-23T14:42:45.000+0200",
                    code=VERBATIM,
                )
            conditions.append(self._condition(operator, value))
        return conditions

    def to_python(self, value):
        if value in (None, "", []):
            return None
        if isinstance(value, str):
            return self._from_text(value) or None
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ValidationError(
                f"Invalid {self.parameter} conditions: expected a list of "
                '{"operator": ..., "value": ...} objects',
                code=VERBATIM,
            )
        conditions = []
        for item in value:
            if isinstance(item, Mapping):
                conditions.append(self._condition(item.get("operator"), item.get("value")))
            elif isinstance(item, str):
                conditions.extend(self._from_text(item))
            else:
                raise ValidationError(
                    f"Invalid {self.parameter} condition {item!r}: expected "
                    '{"operator": ..., "value": ...}',
                    code=VERBATIM,
                )
        return conditions or None


class ConditionListFilter(ListFilter):
    """Date conditions on one field: gt → strictly after, lt → strictly before (as Camunda)."""

    field_class = ConditionListField

    def filter(self, qs, value):
        if not value:
            return qs
        for condition in value:
            qs = qs.filter(**{f"{self.field_name}__{condition.operator}": condition.value})
        return qs


class FlagFilter(TrueFilter):
    """A Camunda `true`-only flag whose condition is a Q (or a callable returning one, for
    conditions on "now"). `false` is the same as absent.

    Not `method=`: django-filter's method proxy would call the method for `false` too.
    """

    def __init__(self, condition, *args, **kwargs):
        self.condition = condition
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        condition = self.condition() if callable(self.condition) else self.condition
        return qs.filter(condition)


# A keyword argument of a job's payload ({"args": [...], "kwargs": {...}}): a Python name.
KWARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KWARG_LOOKUPS = {
    "eq": "exact",
    "neq": "exact",
    "gt": "gt",
    "gteq": "gte",
    "lt": "lt",
    "lteq": "lte",
}


def _kwarg_is(name: str, kind: str) -> Q:
    """The keyword argument's JSON value is a number or a string (`kind`)."""
    column = f'"{Job._meta.db_table}"."payload"'
    if connection.vendor == "postgresql":
        sql = f"jsonb_typeof({column} -> 'kwargs' -> %s) = %s"
        params = [name, "number" if kind == "number" else "string"]
    else:
        types = ("integer", "real") if kind == "number" else ("text", "text")
        sql = f"json_type({column}, %s) IN (%s, %s)"
        params = [f"$.kwargs.{name}", *types]
    return Q(RawSQL(sql, params, output_field=BooleanField()))


def payload_kwarg_q(name: str, operator: str, value) -> Q:
    """Jobs whose payload keyword argument `name` satisfies `operator value` (the operators of
    Camunda's variable conditions, over the raw JSON value: 5 matches 5, "5" matches "5")."""
    kwargs = KeyTransform("kwargs", F("payload"))
    has = Q(**{"payload__kwargs__has_key": name})
    if operator in {"like", "notLike"}:
        matches = Q(Like(KeyTextTransform(name, kwargs), Value(like_pattern(str(value)))))
        return matches if operator == "like" else has & ~matches
    condition = has & Q(**{f"payload__kwargs__{name}__{_KWARG_LOOKUPS[operator]}": value})
    if operator not in {"eq", "neq"}:
        # Orderings compare like with like: numbers with numbers, text with text (JSON's
        # ordering across types differs between the databases and means nothing here).
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "number" if numeric else "text"
        condition &= _kwarg_is(name, kind)
    return has & ~condition if operator == "neq" else condition


class PayloadKwargsField(VariableConditionsField):
    def to_python(self, value):
        conditions = super().to_python(value)
        for condition in conditions:
            name = condition["name"]
            if not KWARG_NAME.fullmatch(name) or "__" in name:
                raise ValidationError(
                    f"'{name}' is not a keyword argument name (letters, digits and single _)"
                )
        return conditions


class PayloadKwargsFilter(VariableConditionsFilter):
    field_class = PayloadKwargsField


class CamundaMessagesMixin:
    """Pass Camunda's own error messages through unprefixed (e.g. the dueDate comparator)."""

    def error_message(self) -> str:
        parts = []
        for name, errors in self.form.errors.as_data().items():
            for error in errors:
                if error.code == VERBATIM:
                    parts.extend(error.messages)
                else:
                    text = " ".join(error.messages)
                    if text.startswith("Cannot set query parameter to value"):
                        text = text.replace("query parameter", f"query parameter '{name}'", 1)
                    elif name != "__all__":
                        text = f"Cannot set query parameter '{name}': {text}"
                    parts.append(text)
        return "; ".join(parts)


def executable_condition() -> Q:
    """Camunda's `executable`: retries left and due (no due date counts as due now)."""
    return Q(retries__gt=0) & (Q(due_date__isnull=True) | Q(due_date__lte=clock.now()))


def acquired_condition() -> Q:
    """Held by an executor right now: a lock that has not expired (an expired lock is free)."""
    return Q(lock_expiration_time__gt=clock.now())


class JobFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        if data.get("timers") and data.get("messages"):
            raise ValidationError(
                "Parameter 'timers' cannot be used together with parameter 'messages'.",
                code=VERBATIM,
                # The parameters that clash, for callers that word the error themselves.
                params={"together": ("timers", "messages")},
            )
        return data


class JobFilter(CamundaMessagesMixin, CamundaFilterSet):
    """Every query parameter of Camunda's GET/POST /job and /job/count."""

    jobId = StringFilter(field_name="id")
    jobIds = ListFilter(field_name="id")
    jobDefinitionId = StringFilter(field_name="job_definition_id")
    processInstanceId = StringFilter(field_name="process_instance_id")
    processInstanceIds = ListFilter(field_name="process_instance_id")
    executionId = StringFilter(field_name="execution_id")
    processDefinitionId = StringFilter(field_name="process_definition_id")
    processDefinitionKey = StringFilter(field_name="process_definition_key")
    activityId = StringFilter(field_name="activity_id")
    withRetriesLeft = FlagFilter(Q(retries__gt=0))
    executable = FlagFilter(executable_condition)
    timers = FlagFilter(Q(type=Job.Type.TIMER))
    messages = FlagFilter(Q(type=Job.Type.MESSAGE))
    dueDates = ConditionListFilter(field_name="due_date", parameter="dueDate")
    createTimes = ConditionListFilter(field_name="create_time", parameter="createTime")
    withException = FlagFilter(WITH_EXCEPTION)
    exceptionMessage = StringFilter(field_name="exception_message")
    # Not Camunda's: what operators search a failure by, and a job by its arguments.
    exceptionMessageContains = ContainsFilter(field_name="exception_message")
    payloadKwargs = PayloadKwargsFilter(method="filter_payload_kwargs")
    failedActivityId = StringFilter(field_name="failed_activity_id")
    noRetriesLeft = FlagFilter(Q(retries=0))
    active = FlagFilter(Q(suspended=False))
    suspended = FlagFilter(Q(suspended=True))
    acquired = FlagFilter(acquired_condition)
    priorityLowerThanOrEquals = LongFilter(field_name="priority", lookup_expr="lte")
    priorityHigherThanOrEquals = LongFilter(field_name="priority", lookup_expr="gte")
    tenantIdIn = ListFilter(method="filter_tenants")
    withoutTenantId = TrueFilter(method="filter_tenants")
    includeJobsWithoutTenantId = TrueFilter(method="filter_tenants")
    # Taskyard's, not Camunda's: the executor's queue (django.tasks queue_name), so the
    # console's queues page links each queue to exactly its jobs.
    queueName = StringFilter(field_name="queue_name")
    # Not Camunda parameters: what the console's Failures page links and acts on (an exact
    # handler, one error group, the text of an incident's annotation).
    handler = StringFilter(field_name="handler")
    failureGroup = FailureGroupFilter(field_name="exception_message")
    incidentAnnotation = IncidentAnnotationFilter(incident_type=incidents.FAILED_JOB)

    class Meta:
        model = Job
        fields: list[str] = []
        form = JobFilterForm

    sort_keys = JOB_SORT_KEYS

    def inert(self, data):
        return tenant_inert(data, "tenantIdIn", "withoutTenantId", "includeJobsWithoutTenantId")

    @classmethod
    def list_names(cls) -> set[str]:
        # Repeated `dueDates=gt_…&dueDates=lt_…` keys are joined like list parameters.
        return super().list_names() | {"dueDates", "createTimes"}

    def filter_tenants(self, qs, name, value):
        # The three tenant parameters act together, applied once (on the first one seen).
        return qs

    def filter_payload_kwargs(self, qs, name, value):
        for condition in value or ():
            qs = qs.filter(
                payload_kwarg_q(condition["name"], condition["operator"], condition["value"])
            )
        return qs

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return tenant_filter(
            queryset,
            self.form.cleaned_data.get("tenantIdIn"),
            self.form.cleaned_data.get("withoutTenantId"),
            self.form.cleaned_data.get("includeJobsWithoutTenantId"),
        )


def tenant_inert(data, tenant_ids: str, without: str, include_without: str) -> dict[str, str]:
    """The tenant parameters tenant_filter() ignores for these cleaned values."""
    if data.get(without):
        return {
            tenant_ids: f"'{without}' wins over it",
            include_without: f"'{without}' wins over it",
        }
    if not data.get(tenant_ids):
        return {include_without: f"it only widens '{tenant_ids}'"}
    return {}


def tenant_filter(queryset, tenant_ids, without_tenant_id, include_without_tenant_id):
    """Camunda's tenant parameters: `withoutTenantId` wins over `tenantIdIn` (the engine's
    query resets the tenant list when it is set); `include…WithoutTenantId` only widens a
    `tenantIdIn` filter and does nothing on its own."""
    if without_tenant_id:
        return queryset.filter(tenant_id__isnull=True)
    if tenant_ids:
        condition = Q(tenant_id__in=tenant_ids)
        if include_without_tenant_id:
            condition |= Q(tenant_id__isnull=True)
        return queryset.filter(condition)
    return queryset


class JobDefinitionFilter(CamundaMessagesMixin, CamundaFilterSet):
    """Every query parameter of Camunda's GET/POST /job-definition and /job-definition/count."""

    jobDefinitionId = StringFilter(field_name="id")
    activityIdIn = ListFilter(field_name="activity_id")
    processDefinitionId = StringFilter(field_name="process_definition_id")
    processDefinitionKey = StringFilter(field_name="process_definition_key")
    jobType = StringFilter(field_name="job_type")
    jobConfiguration = StringFilter(field_name="job_configuration")
    active = FlagFilter(Q(suspended=False))
    suspended = FlagFilter(Q(suspended=True))
    withOverridingJobPriority = FlagFilter(Q(overriding_priority__isnull=False))
    tenantIdIn = ListFilter(method="filter_tenants")
    withoutTenantId = TrueFilter(method="filter_tenants")
    includeJobDefinitionsWithoutTenantId = TrueFilter(method="filter_tenants")

    class Meta:
        model = JobDefinition
        fields: list[str] = []

    sort_keys = JOB_DEFINITION_SORT_KEYS

    def inert(self, data):
        return tenant_inert(
            data, "tenantIdIn", "withoutTenantId", "includeJobDefinitionsWithoutTenantId"
        )

    def filter_tenants(self, qs, name, value):
        return qs

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return tenant_filter(
            queryset,
            self.form.cleaned_data.get("tenantIdIn"),
            self.form.cleaned_data.get("withoutTenantId"),
            self.form.cleaned_data.get("includeJobDefinitionsWithoutTenantId"),
        )


class JobLogFilter(CamundaLogFilterSet):
    """Every query parameter of Camunda's GET/POST /history/job-log and its count, over the
    entries JobLog.objects.history() keeps (the log states, tenants and the parameters both
    logs share come from CamundaLogFilterSet)."""

    jobId = StringFilter(field_name="job_id")
    jobExceptionMessage = StringFilter(field_name="exception_message")
    jobDefinitionId = StringFilter(field_name="job_definition_id")
    jobDefinitionType = StringFilter(field_name="job_definition_type")
    jobDefinitionConfiguration = StringFilter(field_name="job_definition_configuration")
    failedActivityIdIn = ListFilter(field_name="failed_activity_id")
    deploymentId = NoneFilter()
    hostname = StringFilter(field_name="hostname")
    jobPriorityLowerThanOrEquals = LongFilter(field_name="priority", lookup_expr="lte")
    jobPriorityHigherThanOrEquals = LongFilter(field_name="priority", lookup_expr="gte")

    class Meta:
        model = JobLog
        fields: list[str] = []

    sort_keys = JOB_LOG_SORT_KEYS
