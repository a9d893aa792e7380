from django.urls import path, re_path

from external_tasks import flowable

# Mounted at "api/external-jobs" (no trailing slash, so that POST /api/external-jobs itself
# matches); the per-job routes therefore begin with the slash, behind an empty group "(?:)" so
# Django's leading-slash check (meant for mounts that end in one) stays quiet. The OpenAPI
# generator drops the empty group and documents the path with a plain "/" (a "[/]" class, as
# before, ended up verbatim in the documented path, which then matched nothing).
urlpatterns = [
    path("", flowable.SeedJobs.as_view(), name="seed-external-jobs"),
    *[
        re_path(
            rf"^(?:)/(?P<task_id>[^/]+)/{action}$",
            flowable.SeedJobAction.as_view(action=action),
            name=f"seed-{action}",
        )
        for action in ("complete", "fail", "bpmnError")
    ],
]
