"""Building blocks for the one-FilterSet-per-model rule.

A FilterSet is fed by three adapters that all produce the same plain dict: Camunda GET query
parameters (`data_from_query`: repeated keys and comma-separated lists), Camunda POST bodies
(`data_from_body`: JSON lists, booleans, objects) and the console (which also uses
`data_from_query`). Invalid values become a Camunda 400 through `filtered()`; the console shows
`form.errors` instead.
"""

import json
import re
from collections.abc import Mapping

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import CharField, TextField
from django.db.models.lookups import Lookup

from project.errors import InvalidRequest
from project.rest.dates import parse_date
from project.rest.parsers import NUL_MESSAGE, has_nul, parse_int

# Camunda's four log states (the flags of HistoricJobLogDto and HistoricExternalTaskLogDto);
# each app's log model maps its events onto them (HISTORY_EVENTS there).
CREATION_LOG, FAILURE_LOG, SUCCESS_LOG, DELETION_LOG = (
    "creationLog",
    "failureLog",
    "successLog",
    "deletionLog",
)
HISTORY_STATES = (CREATION_LOG, FAILURE_LOG, SUCCESS_LOG, DELETION_LOG)


def _bad(name_hint: str, value, why: str) -> ValidationError:
    return ValidationError(f"Cannot set query parameter to value '{value}': {why}", code=name_hint)


class ListField(forms.Field):
    """A list of strings from "a,b", ["a", "b"] or repeated query keys (already joined)."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list | tuple):
            items = []
            for item in value:
                if item is None or isinstance(item, dict | list):
                    raise _bad("list", value, "list items must be strings")
                items.extend(part.strip() for part in str(item).split(",") if part.strip())
            return items
        raise _bad("list", value, "expected a list of strings")


class TrueField(forms.Field):
    """Camunda flags: "Value may only be true, as false is the default behavior"."""

    def to_python(self, value):
        # false is Camunda's default behaviour (no filter), so it cleans to None: django-filter
        # then skips the filter even when it has a `method`.
        if value in (None, "") or value is False:
            return None
        if value is True:
            return True
        text = str(value).strip().lower()
        if text == "true":
            return True
        if text == "false":
            return None
        raise _bad("bool", value, "expected true or false")


class BooleanField(forms.Field):
    """A Camunda `Boolean` parameter where both values filter (`suspended`, `completed`):
    true or false, anything else a 400; absent means no filter."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "false"}:
            return text == "true"
        raise _bad("bool", value, "expected true or false")


class DateField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return parse_date(value)
        except InvalidRequest as error:
            raise ValidationError(error.message) from None


class LongField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return parse_int(value, "value", java_type="long")
        except InvalidRequest:
            raise _bad("long", value, f"Cannot convert value {value} to java type long") from None


class IntegerField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return parse_int(value, "value", java_type="int")
        except InvalidRequest:
            raise _bad("int", value, f"Cannot convert value {value} to java type int") from None


class StringField(forms.Field):
    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, dict | list | bool):
            raise _bad("string", value, "expected a string")
        return str(value)


# ---------------------------------------------------------------------------------------------
# LIKE patterns: every `*Like` parameter and the `like` variable operator go through these.

# A backslash escapes a wildcard or itself; any other backslash (a trailing one included) is
# literal. Camunda's like parameters keep `%` and `_` as the caller's wildcards and `\` as
# the escape character (its SQL says ESCAPE '\'); without this, PostgreSQL refuses a pattern
# ending in `\` ("LIKE pattern must not end with escape character") and SQLite reads it
# differently.
_LIKE_ESCAPES = re.compile(r"\\([%_\\])|\\")


def like_pattern(text: str) -> str:
    """A caller's LIKE pattern, rewritten so that both databases read it alike under
    ESCAPE '\\': `%` and `_` stay wildcards, `\\%` `\\_` `\\\\` stay escapes, and
    every other backslash becomes a literal one."""
    return _LIKE_ESCAPES.sub(lambda m: m.group(0) if m.group(1) else "\\\\", text)


@CharField.register_lookup
@TextField.register_lookup
class Like(Lookup):
    """SQL LIKE with the caller's own wildcards (`%`, `_`), as Camunda's `*Like` parameters and
    `like` operators take them; a plain string pattern is rewritten by like_pattern(), an
    expression must be built from one."""

    lookup_name = "camunda_like"

    def get_prep_lookup(self):
        if isinstance(self.rhs, str):
            return like_pattern(self.rhs)
        return super().get_prep_lookup()

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


class ListFilter(django_filters.Filter):
    """`fooIn`: the field is one of the given values. An empty list filters nothing."""

    field_class = ListField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        return super().filter(qs, value)


class TrueFilter(django_filters.Filter):
    """A flag that applies `method` (or field=True) when true and does nothing when false."""

    field_class = TrueField

    def filter(self, qs, value):
        if not value:
            return qs
        return super().filter(qs, value)


