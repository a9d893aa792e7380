"""Camunda's history resources over a log model: /history/job-log and /history/external-task-log.

Both are the same resource over a different log: the GET list, the POST query, the count (GET
and POST), one entry by id and its text (a job's stack trace, a task's error details). Each app
subclasses `HistoricLogViewSet` with its log model, FilterSet, serializer and wording, and
declares the actions (with their schema) over its helpers, the text one under Camunda's
url_path. What an entry is in Camunda's terms (creationLog,
failureLog, …) is decided by the app's log model (`history()`, `in_history_state()`); scoping to
the user's tenants by its `visible_to()` (project.tenancy.scope), so another tenant's entry
answers 404 exactly like a missing one.
"""

from django.http import HttpResponse
from rest_framework import viewsets
from rest_framework.response import Response

from project.errors import InvalidRequest, NotFound
from project.rest.auth import CanView
from project.rest.paging import order_by, page, sorting_from_body, sorting_from_query
from project.rest.parsers import has_nul, json_body


class HistoricLogViewSet(viewsets.ViewSet):
    """Read-only Camunda history of one log model; every action needs read access."""

    lookup_url_kwarg = "log_id"
    # A log id is a path segment: the detail route must not swallow "<id>/stacktrace".
    lookup_value_converter = "str"
    permission_classes = [CanView]

    log_model = None
    filter_class = None
    serializer_class = None
    # Camunda's 404 messages: the entry by id, and the entry whose text was asked for.
    not_found = "Historic log with id {id} does not exist"
    text_not_found = "No historic log found with id {id}"
    text_field = ""

    def entries(self):
        """The entries the history shows that the user may see."""
        return self.log_model.objects.visible_to(self.request.user).history()

    def _sorting(self, request) -> list[dict]:
        if request.method == "GET":
            return sorting_from_query(request.query_params)
        return sorting_from_body(json_body(request))

    def _filtered(self, request):
        """The entries matching the GET parameters or the POST body, with the one FilterSet."""
        filter_class = self.filter_class
        if request.method == "GET":
            data = filter_class.data_from_query(request.query_params)
        else:
            body = json_body(request)
            if not isinstance(body, dict):
                raise InvalidRequest("The request body must be a JSON object")
            unknown = sorted(set(body) - set(filter_class.base_filters) - {"sorting"})
            if unknown:
                raise InvalidRequest(f"Unknown query parameter(s) in the request body: {unknown}")
            data = filter_class.data_from_body(body)
        return filter_class(data, queryset=self.entries()).filtered()

    def list_entries(self, request):
        """The GET list or POST query: a page of matching entries in the requested order."""
        # Sorting first, so a bad sort key is a 400 even when nothing matches.
        expressions = order_by(self._sorting(request), self.filter_class.sort_keys)
        queryset = self._filtered(request).order_by(*expressions)
        return Response([self.represent(entry) for entry in page(queryset, request.query_params)])

    def count_entries(self, request):
        """GET or POST count of the matching entries."""
        if request.method != "GET":
            # "Sorting has no effect for count endpoints", but it must still be valid.
            order_by(self._sorting(request), self.filter_class.sort_keys)
        return Response({"count": self._filtered(request).count()})

    def entry(self, log_id: str, message: str | None = None):
        """The visible history entry `log_id`, or Camunda's 404."""
        message = message or self.not_found
        # Log ids are integers: any other id (a NUL byte included) names no entry.
        text = str(log_id)
        if has_nul(text) or not text.isascii() or not text.isdigit() or len(text) > 18:
            raise NotFound(message.format(id=log_id))
        entry = self.entries().filter(pk=int(text)).first()
        if entry is None:
            raise NotFound(message.format(id=log_id))
        return entry

    def represent(self, entry) -> dict:
        """One entry in Camunda's DTO shape."""
        return self.serializer_class(entry).data

    def retrieve_entry(self, log_id):
        return Response(self.represent(self.entry(log_id)))

    def text_response(self, log_id):
        """The entry's text as text/plain; an empty 204 when it has none (Camunda answers a
        null string so)."""
        value = getattr(self.entry(log_id, self.text_not_found), self.text_field)
        if value is None:
            return HttpResponse(status=204)
        return HttpResponse(value, content_type="text/plain; charset=utf-8")
