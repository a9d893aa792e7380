from django.urls import path

from project import console_actions, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("topics/", views.topics, name="topics"),
    path("failures/", views.failures, name="failures"),
    path("audit/", views.audit, name="audit"),
    path("search/", views.search, name="search"),
]

urlpatterns += [
    path("failures/act/", console_actions.failure_action, name="failure-action"),
    path("actions/progress/", console_actions.progress, name="action-progress"),
]
