from django.urls import path

from external_tasks import api

# Mounted at engine-rest/. Fixed paths come before external-task/<id>.
urlpatterns = [
    path("external-task", api.ExternalTaskList.as_view(), name="camunda-external-task-list"),
    path("external-task/count", api.ExternalTaskCount.as_view(), name="camunda-et-count"),
    path("external-task/topic-names", api.TopicNames.as_view(), name="camunda-topic-names"),
    path("external-task/fetchAndLock", api.fetch_and_lock, name="camunda-fetch-and-lock"),
    path("external-task/create", api.Create.as_view(), name="camunda-external-task-create"),
    path("external-task/retries", api.BulkRetries.as_view(), name="camunda-external-task-retries"),
    path(
        "external-task/retries-async",
        api.BulkRetriesAsync.as_view(),
        name="camunda-external-task-retries-async",
    ),
    path("external-task/<str:task_id>", api.ExternalTaskDetail.as_view()),
    path("external-task/<str:task_id>/errorDetails", api.ExternalTaskErrorDetails.as_view()),
    path("external-task/<str:task_id>/complete", api.Complete.as_view()),
    path("external-task/<str:task_id>/failure", api.Failure.as_view()),
    path("external-task/<str:task_id>/bpmnError", api.BpmnError.as_view()),
    path("external-task/<str:task_id>/extendLock", api.ExtendLock.as_view()),
    path("external-task/<str:task_id>/lock", api.Lock.as_view()),
    path("external-task/<str:task_id>/unlock", api.Unlock.as_view()),
    path("external-task/<str:task_id>/retries", api.Retries.as_view()),
    path("external-task/<str:task_id>/priority", api.Priority.as_view()),
]
