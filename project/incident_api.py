"""Camunda 7 /engine-rest/incident: the open incidents of jobs and external tasks.

The incident rows are project's own (project.incidents opens and closes them for the apps), so
the resource lives here, below the apps, and the Camunda face routes it (project/urls.py). The
query parameters, sort keys, IncidentDto and the status codes and messages of the annotation
and resolve operations are Camunda's (engine-rest-openapi templates, paths/incident/…).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from project import incidents
from project.errors import InvalidRequest, NotFound
from project.filters import (
    CamundaFilterSet,
    DateFilter,
    LikeFilter,
    ListFilter,
    StringFilter,
)
from project.models import Incident
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

# Camunda's sortBy values for GET /incident, in the template's order. A failed job or task is
# its own cause and root cause, so those two sort by the id.
SORT_KEYS = {
    "incidentId": "id",
    "incidentMessage": "incident_message",
    "incidentTimestamp": "incident_timestamp",
    "incidentType": "incident_type",
    "executionId": "execution_id",
    "activityId": "activity_id",
    "processInstanceId": "process_instance_id",
    "processDefinitionId": "process_definition_id",
    "causeIncidentId": "id",
    "rootCauseIncidentId": "id",
    "configuration": "configuration",
    "tenantId": "tenant_id",
}


class IncidentFilter(CamundaFilterSet):
    """Every query parameter of Camunda's GET /incident and /incident/count."""

    incidentId = StringFilter(field_name="id")  # noqa: N815
    incidentType = StringFilter(field_name="incident_type")  # noqa: N815
    incidentMessage = StringFilter(field_name="incident_message")  # noqa: N815
    incidentMessageLike = LikeFilter(field_name="incident_message")  # noqa: N815
    processDefinitionId = StringFilter(field_name="process_definition_id")  # noqa: N815
    processDefinitionKeyIn = ListFilter(field_name="process_definition_key")  # noqa: N815
    processInstanceId = StringFilter(field_name="process_instance_id")  # noqa: N815
    executionId = StringFilter(field_name="execution_id")  # noqa: N815
    incidentTimestampBefore = DateFilter(  # noqa: N815
        field_name="incident_timestamp", lookup_expr="lt"
    )
    incidentTimestampAfter = DateFilter(  # noqa: N815
        field_name="incident_timestamp", lookup_expr="gt"
    )
    activityId = StringFilter(field_name="activity_id")  # noqa: N815
    failedActivityId = StringFilter(field_name="failed_activity_id")  # noqa: N815
    causeIncidentId = StringFilter(field_name="id")  # noqa: N815
    rootCauseIncidentId = StringFilter(field_name="id")  # noqa: N815
    configuration = StringFilter(field_name="configuration")
    tenantIdIn = ListFilter(field_name="tenant_id")  # noqa: N815
    jobDefinitionIdIn = ListFilter(field_name="job_definition_id")  # noqa: N815

    sort_keys = SORT_KEYS

    class Meta:
        model = Incident
        fields = []


def incident_dto(incident: Incident) -> dict:
    """Camunda's IncidentDto, key for key in its order."""
    return {
        "id": incident.id,
        "processDefinitionId": incident.process_definition_id,
        "processInstanceId": incident.process_instance_id,
        "executionId": incident.execution_id,
        "incidentTimestamp": format_date(incident.incident_timestamp),
        "incidentType": incident.incident_type,
        "activityId": incident.activity_id,
        "failedActivityId": incident.failed_activity_id,
        "causeIncidentId": incident.id,
        "rootCauseIncidentId": incident.id,
        "configuration": incident.configuration,
        "tenantId": incident.tenant_id,
        "incidentMessage": incident.incident_message,
        "jobDefinitionId": incident.job_definition_id,
        "annotation": incident.annotation,
    }


def _text():
    return serializers.CharField(allow_null=True)


