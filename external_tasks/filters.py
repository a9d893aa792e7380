"""The one FilterSet for external tasks, named with Camunda's query parameter names.

The Camunda GET and POST queries, the count endpoints, bulk retries (`externalTaskQuery`) and the
console all build `ExternalTaskFilter` from their own input adapter and call `.filtered()` (or
`is_valid()` + `form.errors` in the console). Scoping to the user's tenants happens before, via
`project.tenancy.scope`, never here.
"""

from django.db import connection
from django.db.models import (
    ExpressionWrapper,
    F,
    JSONField,
    Q,
    TextField,
    Value,
    lookups,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Upper

from external_tasks.models import FAILED, ExternalTask, ExternalTaskLog
from project import clock, incidents
from project.filters import (
    CamundaFilterSet,
    CamundaLogFilterSet,
    ContainsFilter,
    DateFilter,
    FailureGroupFilter,
    IncidentAnnotationFilter,
    Like,
    LikeFilter,
    ListFilter,
    LongFilter,
    StringFilter,
    TrueFilter,
    VariableConditionsFilter,
    like_pattern,
)

# Camunda sortBy value -> model field, for GET sortBy/sortOrder and POST sorting.
SORT_KEYS = {
    "id": "id",
    "lockExpirationTime": "lock_expiration_time",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "tenantId": "tenant_id",
    "taskPriority": "priority",
    "createTime": "create_time",
}

# Camunda's sortBy values for GET/POST /history/external-task-log.
LOG_SORT_KEYS = {
    "timestamp": "timestamp",
    "externalTaskId": "task_id",
    "topicName": "topic_name",
    "workerId": "worker_id",
    "retries": "retries",
    "priority": "priority",
    "activityId": "activity_id",
    "activityInstanceId": "activity_instance_id",
    "executionId": "execution_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "processDefinitionKey": "process_definition_key",
    "tenantId": "tenant_id",
}

NUMERIC_TYPES = ("Integer", "Long", "Short", "Double")


def _variable_names(name: str, ignore_case: bool) -> list[str]:
    """The stored variable names a condition applies to. Ignoring case needs the distinct keys
    actually present, because JSON keys can only be matched exactly in SQL."""
    if not ignore_case:
        return [name]
    table = ExternalTask._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f'SELECT DISTINCT jsonb_object_keys("variables") FROM "{table}" '
                'WHERE lower("variables"::text) LIKE %s',
                [f"%{name.lower()}%"],
            )
        else:
            cursor.execute(
                f'SELECT DISTINCT j.key FROM "{table}", json_each("{table}"."variables") AS j '
                "WHERE lower(j.key) = %s",
                [name.lower()],
            )
        keys = [row[0] for row in cursor.fetchall()]
    return [key for key in keys if key.lower() == name.lower()] or [name]


def variable(name: str, *keys: str) -> KeyTransform:
    """variables -> name [-> key ...] as an expression. Built from transforms rather than a
    "variables__name__value" string so that names containing "__" stay one key."""
    # A typed column reference, so lookups prepare their JSON values at construction time.
    expression = KeyTransform(name, ExpressionWrapper(F("variables"), output_field=JSONField()))
    for key in keys:
        expression = KeyTransform(key, expression)
    return expression


def json_lookup(expression, lookup_name: str, value) -> Q:
    lookup = expression.get_lookup(lookup_name)
    return Q(lookup(expression, value))


_COMPARISONS = {"eq": "exact", "neq": "exact", "gt": "gt", "gteq": "gte", "lt": "lt", "lteq": "lte"}
_TEXT_LOOKUPS = {
    "exact": lookups.Exact,
    "gt": lookups.GreaterThan,
    "gte": lookups.GreaterThanOrEqual,
    "lt": lookups.LessThan,
    "lte": lookups.LessThanOrEqual,
}


