import logging
import sys

from django.db import InterfaceError, OperationalError, connections

from project.middleware import error_response

logger = logging.getLogger("taskyard")


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
