"""The console's URLs: the cross-resource pages, then each resource's list, actions, export
and detail under its own prefix (the paths bookmarks and tests use)."""

from django.urls import path

from console import actions, batches, overview, queues, views
from console.resources import EXTERNAL_TASKS, JOBS


def resource_urls(prefix: str, resource) -> list:
    kind = {"resource_key": resource.key}
    return [
        path(prefix, views.row_list, kind, name=resource.list_url),
        path(f"{prefix}actions/", actions.act, kind, name=resource.action_url),
        path(f"{prefix}export/", actions.export, kind, name=resource.export_url),
        path(f"{prefix}columns/", views.save_columns, kind, name=resource.columns_url),
        path(f"{prefix}<str:row_id>/", views.row_detail, kind, name=resource.detail_url),
        path(
            f"{prefix}<str:row_id>/incident/annotation/",
            views.incident_annotation,
            kind,
            name=resource.incident_annotation_url,
        ),
    ]


urlpatterns = [
    path("", overview.overview, name="overview"),
    path("topics/", overview.topics, name="topics"),
    path("queues/", queues.queues, name="queues"),
    path("queues/action/", queues.queue_action, name="queue-action"),
    path("failures/", views.failures, name="failures"),
    path("audit/", views.audit, name="audit"),
    path("search/", views.search, name="search"),
    path("batches/", batches.batch_list, name="batch-list"),
    path("batches/<str:batch_id>/", batches.batch_detail, name="batch-detail"),
    path("batches/<str:batch_id>/action/", batches.batch_action, name="batch-action"),
    path(
        "jobs/definitions/<str:definition_id>/action/",
        views.job_definition_action,
        name="job-definition-action",
    ),
    *resource_urls("jobs/", JOBS),
    *resource_urls("external-tasks/", EXTERNAL_TASKS),
]
