"""Camunda 7 /engine-rest/job and /engine-rest/job-definition, one ViewSet each."""

from jobs import api
from project.rest.routers import FaceRouter

router = FaceRouter()
router.register("job", api.JobViewSet, basename="camunda-job")
router.register("job-definition", api.JobDefinitionViewSet, basename="camunda-job-definition")

urlpatterns = router.urls
