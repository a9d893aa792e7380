"""The URLs of a fetchAndLock request that cannot wait: project.asgi sends it through Django's
WSGI handler with this urlconf (named there by its dotted path, so project imports no app),
which maps the path to the sync view; every other pattern is project.urls' own, so reversing
URLs and error handlers work as usual."""

from django.urls import path

from external_tasks import api
from project import urls

urlpatterns = [
    path(
        "engine-rest/external-task/fetchAndLock",
        api.fetch_and_lock_now,
        name="camunda-fetch-and-lock",
    ),
    *urls.urlpatterns,
]

handler500 = urls.handler500
