"""The /metrics endpoint: who may scrape, and the exposition of project.metrics.

Apart from project.metrics because it needs the accounts (authentication, tenancy roles), which
load models, while project.metrics must stay importable before the app registry is ready.
"""

import base64
import hmac

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from project import metrics, tenancy


def _metrics_allowed(request) -> tuple[bool, int]:
    """(allowed, status if not): a bearer token from the environment, or a viewer/operator/admin
    account by HTTP Basic or session, or nothing at all when TASKYARD_METRICS_PUBLIC is set
    because a network rule already guards the path."""
    if settings.TASKYARD_METRICS_PUBLIC:
        return True, 200
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = settings.TASKYARD_METRICS_TOKEN
    if scheme.lower() == "bearer":
        ok = bool(token) and hmac.compare_digest(credentials.strip().encode(), token.encode())
        return ok, 200 if ok else 401
    user = getattr(request, "user", None)
    if scheme.lower() == "basic":
        try:
            username, _, password = (
                base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return False, 401
        user = authenticate(request, username=username, password=password)
        if user is None:
            return False, 401
    if user is None or not user.is_authenticated:
        return False, 401
    return (True, 200) if tenancy.can_view(user) else (False, 403)


@login_not_required
@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text exposition of every Taskyard metric."""
    allowed, status = _metrics_allowed(request)
    if not allowed:
        message = (
            "Metrics need a bearer token or a viewer account."
            if status == 401
            else "This account may not read metrics."
        )
        response = JsonResponse(
            {
                "type": "AuthenticationException" if status == 401 else "AuthorizationException",
                "message": message,
            },
            status=status,
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Basic realm="taskyard metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