class BooleanFilter(django_filters.Filter):
    """`field = value` for true and for false (see BooleanField); `method` may take over."""

    field_class = BooleanField


class StringFilter(django_filters.Filter):
    field_class = StringField


class LikeFilter(StringFilter):
    """`fooLike`: the field matches the caller's LIKE pattern (see like_pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs["lookup_expr"] = "camunda_like"
        super().__init__(*args, **kwargs)


class ContainsFilter(StringFilter):
    """`fooContains` (ours, not Camunda's): the field contains the text, ignoring case; % and _
    are plain characters."""

    def __init__(self, *args, **kwargs):
        kwargs["lookup_expr"] = "icontains"
        super().__init__(*args, **kwargs)


class LongFilter(django_filters.Filter):
    field_class = LongField


class IntegerFilter(django_filters.Filter):
    field_class = IntegerField


class DateFilter(django_filters.Filter):
    field_class = DateField


class FailureGroupFilter(StringFilter):
    """Not a Camunda parameter: rows whose message (`field_name`), with ids, numbers, dates and
    quoted values normalised (project.failures), equals the value — one error group of the
    console's Failures page."""

    def filter(self, qs, value):
        if value is None:
            return qs
        from project import failures

        return failures.in_group(qs, self.field_name, value)


class IncidentAnnotationFilter(StringFilter):
    """Not a Camunda parameter: rows whose open incident's annotation contains the value (any
    case), as the console's Failures page narrows its groups."""

    def __init__(self, *args, incident_type: str, **kwargs):
        self.incident_type = incident_type
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value is None:
            return qs
        from project import incidents

        annotated = incidents.open_incidents(self.incident_type).filter(annotation__icontains=value)
        return qs.filter(pk__in=annotated.values("configuration"))


def _narrows(value) -> bool:
    # Not `value in (None, False, ...)`: 0 == False, and priority 0 is a filter.
    return not (value is None or value is False or (isinstance(value, str | list) and not value))


class CamundaFilterSet(django_filters.FilterSet):
    """Base FilterSet: Camunda parameter names, three input adapters, Camunda 400s."""

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if "_labels_resolved" not in cls.__dict__ and cls._meta.model is not None:
            # django-filter derives every unlabelled filter's form label from the model again
            # on each instance (~1 ms a request for ~35 filters); derive them once per class.
            for declared in cls.base_filters.values():
                if declared._label is None:
                    declared.model = cls._meta.model
                    declared.label  # noqa: B018 - the property computes and keeps the label
            cls._labels_resolved = True
        super().__init__(*args, **kwargs)

    @classmethod
    def list_names(cls) -> set[str]:
        return {name for name, f in cls.base_filters.items() if isinstance(f, ListFilter)}

    @classmethod
    def data_from_query(cls, params) -> dict:
        """Query parameters -> data. Repeated list keys are joined; other keys keep the last."""
        lists = cls.list_names()
        data = {}
        for name in params:
            if name not in cls.base_filters:
                continue
            values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
            data[name] = ",".join(values) if name in lists else values[-1]
        return data

    @classmethod
    def data_from_body(cls, body: Mapping) -> dict:
        """A POST body -> data. Nulls mean "not set", as Camunda treats them."""
        if not isinstance(body, Mapping):
            raise InvalidRequest("The request body must be a JSON object")
        return {
            name: value
            for name, value in body.items()
            if name in cls.base_filters and value is not None
        }

    def inert(self, data: dict) -> dict[str, str]:
        """Parameters of the cleaned `data` that change nothing on their own (name -> why),
        so whoever describes the query leaves them out; the default is none."""
        return {}

    def applied(self) -> dict:
        """The parameters that narrow the query, as cleaned values (call after is_valid()):
        what the query runs, for describing it in words. `false` flags, empty lists and
        parameters that act only with another one are not part of it."""
        data = getattr(self.form, "cleaned_data", {}) or {}
        inert = self.inert(data)
        return {
            name: data[name]
            for name in self.base_filters
            if name not in inert and _narrows(data.get(name))
        }

    def error_message(self) -> str:
        parts = []
        for name, errors in self.form.errors.items():
            for error in errors:
                text = str(error)
                if text.startswith("Cannot set query parameter to value"):
                    text = text.replace("query parameter", f"query parameter '{name}'", 1)
                elif name != "__all__":
                    text = f"Cannot set query parameter '{name}': {text}"
                parts.append(text)
        return "; ".join(parts)

    def filtered(self):
        """The filtered queryset, or a Camunda 400 naming every bad parameter."""
        if has_nul(dict(self.data)):
            raise InvalidRequest(f"Invalid query parameter: {NUL_MESSAGE}")
        if not self.is_valid():
            raise InvalidRequest(self.error_message())
        return self.qs


class LogIdFilter(StringFilter):
    """Camunda's `logId`: log ids are strings in Camunda's API and integers here, so a value
    that is no integer matches no entry (rather than failing the query)."""

    def filter(self, qs, value):
        if value is None:
            return qs
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            return qs.none()
        return qs.filter(pk=int(text))


class NoneFilter(StringFilter):
    """A Camunda parameter about something Taskyard has none of (`deploymentId`: there are no
    deployments): any value matches no entry."""

    def filter(self, qs, value):
        return qs if value is None else qs.none()


class CamundaLogFilterSet(CamundaFilterSet):
    """The parameters Camunda's historic job log and external task log queries share, over a
    log model whose QuerySet has `in_history_state()` (the app's one event → state table).

    Camunda's query holds one state: each of creationLog, failureLog, successLog and
    deletionLog set in that order replaces the one before, so the last of them given wins
    (creationLog and failureLog together mean failureLog). `withoutTenantId` wins over
    `tenantIdIn`, as the engine's query resets the tenant list when it is set."""

    LOG_STATES = HISTORY_STATES

    logId = LogIdFilter()
    activityIdIn = ListFilter(field_name="activity_id")
    executionIdIn = ListFilter(field_name="execution_id")
    processInstanceId = StringFilter(field_name="process_instance_id")
    processDefinitionId = StringFilter(field_name="process_definition_id")
    processDefinitionKey = StringFilter(field_name="process_definition_key")
    tenantIdIn = ListFilter(method="filter_together")
    withoutTenantId = TrueFilter(method="filter_together")
    creationLog = TrueFilter(method="filter_together")
    failureLog = TrueFilter(method="filter_together")
    successLog = TrueFilter(method="filter_together")
    deletionLog = TrueFilter(method="filter_together")

    def filter_together(self, qs, name, value):
        # States and tenants act together, applied once in filter_queryset.
        return qs

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        states = [state for state in self.LOG_STATES if data.get(state)]
        if states:
            queryset = queryset.in_history_state(states[-1])
        if data.get("withoutTenantId"):
            return queryset.filter(tenant_id__isnull=True)
        if data.get("tenantIdIn"):
            return queryset.filter(tenant_id__in=data["tenantIdIn"])
        return queryset


# ---------------------------------------------------------------------------------------------
# Conditions on named values (Camunda's processVariables; a job's payload kwargs):
# [{name, operator, value}] in a body, name_operator_value[,...] in a query.

VARIABLE_OPERATORS = ("eq", "neq", "gt", "gteq", "lt", "lteq", "like", "notLike")


def _query_value(text: str):
    """GET values arrive as text; Camunda reads numbers and booleans as such."""
    if text in {"true", "false"}:
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*(?:[eE][-+]?\d+)?", text):
        return float(text)
    return text


def parse_variable_conditions(value) -> list[dict]:
    """Conditions input as [{"name", "operator", "value"}]; raise ValidationError."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        conditions = []
        for item in value.split(","):
            if not item.strip():
                continue
            match = re.fullmatch(
                r"(?P<name>.+?)_(?P<op>" + "|".join(VARIABLE_OPERATORS) + r")_(?P<value>.*)",
                item.strip(),
                flags=re.DOTALL,
            )
            if not match:
                raise ValidationError(
                    f"variable query parameter '{item}' must be name_operator_value with operator "
                    f"one of {', '.join(VARIABLE_OPERATORS)}"
                )
            conditions.append(
                {
                    "name": match["name"],
                    "operator": match["op"],
                    "value": _query_value(match["value"]),
                }
            )
        return conditions
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValidationError("expected a list of {name, operator, value} objects")
    conditions = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValidationError(
                f"every condition needs a string 'name', got {json.dumps(item, default=str)}"
            )
        operator = item.get("operator")
        if operator not in VARIABLE_OPERATORS:
            raise ValidationError(
                f"invalid variable comparator specified: '{operator}' for variable "
                f"'{item['name']}'; use one of {', '.join(VARIABLE_OPERATORS)}"
            )
        if isinstance(item.get("value"), dict | list):
            raise ValidationError(f"the value of variable '{item['name']}' must be a scalar")
        if operator in {"like", "notLike"} and not isinstance(item.get("value"), str):
            raise ValidationError(
                f"operator '{operator}' of variable '{item['name']}' needs a string value"
            )
        if operator in {"gt", "gteq", "lt", "lteq"} and (
            item.get("value") is None or isinstance(item.get("value"), bool)
        ):
            raise ValidationError(
                f"operator '{operator}' of variable '{item['name']}' needs a number, "
                "string or date value"
            )
        conditions.append({"name": item["name"], "operator": operator, "value": item.get("value")})
    return conditions


class VariableConditionsField(forms.Field):
    def to_python(self, value):
        return parse_variable_conditions(value)


class VariableConditionsFilter(django_filters.Filter):
    field_class = VariableConditionsField
