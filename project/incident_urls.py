"""Camunda 7 /engine-rest/incident (mounted at engine-rest/ in project/urls.py)."""

from project.incident_api import IncidentViewSet
from project.rest.routers import FaceRouter

router = FaceRouter()
router.register("incident", IncidentViewSet, basename="camunda-incident")

urlpatterns = router.urls
