"""The project's own errors, and Django's 500 handler.

Domain code (services, filters, value parsing) raises these plain exceptions; each face maps
them to its format at its edge: Camunda's {"type", "message"} (project.rest.errors), Flowable's
{"message", "exception"}, the seed API's, and the console's messages. `error_type` is the
Camunda exception name a client sees, `status_code` the HTTP status every face answers with.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError, connections

from project.middleware import error_response

logger = logging.getLogger("taskyard")


class DomainError(Exception):
    """A request the project refuses, with the status and error type every face reports."""

    status_code = 400
    error_type = "InvalidRequestException"

    def __init__(self, message: str, status_code: int | None = None, error_type: str | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type


class InvalidRequest(DomainError):
    """400: a parameter or body value is wrong."""


class NotFound(DomainError):
    """404: no such row, or not one the caller may see (other tenants look exactly the same)."""

    status_code = 404


class BadUserRequest(DomainError):
    """400: the request is well formed but the row's state forbids it (e.g. a foreign lock)."""

    error_type = "BadUserRequestException"


def not_found(request, exception=None):
    """Django's 404 handler: a path no route knows, in the format of the face under whose
    prefix it lies (Camunda answers JAX-RS's NotFoundException there), else the console page."""
    if request.path_info.startswith("/engine-rest/"):
        return error_response(request, 404, "NotFoundException", "HTTP 404 Not Found")
    message = "There is no page at this address."
    if request.path_info.startswith(("/external-job-api/", "/api/external-jobs")):
        message = f"No resource at {request.path_info}"
    return error_response(request, 404, "NotFoundException", message)


def bad_request(request, exception=None):
    """Django's 400 handler (a request Django itself refuses), in the face's format."""
    return error_response(request, 400, "InvalidRequestException", "Bad request")


def server_error(request):
    """Django's 500 handler. A lost database becomes a clear 503 in the face's format (the next
    request reconnects by itself once it is back); anything else a 500 in that format."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        for connection in connections.all(initialized_only=True):
            connection.close_if_unusable_or_obsolete()
        response = error_response(
            request,
            503,
            "ServiceUnavailableException",
            "The database is unavailable; try again shortly.",
        )
        response["Retry-After"] = "5"
        return response
    message = "Internal server error; the incident has been logged."
    request_id = getattr(request, "request_id", None)  # set by project.logs.RequestLogMiddleware
    if request_id:
        # The same id is on the log lines of this request: quoting it finds the traceback.
        message += f" Request id: {request_id}."
    return error_response(request, 500, "RestException", message)
