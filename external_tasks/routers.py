"""The router of the three REST faces: DRF's SimpleRouter with the faces' URL habits."""

from rest_framework.routers import SimpleRouter


class FaceRouter(SimpleRouter):
    """No trailing slashes (Camunda's and Flowable's paths have none), path() converters (so a
    task id may hold dots, as `<str:task_id>` always allowed), and POST on a collection bound
    to `collection_post` rather than DRF's `create`: on these faces it is a query (Camunda's
    POST /external-task) or an acquisition (the seed's POST /api/external-jobs), never the
    creation of the resource. `collection_get` names the GET on it: "list" for an array (the
    schema documents one), another name for a page object such as the seed's."""

    def __init__(self, collection_post: str = "query", collection_get: str = "list"):
        collection, *others = SimpleRouter.routes
        mapping = {"get": collection_get, "post": collection_post}
        self.routes = [collection._replace(mapping=mapping), *others]
        super().__init__(trailing_slash=False, use_regex_path=False)