def variable_condition_q(
    name: str, operator: str, value, names_ignore_case=False, values_ignore_case=False
) -> Q:
    """A Q matching tasks whose variable `name` satisfies `operator value`, typed like Camunda:
    numbers compare with numeric variables, strings with string variables."""
    result = Q(pk__in=[])
    for key in _variable_names(name, names_ignore_case):
        has_variable = json_lookup(variable(key), "has_key", "type")
        type_is = variable(key, "type")
        stored = variable(key, "value")
        if operator in {"like", "notLike"}:
            text = Cast(KeyTextTransform("value", variable(key)), TextField())
            pattern = Value(like_pattern(str(value)))
            if values_ignore_case:
                text, pattern = Upper(text), Upper(pattern)
            matches = Q(Like(text, pattern)) & json_lookup(type_is, "exact", "String")
            result |= matches if operator == "like" else has_variable & ~matches
            continue
        lookup = _COMPARISONS[operator]
        if value is None:
            condition = has_variable & (
                json_lookup(type_is, "exact", "Null") | json_lookup(stored, "isnull", True)
            )
        elif isinstance(value, bool):
            condition = json_lookup(type_is, "exact", "Boolean") & json_lookup(
                stored, "exact", value
            )
        elif isinstance(value, int | float):
            condition = json_lookup(type_is, "in", list(NUMERIC_TYPES)) & json_lookup(
                stored, lookup, value
            )
        else:
            text = Cast(KeyTextTransform("value", variable(key)), TextField())
            compare = Value(str(value))
            if values_ignore_case:
                text, compare = Upper(text), Upper(compare)
            condition = Q(_TEXT_LOOKUPS[lookup](text, compare)) & json_lookup(
                type_is, "in", ["String", "Date", "Xml"]
            )
        if operator == "neq":
            # Camunda's neq matches tasks that have the variable with a different value.
            condition = has_variable & ~condition
        result |= condition
    return result


# ---------------------------------------------------------------------------------------------