class IncidentSerializer(serializers.Serializer):
    """Documents IncidentDto (answers are built by incident_dto)."""

    id = serializers.CharField()
    processDefinitionId = _text()  # noqa: N815
    processInstanceId = _text()  # noqa: N815
    executionId = _text()  # noqa: N815
    incidentTimestamp = CamundaDateField()  # noqa: N815
    incidentType = serializers.CharField()  # noqa: N815
    activityId = _text()  # noqa: N815
    failedActivityId = _text()  # noqa: N815
    causeIncidentId = _text()  # noqa: N815
    rootCauseIncidentId = _text()  # noqa: N815
    configuration = _text()
    tenantId = _text()  # noqa: N815
    incidentMessage = _text()  # noqa: N815
    jobDefinitionId = _text()  # noqa: N815
    annotation = _text()

    class Meta:
        ref_name = "IncidentDto"


AnnotationSerializer = inline_serializer(
    "AnnotationDto", {"annotation": serializers.CharField(allow_null=True, required=False)}
)

ID_PARAMETER = OpenApiParameter("incident_id", OpenApiTypes.STR, OpenApiParameter.PATH)


def open_incidents(user, params):
    """The open incidents the user may see, filtered by Camunda's query parameters."""
    queryset = incidents.visible_to(user).filter(state=Incident.State.OPEN)
    return IncidentFilter(IncidentFilter.data_from_query(params), queryset=queryset).filtered()


class IncidentViewSet(viewsets.ViewSet):
    """Camunda's incident resource: reads for viewers, annotations for operators."""

    lookup_url_kwarg = "incident_id"
    lookup_value_converter = "str"

    def get_permissions(self):
        if self.action in {"annotation", "destroy"}:
            return [CanOperate()]
        return [CanView()]

    @list_schema(
        "Get List", "getIncidents", "Incident", IncidentFilter, SORT_KEYS, IncidentSerializer
    )
    def list(self, request):
        # The sorting is checked first, so a bad sort key is a 400 even on no rows.
        expressions = order_by(sorting_from_query(request.query_params), SORT_KEYS)
        rows = open_incidents(request.user, request.query_params).order_by(*expressions)
        return Response([incident_dto(row) for row in page(rows, request.query_params)])

    @count_schema("Get List Count", "getIncidentsCount", "Incident", IncidentFilter)
    @action(detail=False, methods=["get"])
    def count(self, request):
        return Response({"count": open_incidents(request.user, request.query_params).count()})

    @detail_schema("Get Incident", "getIncident", "Incident", ID_PARAMETER, IncidentSerializer)
    def retrieve(self, request, incident_id):
        incident = incidents.get_open(request.user, incident_id)
        if incident is None:
            raise NotFound(f"No matching incident with id {incident_id}")
        return Response(incident_dto(incident))

    @action_schema(
        "Resolve Incident",
        "resolveIncident",
        "Incident",
        [ID_PARAMETER],
        description="Camunda refuses to resolve failedJob and failedExternalTask incidents "
        "(400): set the job's or external task's retries instead. Those are the only types "
        "Taskyard raises.",
    )
    def destroy(self, request, incident_id):
        incidents.resolve_by_id(request.user, incident_id)
        return Response(status=status.HTTP_204_NO_CONTENT)  # pragma: no cover - always refused

    @action_schema(
        "Set Incident Annotation",
        "setIncidentAnnotation",
        "Incident",
        [ID_PARAMETER],
        request=AnnotationSerializer,
        codes=(400,),
        methods=["PUT"],
    )
    @action_schema(
        "Clear Incident Annotation",
        "clearIncidentAnnotation",
        "Incident",
        [ID_PARAMETER],
        codes=(400,),
        methods=["DELETE"],
    )
    @action(detail=True, methods=["put", "delete"])
    def annotation(self, request, incident_id):
        if request.method == "DELETE":
            annotation = None
        else:
            body = json_body(request)
            unknown = sorted(set(body) - {"annotation"})
            if unknown:
                raise InvalidRequest(f"Unknown property(ies) in the request body: {unknown}")
            annotation = body.get("annotation")
        incidents.set_annotation(request.user, incident_id, annotation, source="api")
        return Response(status=status.HTTP_204_NO_CONTENT)
