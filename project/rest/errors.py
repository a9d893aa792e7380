"""Errors on the Camunda face: {"type", "message"} with a 4xx status, as Camunda answers."""

from collections.abc import Mapping

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from project.errors import DomainError


def error_body(error_type: str, message: str) -> dict:
    return {"type": error_type, "message": message}


def flatten(detail) -> str:
    if isinstance(detail, Mapping):
        return "; ".join(
            f"{key}: {flatten(value)}" if key != "non_field_errors" else flatten(value)
            for key, value in detail.items()
        )
    if isinstance(detail, list | tuple):
        return "; ".join(flatten(item) for item in detail)
    return str(detail)


def camunda_exception_handler(exc, context):
    """DRF exception handler answering every error in Camunda's format."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.error_type, exc.message), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("InvalidRequestException", str(exc) or "Not found"), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = Response(
            error_body("AuthenticationException", flatten(exc.detail)),
            status=status.HTTP_401_UNAUTHORIZED,
        )
        request = context.get("request")
        view = context.get("view")
        header = view.get_authenticate_header(request) if view and request else None
        response["WWW-Authenticate"] = header or 'Basic realm="taskyard"'
        return response
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(error_body("AuthorizationException", flatten(exc.detail)), status=403)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("InvalidRequestException", flatten(exc.detail)), status=400)
    if isinstance(exc, exceptions.APIException):
        error_type = "InvalidRequestException" if exc.status_code < 500 else "RestException"
        response = Response(error_body(error_type, flatten(exc.detail)), status=exc.status_code)
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None
