from django.urls import path

from external_tasks import api
from project.rest.routers import FaceRouter

router = FaceRouter()
router.register("external-task", api.ExternalTaskViewSet, basename="camunda-external-task")
router.register(
    "history/external-task-log",
    api.HistoricExternalTaskLogViewSet,
    basename="camunda-history-external-task-log",
)

# Mounted at engine-rest/. fetchAndLock is a plain async view (see its docstring) and comes
# before the router's external-task/<task_id>, which would otherwise take it for an id.
urlpatterns = [
    path("external-task/fetchAndLock", api.fetch_and_lock, name="camunda-fetch-and-lock"),
    *router.urls,
]
