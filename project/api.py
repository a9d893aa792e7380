from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

CAMUNDA_API_VERSION = "7.16.0"


@extend_schema(
    summary="Camunda REST API version this server speaks",
    responses=inline_serializer("Version", {"version": serializers.CharField()}),
)
@api_view(["GET"])
def version(request):
    return Response({"version": CAMUNDA_API_VERSION})


@extend_schema(
    summary="Process engines (Taskyard has one, named default)",
    responses=inline_serializer("Engine", {"name": serializers.CharField()}, many=True),
)
@api_view(["GET"])
def engines(request):
    return Response([{"name": "default"}])
