from external_tasks import flowable
from project.rest.routers import FaceRouter

# Mounted at api/: the collection is api/external-jobs itself; its GET answers a page object
# (not an array), its POST acquires.
router = FaceRouter(collection_get="page", collection_post="acquire")
router.register("external-jobs", flowable.SeedViewSet, basename="seed-external-jobs")
urlpatterns = router.urls
