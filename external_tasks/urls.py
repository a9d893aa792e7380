from django.urls import path

from external_tasks import views
from project import console_actions

urlpatterns = [
    path("", views.task_list, name="external-task-list"),
    path("actions/", console_actions.act, {"kind_key": "task"}, name="external-task-action"),
    path("export/", console_actions.export, {"kind_key": "task"}, name="external-task-export"),
    path("<str:task_id>/", views.task_detail, name="external-task-detail"),
]
