"""OpenAPI helpers: our authentication classes (drf-spectacular matches exact classes), error
bodies and typed query parameters shared by the faces."""

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from project import filters


class BasicAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "project.rest.auth.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}


class SessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "project.rest.auth.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


# ---------------------------------------------------------------------------------------------
# Shared pieces for documenting the faces: error bodies and query parameters of a FilterSet.

# Camunda's ExceptionDto: every 4xx of the Camunda faces answers {"type", "message"}.
CamundaError = inline_serializer(
    "ExceptionDto",
    {"type": serializers.CharField(), "message": serializers.CharField()},
)

# The Flowable and seed faces answer errors as Flowable's REST API does.
FlowableError = inline_serializer(
    "FlowableErrorResponse",
    {"message": serializers.CharField(), "exception": serializers.CharField()},
)

_ERROR_DESCRIPTIONS = {
    400: "Invalid parameters or body, or the row's state forbids the action",
    401: "Not authenticated",
    403: "The user's role does not allow this operation",
    404: "No such row, or one of a tenant the user does not belong to",
    413: "The request body is larger than the configured limit",
    500: "The job's handler raised; the failure is recorded on the job",
}


def errors(*codes: int, body=CamundaError) -> dict:
    """Documented error responses, always including 401, 403 and 413."""
    return {
        code: OpenApiResponse(body, description=_ERROR_DESCRIPTIONS[code])
        for code in sorted({*codes, 401, 403, 413})
    }


def flowable_errors(*codes: int) -> dict:
    return errors(*codes, body=FlowableError)


def filter_parameters(filterset_class, descriptions: dict | None = None) -> list:
    """Query parameters of a CamundaFilterSet, typed as its fields parse them."""
    types = [
        (filters.TrueFilter, OpenApiTypes.BOOL),
        (filters.BooleanFilter, OpenApiTypes.BOOL),
        (filters.DateFilter, OpenApiTypes.DATETIME),
        (filters.LongFilter, OpenApiTypes.INT64),
        (filters.IntegerFilter, OpenApiTypes.INT),
    ]
    parameters = []
    for name, declared in filterset_class.base_filters.items():
        kind = next((t for cls, t in types if isinstance(declared, cls)), OpenApiTypes.STR)
        description = (descriptions or {}).get(name)
        if description is None and isinstance(declared, filters.ListFilter):
            description = "Comma-separated list"
        parameters.append(OpenApiParameter(name, kind, description=description))
    return parameters


def paging_parameters() -> list:
    return [
        OpenApiParameter("firstResult", OpenApiTypes.INT, description="Index of the first row"),
        OpenApiParameter("maxResults", OpenApiTypes.INT, description="Number of rows at most"),
    ]


def sorting_parameters(sort_keys) -> list:
    return [
        OpenApiParameter("sortBy", OpenApiTypes.STR, enum=list(sort_keys)),
        OpenApiParameter("sortOrder", OpenApiTypes.STR, enum=["asc", "desc"]),
    ]


def list_schema(summary: str, operation_id: str, tag: str, filterset, sort_keys, serializer):
    """A Camunda GET list: its FilterSet's parameters, sorting and paging; 400 on bad input."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=[tag],
        parameters=filter_parameters(filterset)
        + sorting_parameters(sort_keys)
        + paging_parameters(),
        request=None,
        responses={200: serializer(many=True), **errors(400)},
    )


def count_schema(summary: str, operation_id: str, tag: str, filterset):
    """A Camunda GET …/count: the list's filter parameters, answered as CountResultDto."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=[tag],
        parameters=filter_parameters(filterset),
        request=None,
        responses={200: CountSerializer, **errors(400)},
    )


def detail_schema(summary: str, operation_id: str, tag: str, id_parameter, serializer):
    """A Camunda GET …/{id}: one DTO, or 404."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=[tag],
        parameters=[id_parameter],
        request=None,
        responses={200: serializer, **errors(404)},
    )


def action_schema(
    summary: str,
    operation_id: str,
    tag: str,
    parameters: list,
    *,
    request=None,
    description: str | None = None,
    codes=(400, 404),
    **extra,
):
    """A Camunda operation on one row that answers 204 with an empty body (`extra`, e.g.
    `methods`, goes to extend_schema as it is)."""
    return extend_schema(
        summary=summary,
        operation_id=operation_id,
        tags=[tag],
        parameters=parameters,
        request=request,
        description=description,
        responses={204: None, **errors(*codes)},
        **extra,
    )


@extend_schema_serializer(component_name="CountResultDto")
class CountSerializer(serializers.Serializer):
    """Camunda's CountResultDto, of every count endpoint."""

    count = serializers.IntegerField(min_value=0)


# Camunda answers dates as yyyy-MM-dd'T'HH:mm:ss.SSSZ: the offset has no colon ("+0000"), which
# is not an RFC 3339 date-time, so "format: date-time" would describe them wrongly.
CAMUNDA_DATE = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$",
    "example": "2013-01-23T14:42:45.000+0000",
}


@extend_schema_field(CAMUNDA_DATE)
class CamundaDateField(serializers.CharField):
    """Documents a date in Camunda's REST format (answers: project.rest.dates.format_date)."""


class CamundaDateTimeFieldScheme(OpenApiSerializerFieldExtension):
    """The job API's date field answers Camunda's format too: document it as such. (Optional:
    the job API may not be installed yet.)"""

    target_class = "jobs.serializers.CamundaDateTimeField"
    optional = True

    def map_serializer_field(self, auto_schema, direction):
        return dict(CAMUNDA_DATE)