class ExternalTaskFilter(CamundaFilterSet):
    """Every query parameter of Camunda's GET/POST /external-task (7.9 seed through latest 7.x)."""

    externalTaskId = StringFilter(field_name="id")
    externalTaskIdIn = ListFilter(field_name="id")
    topicName = StringFilter(field_name="topic_name")
    workerId = StringFilter(field_name="worker_id")
    locked = TrueFilter(method="filter_locked")
    notLocked = TrueFilter(method="filter_not_locked")
    withRetriesLeft = TrueFilter(method="filter_with_retries_left")
    noRetriesLeft = TrueFilter(method="filter_no_retries_left")
    lockExpirationAfter = DateFilter(field_name="lock_expiration_time", lookup_expr="gt")
    lockExpirationBefore = DateFilter(field_name="lock_expiration_time", lookup_expr="lt")
    activityId = StringFilter(field_name="activity_id")
    activityIdIn = ListFilter(field_name="activity_id")
    executionId = StringFilter(field_name="execution_id")
    processInstanceId = StringFilter(field_name="process_instance_id")
    processInstanceIdIn = ListFilter(field_name="process_instance_id")
    processDefinitionId = StringFilter(field_name="process_definition_id")
    processDefinitionKey = StringFilter(field_name="process_definition_key")
    processDefinitionKeyIn = ListFilter(field_name="process_definition_key")
    processDefinitionName = StringFilter(field_name="process_definition_name")
    processDefinitionNameLike = LikeFilter(field_name="process_definition_name")
    tenantIdIn = ListFilter(field_name="tenant_id")
    withoutTenantId = TrueFilter(field_name="tenant_id", lookup_expr="isnull")
    active = TrueFilter(method="filter_active")
    suspended = TrueFilter(field_name="suspended")
    priorityHigherThanOrEquals = LongFilter(field_name="priority", lookup_expr="gte")
    priorityLowerThanOrEquals = LongFilter(field_name="priority", lookup_expr="lte")
    processVariables = VariableConditionsFilter(method="filter_process_variables")
    # Not Camunda parameters: what the Flowable and seed faces (and the console) filter on.
    activityName = StringFilter(field_name="activity_name")
    errorMessage = StringFilter(field_name="error_message")
    # Not Camunda's: what operators search a failure by.
    errorMessageContains = ContainsFilter(field_name="error_message")
    withErrorMessage = TrueFilter(method="filter_with_error_message")
    tenantId = StringFilter(field_name="tenant_id")
    tenantIdLike = LikeFilter(field_name="tenant_id")
    variableNamesIgnoreCase = TrueFilter(method="filter_noop")
    variableValuesIgnoreCase = TrueFilter(method="filter_noop")
    # What the console's Failures page links and acts on: one error group, the text of an
    # incident's annotation.
    failureGroup = FailureGroupFilter(field_name="error_message")
    incidentAnnotation = IncidentAnnotationFilter(incident_type=incidents.FAILED_EXTERNAL_TASK)

    class Meta:
        model = ExternalTask
        fields = []

    def inert(self, data):
        if data.get("processVariables"):
            return {}
        why = "it only changes how 'processVariables' compare"
        return {"variableNamesIgnoreCase": why, "variableValuesIgnoreCase": why}

    def filter_locked(self, qs, name, value):
        if not value:  # TrueFilter.filter is bypassed for method filters
            return qs
        return qs.filter(lock_expiration_time__gt=clock.now())

    def filter_not_locked(self, qs, name, value):
        if not value:  # TrueFilter.filter is bypassed for method filters
            return qs
        return qs.filter(
            Q(lock_expiration_time__isnull=True) | Q(lock_expiration_time__lte=clock.now())
        )

    def filter_with_retries_left(self, qs, name, value):
        if not value:  # TrueFilter.filter is bypassed for method filters
            return qs
        return qs.filter(has_retries=True)  # retries unset or positive

    def filter_no_retries_left(self, qs, name, value):
        if not value:  # TrueFilter.filter is bypassed for method filters
            return qs
        return qs.filter(FAILED)

    def filter_active(self, qs, name, value):
        if not value:  # TrueFilter.filter is bypassed for method filters
            return qs
        return qs.filter(suspended=False)

    def filter_with_error_message(self, qs, name, value):
        if not value:
            return qs
        return qs.filter(error_message__isnull=False)

    def filter_noop(self, qs, name, value):
        # Read by filter_process_variables; on its own it changes nothing, as in Camunda.
        return qs

    def filter_process_variables(self, qs, name, value):
        if not value:
            return qs
        data = self.form.cleaned_data
        names_ic = bool(data.get("variableNamesIgnoreCase"))
        values_ic = bool(data.get("variableValuesIgnoreCase"))
        for condition in value:
            qs = qs.filter(
                variable_condition_q(
                    condition["name"],
                    condition["operator"],
                    condition["value"],
                    names_ignore_case=names_ic,
                    values_ignore_case=values_ic,
                )
            )
        return qs


def sort_fields() -> dict[str, str]:
    """Camunda sort keys the console may offer as sortable columns."""
    return dict(SORT_KEYS)


class ExternalTaskLogFilter(CamundaLogFilterSet):
    """Every query parameter of Camunda's GET/POST /history/external-task-log and its count,
    over the entries ExternalTaskLog.objects.history() keeps (the log states, tenants and the
    parameters both logs share come from CamundaLogFilterSet)."""

    externalTaskId = StringFilter(field_name="task_id")
    topicName = StringFilter(field_name="topic_name")
    workerId = StringFilter(field_name="worker_id")
    errorMessage = StringFilter(field_name="error_message")
    activityInstanceIdIn = ListFilter(field_name="activity_instance_id")
    priorityLowerThanOrEquals = LongFilter(field_name="priority", lookup_expr="lte")
    priorityHigherThanOrEquals = LongFilter(field_name="priority", lookup_expr="gte")

    class Meta:
        model = ExternalTaskLog
        fields: list[str] = []

    sort_keys = LOG_SORT_KEYS
