from django.urls import path

from jobs import views
from project import console_actions

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("actions/", console_actions.act, {"kind_key": "job"}, name="job-action"),
    path("export/", console_actions.export, {"kind_key": "job"}, name="job-export"),
    path(
        "definitions/<str:definition_id>/action/",
        views.job_definition_action,
        name="job-definition-action",
    ),
    path("<str:job_id>/", views.job_detail, name="job-detail"),
]
