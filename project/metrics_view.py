"""The /metrics endpoint: who may scrape, and the exposition of project.metrics.

Apart from project.metrics because it needs the accounts (authentication, tenancy roles), which
load models, while project.metrics must stay importable before the app registry is ready.
"""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import exceptions

from project import metrics, tenancy
from project.rest.auth import BasicAuthentication


def _metrics_allowed(request) -> tuple[bool, int]:
    """(allowed, status if not). /metrics is a deployment endpoint: the bearer token from the
    environment, or an admin account by HTTP Basic or session, or nothing at all when
    TASKYARD_METRICS_PUBLIC is set because a network rule already guards the path. Tenant
    users read their own figures on the console's overview.

    Every refusal of presented credentials is the same 401: a worker's right password must
    answer exactly like a wrong one, or this would be a password oracle beside the faces."""
    if settings.TASKYARD_METRICS_PUBLIC:
        return True, 200
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        token = settings.TASKYARD_METRICS_TOKEN
        ok = bool(token) and hmac.compare_digest(
            credentials.strip().encode("utf-8", "surrogatepass"), token.encode()
        )
        return ok, 200 if ok else 401
    if header:
        try:
            # The faces' Basic parsing and the one password check (throttle included).
            found = BasicAuthentication().authenticate(request)
        except exceptions.AuthenticationFailed:
            return False, 401
        return (True, 200) if found and tenancy.is_admin(found[0]) else (False, 401)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False, 401
    return (True, 200) if tenancy.is_admin(user) else (False, 403)


@login_not_required
@never_cache
@require_safe
def metrics_view(request):
    """Prometheus text exposition of every Taskyard metric."""
    allowed, status = _metrics_allowed(request)
    if not allowed:
        message = (
            "Metrics need the metrics token or an admin account."
            if status == 401
            else "Only admins may read metrics; tenant figures are on the console's overview."
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
