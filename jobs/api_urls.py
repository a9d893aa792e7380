"""Camunda 7 /engine-rest/job, /engine-rest/job-definition and /engine-rest/history/job-log, one
ViewSet each."""

from jobs import api
from project.rest.routers import FaceRouter

router = FaceRouter()
router.register("job", api.JobViewSet, basename="camunda-job")
router.register("job-definition", api.JobDefinitionViewSet, basename="camunda-job-definition")
router.register("history/job-log", api.HistoricJobLogViewSet, basename="camunda-history-job-log")

urlpatterns = router.urls
