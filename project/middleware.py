from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Console pages redirect to the login page; API paths are left to DRF, which answers 401."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(settings.API_PATH_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


def error_response(request, status: int, error_type: str, message: str) -> HttpResponse:
    """An error in the format of the face the request came to: Camunda, Flowable or HTML."""
    path = request.path_info
    if path.startswith("/external-job-api/"):
        return JsonResponse({"message": message, "exception": error_type}, status=status)
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
    """Refuse oversized bodies with 413 before any parser reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BODY_BYTES
        if length > limit:
            return error_response(
                request,
                413,
                "InvalidRequestException",
                f"Request body of {length} bytes exceeds the limit of {limit} bytes",
            )
        return self.get_response(request)
