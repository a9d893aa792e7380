from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpResponse, JsonResponse
from django.middleware import clickjacking, common, csp, csrf, security
from django.shortcuts import render
from whitenoise.middleware import WhiteNoiseMiddleware


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Console pages redirect to the login page; API paths are left to DRF, which answers 401."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(settings.API_PATH_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


# The headline of Flowable's (and the seed API's) error body per status.
FLOWABLE_STATUS_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request entity too large",
    415: "Unsupported media type",
    500: "Internal server error",
    503: "Service unavailable",
}


def error_response(request, status: int, error_type: str, message: str) -> HttpResponse:
    """An error in the format of the face the request came to: Camunda's {"type", "message"},
    Flowable's and the seed API's {"message", "exception"}, or the console's HTML page."""
    path = request.path_info
    if path.startswith(("/external-job-api/", "/api/external-jobs")):
        headline = FLOWABLE_STATUS_MESSAGES.get(status, "Error")
        return JsonResponse({"message": headline, "exception": message}, status=status)
    if path.startswith(settings.API_PATH_PREFIXES):
        return JsonResponse({"type": error_type, "message": message}, status=status)
    response = render(
        request,
        "error.html",
        {"status": status, "title": error_type, "message": message},
        status=status,
    )
    return response


class RequestSizeLimitMiddleware:
    """Refuse oversized bodies with 413 before any parser reads them.

    Async-capable: a sync-only middleware would make Django run async views (long polling)
    in a thread held for the whole wait."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _too_big(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BODY_BYTES
        if length <= limit:
            return None
        return error_response(
            request,
            413,
            "InvalidRequestException",
            f"Request body of {length} bytes exceeds the limit of {limit} bytes",
        )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._too_big(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._too_big(request) or await self.get_response(request)


NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in values"


def _nul_in(data) -> bool:
    """Whether a NUL hides in a QueryDict's keys or values."""
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in data.lists())


class BadInputMiddleware:
    """One rule for every face and the console: a NUL character (which PostgreSQL text cannot
    hold, so psycopg refuses the statement) never reaches a view. In the path it names nothing
    that can exist: 404. In a query parameter or a form field: 400. Both in the format of the
    face the request came to; JSON bodies are checked by project.rest.parsers (NUL and lone
    surrogates alike) as DRF parses them.

    Async-capable, like RequestSizeLimitMiddleware, so that long polls keep their event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _refusal(self, request):
        if "\x00" in request.path_info:
            message = f"No resource at this path: {NUL_MESSAGE}"
            return error_response(request, 404, "InvalidRequestException", message)
        query = request.META.get("QUERY_STRING", "")
        if ("%00" in query or "\x00" in query) and _nul_in(request.GET):
            message = f"Invalid query parameter: {NUL_MESSAGE}"
            return error_response(request, 400, "InvalidRequestException", message)
        content_type = request.META.get("CONTENT_TYPE", "")
        is_form = content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        )
        if request.method == "POST" and is_form and _nul_in(request.POST):
            message = f"Invalid form field: {NUL_MESSAGE}"
            return error_response(request, 400, "InvalidRequestException", message)
        return None

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        # Form bodies are read here only on POSTs with a form content type, never on the
        # long-poll's JSON body.
        return self._refusal(request) or await self.get_response(request)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, made async-capable. WhiteNoise itself is sync-only, and one sync-only
    middleware makes Django run every async view (long-polling fetchAndLock) through a thread
    that stays blocked for the whole wait. Finding a static file is a dictionary lookup (or a
    stat with autorefresh), so doing it on the event loop is fine."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None):
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


class _OnTheEventLoop:
    """Under ASGI, Django's MiddlewareMixin runs each hook through sync_to_async: a hop to the
    request's thread and back per hook, twenty per API request in all. The hooks of the
    middleware below only read the request and set attributes, headers or cookies (no database,
    nothing that blocks), so under ASGI they run on the event loop; a process_response that may
    write the session still runs in the thread. Under WSGI nothing changes."""

    response_may_block = False

    async def __acall__(self, request):
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if not hasattr(self, "process_response"):
            return response
        if self.response_may_block:
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)


class SecurityMiddleware(_OnTheEventLoop, security.SecurityMiddleware):
    pass


class ContentSecurityPolicyMiddleware(_OnTheEventLoop, csp.ContentSecurityPolicyMiddleware):
    pass


class SessionMiddleware(_OnTheEventLoop, sessions.SessionMiddleware):
    response_may_block = True  # saves a modified session


class CommonMiddleware(_OnTheEventLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(_OnTheEventLoop, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(_OnTheEventLoop, auth.AuthenticationMiddleware):
    pass  # the user is loaded lazily, in the view's thread


class MessageMiddleware(_OnTheEventLoop, messages.MessageMiddleware):
    response_may_block = True  # may store messages in the session


class XFrameOptionsMiddleware(_OnTheEventLoop, clickjacking.XFrameOptionsMiddleware):
    pass
