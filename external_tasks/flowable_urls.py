from external_tasks import flowable
from project.rest.routers import FaceRouter

# Mounted at external-job-api/. Without a prefix: each action of the ViewSet carries its path.
router = FaceRouter()
router.register("", flowable.FlowableViewSet, basename="flowable")
urlpatterns = router.urls
