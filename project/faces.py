"""Which face of the service a request belongs to, and the face of the request being served.

Both the request log and the metrics label things by face. The lookup lives here, below both,
so that logs imports metrics (to record a request's latency) and nothing imports logs back.
Nothing here imports models: logging is configured before the app registry is ready.
"""

import contextvars

from django.conf import settings

# Faces, as the `face` label and the `face` log field spell them.
CAMUNDA = "camunda"
FLOWABLE = "flowable"
SEED = "seed"
INTERNAL = "internal"  # outside any request: commands, executors, the shell

# The face of the request being served, for metrics recorded deep in service code that is not
# told which face called it. The request log middleware sets and resets it.
current_request_face: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taskyard_request_face", default=None
)


def face_of(path: str) -> str:
    """Which face of the service a path belongs to."""
    if path.startswith("/engine-rest/"):
        return CAMUNDA
    if path.startswith("/external-job-api/"):
        return FLOWABLE
    if path.startswith("/api/external-jobs"):
        return SEED
    if path.startswith("/api/"):
        return "api"
    if path.startswith(("/health/", "/metrics")):
        return "ops"
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "console"


def current_face() -> str:
    """The face of the request being served, else `internal`."""
    return current_request_face.get() or INTERNAL
