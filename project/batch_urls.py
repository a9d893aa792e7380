"""Camunda 7 /engine-rest/batch and /engine-rest/history/batch (mounted at engine-rest/ in
project/urls.py)."""

from project.batch_api import BatchViewSet, HistoricBatchViewSet
from project.rest.routers import FaceRouter

router = FaceRouter()
router.register("batch", BatchViewSet, basename="camunda-batch")
router.register("history/batch", HistoricBatchViewSet, basename="camunda-historic-batch")

urlpatterns = router.urls
