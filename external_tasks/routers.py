"""The router of the three REST faces: DRF's SimpleRouter with the faces' URL habits."""

from rest_framework.routers import SimpleRouter


class FaceRouter(SimpleRouter):
    """No trailing slashes (Camunda's and Flowable's paths have none), path() converters (so a
    task id may hold dots, as `<str:task_id>` always allowed), and POST on a collection bound
    to `collection_post` rather than DRF's `create`: on these faces it is a query (Camunda's
    POST /external-task) or an acquisition (the seed's POST /api/external-jobs), never the
    creation of the resource."""

    def __init__(self, collection_post: str = "query"):
        collection, *others = SimpleRouter.routes
        self.routes = [
            collection._replace(mapping={"get": "list", "post": collection_post}),
            *others,
        ]
        super().__init__(trailing_slash=False, use_regex_path=False)
