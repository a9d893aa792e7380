"""Camunda 7 /engine-rest/job and /engine-rest/job-definition (fixed paths before {id})."""

from django.urls import path

from jobs import api

urlpatterns = [
    path("job", api.job_list, name="camunda-job-list"),
    path("job/count", api.job_count, name="camunda-job-count"),
    path("job/create", api.job_create, name="camunda-job-create"),
    path("job/retries", api.job_retries_batch, name="camunda-job-retries-batch"),
    path("job/suspended", api.job_suspended_by, name="camunda-job-suspended-by"),
    path("job/<str:job_id>", api.JobDetail.as_view(), name="camunda-job"),
    path("job/<str:job_id>/stacktrace", api.job_stacktrace, name="camunda-job-stacktrace"),
    path("job/<str:job_id>/retries", api.job_retries, name="camunda-job-retries"),
    path("job/<str:job_id>/suspended", api.job_suspended, name="camunda-job-suspended"),
    path("job/<str:job_id>/duedate", api.job_duedate, name="camunda-job-duedate"),
    path(
        "job/<str:job_id>/duedate/recalculate",
        api.job_duedate_recalculate,
        name="camunda-job-duedate-recalculate",
    ),
    path("job/<str:job_id>/priority", api.job_priority, name="camunda-job-priority"),
    path("job/<str:job_id>/execute", api.job_execute, name="camunda-job-execute"),
    path("job-definition", api.job_definition_list, name="camunda-job-definition-list"),
    path("job-definition/count", api.job_definition_count, name="camunda-job-definition-count"),
    path(
        "job-definition/suspended",
        api.job_definition_suspended_by,
        name="camunda-job-definition-suspended-by",
    ),
    path(
        "job-definition/<str:job_definition_id>",
        api.job_definition_detail,
        name="camunda-job-definition",
    ),
    path(
        "job-definition/<str:job_definition_id>/suspended",
        api.job_definition_suspended,
        name="camunda-job-definition-suspended",
    ),
    path(
        "job-definition/<str:job_definition_id>/jobPriority",
        api.job_definition_priority,
        name="camunda-job-definition-priority",
    ),
    path(
        "job-definition/<str:job_definition_id>/retries",
        api.job_definition_retries,
        name="camunda-job-definition-retries",
    ),
]
