from django.urls import path

from external_tasks import flowable

# Mounted at external-job-api/.
urlpatterns = [
    path("acquire/jobs", flowable.FlowableAcquire.as_view(), name="flowable-acquire"),
    *[
        path(
            f"acquire/jobs/<str:task_id>/{action}",
            flowable.FlowableJobAction.as_view(action=action),
            name=f"flowable-{action}",
        )
        for action in ("complete", "bpmnError", "cmmnTerminate", "fail")
    ],
    path("unacquire/jobs", flowable.FlowableUnacquire.as_view(), name="flowable-unacquire-all"),
    path(
        "unacquire/jobs/<str:task_id>",
        flowable.FlowableUnacquireOne.as_view(),
        name="flowable-unacquire",
    ),
    path("jobs", flowable.FlowableJobList.as_view(), name="flowable-jobs"),
    path("jobs/<str:task_id>", flowable.FlowableJobDetail.as_view(), name="flowable-job"),
]
