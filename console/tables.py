"""The console's table machinery, shared by every resource's list page (console.resources).

A table page is driven entirely by its query string: the FilterSet's own parameters (the same
FilterSet the REST API uses, fed through `data_from_query`), plus four console keys — `q`
(free-text search), `status` (the badge words of the app's status table), `sort`
(`-created,priority`) and `page`/`size`. A Table is built from those parameters and the user,
never from a request, so a list page, an export and an action on "all matching" rows read the
same rows from the same words — and any view is a shareable link.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import django_filters
from django.db.models import F, OrderBy
from django.http import QueryDict
from django.utils import timezone
from django.utils.functional import cached_property

from console import queries
from console.models import ColumnChoice
from project import filters as shared_filters
from project.errors import InvalidRequest
from project.rest.paging import nulls_smallest

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# Counting stops here: "1,000+ jobs" costs one bounded index scan instead of a COUNT(*) over
# millions of rows on every page view. Exact counts are computed only when an action needs them
# (the confirmation), the overview estimates the big ones. Not 10,000: at 1M rows a tenant
# viewer's "retrying" jobs took 553 ms to prove 10,001 (the planner switches to bitmap scans of
# whole indexes for that many) and 6.6 ms to prove 1,001 (PostgreSQL, 2026-12-06).
COUNT_LIMIT = 1_000
# Offset paging beyond this point gets slow on big tables; narrower filters are the answer there.
MAX_PAGE = 2_000
# The table's own parameters; with the FilterSet's they are every parameter a list page reads
# (anything else is an error, console.queries). A page feature that adds one adds it here.
CONSOLE_KEYS = ("q", "status", "sort", "page", "size", "columns")
# Keys that shape the view but not which rows match.
VIEW_KEYS = ("sort", "page", "size", "columns")


# ---------------------------------------------------------------------------------------------
# Counting without COUNT(*) over the whole table.


def bounded_count(queryset, limit: int | None = None) -> tuple[int, bool]:
    """(count, exact): counts at most `limit` + 1 rows; exact is False when there are more."""
    limit = limit or COUNT_LIMIT
    n = queryset.order_by()[: limit + 1].count()
    return (limit, False) if n > limit else (n, True)


def count_label(n: int, exact: bool) -> str:
    return f"{n:,}" if exact else f"{n:,}+"


def whole_number(value, default: int) -> int:
    """A query parameter as an int: `default` when absent, -1 (out of every range) when bad."""
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return -1


# ---------------------------------------------------------------------------------------------
# Describing the FilterSet's parameters as form controls.


def humanize_name(name: str) -> str:
    """'priorityHigherThanOrEquals' -> 'Priority higher than or equals'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    text = text.replace("id in", "ids").replace(" id", " ID").replace("ids", "IDs")
    return text[:1].upper() + text[1:]


def control_kind(f) -> str:
    if isinstance(f, shared_filters.TrueFilter | django_filters.BooleanFilter):
        return "bool"
    if isinstance(f, shared_filters.DateFilter | django_filters.DateTimeFilter):
        return "date"
    if isinstance(f, shared_filters.ListFilter):
        return "list"
    if isinstance(
        f,
        shared_filters.LongFilter | shared_filters.IntegerFilter | django_filters.NumberFilter,
    ):
        return "number"
    return "text"


_LOCAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


@dataclass
class Control:
    name: str
    label: str
    kind: str
    value: str
    errors: list = field(default_factory=list)
    help: str = ""

    @property
    def input_type(self):
        if self.kind == "date":
            # A picker when the value fits it; a text box keeps other accepted forms editable.
            return (
                "datetime-local" if not self.value or _LOCAL_DATETIME.match(self.value) else "text"
            )
        return {"number": "number", "bool": "checkbox"}.get(self.kind, "text")


# ---------------------------------------------------------------------------------------------
# The table state.


@dataclass
class Column:
    key: str  # the name in `sort=` and in the header
    label: str
    field: str | None = None  # model field to sort on; None = not sortable
    numeric: bool = False


class TableError(Exception):
    pass


def querystring(params: dict, /, **changes) -> str:
    """The query string for `params` with `changes` applied (None removes a key)."""
    merged = {k: v for k, v in params.items()}
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    pairs = []
    for key, value in merged.items():
        if isinstance(value, list):
            pairs.extend((key, item) for item in value)
        else:
            pairs.append((key, value))
    return "?" + urlencode(pairs) if pairs else "?"


def plain_params(get) -> dict:
    """request.GET as an ordered dict; repeated keys stay lists, empty values are dropped."""
    params = {}
    for key in get:
        values = [v for v in get.getlist(key) if v != ""]
        if not values:
            continue
        params[key] = values if len(values) > 1 else values[0]
    return params


def parse_sort(text: str, columns: list, default: str) -> list[tuple[str, str]]:
    by_key = {c.key: c for c in columns if c.field}
    result = []
    for part in (text or default).split(","):
        part = part.strip()
        if not part:
            continue
        direction = "desc" if part.startswith("-") else "asc"
        key = part.lstrip("-+")
        if key not in by_key:
            raise TableError(f"Cannot sort by '{key}': sortable columns are {', '.join(by_key)}")
        if key not in {k for k, _ in result}:
            result.append((key, direction))
    return result or parse_sort(default, columns, default)


def sort_text(sort: list[tuple[str, str]]) -> str:
    return ",".join(("-" if d == "desc" else "") + k for k, d in sort)


def parse_columns(values, columns) -> list:
    """`columns=` (comma-separated or repeated keys) -> the chosen columns in the table's
    order, required ones included; TableError naming an unknown key."""
    keys = [k.strip() for v in values for k in str(v).split(",") if k.strip()]
    known = {c.key for c in columns}
    unknown = [k for k in keys if k not in known]
    if unknown:
        names = ", ".join(f"'{k}'" for k in unknown)
        raise TableError(
            f"Unknown column {names}: the columns are {', '.join(c.key for c in columns)}"
        )
    return [c for c in columns if c.required or c.key in keys]


class BytewiseOrder(OrderBy):
    """ORDER BY a text column by the bytes of its values, nulls smallest: on PostgreSQL with the
    pattern operators (`USING ~<~`), the order of a `varchar_pattern_ops` index, which also
    answers LIKE 'prefix%' whatever the collation; SQLite's default order already is bytewise."""

    def __init__(self, expression, descending=False):
        super().__init__(
            expression,
            descending=descending,
            nulls_first=None if descending else True,
            nulls_last=True if descending else None,
        )

    def as_postgresql(self, compiler, connection):
        # The comment names the direction for Django's compiler, which finds ASC or DESC in
        # each ORDER BY term to tell duplicate terms apart.
        ordering = "USING ~>~ /* DESC */" if self.descending else "USING ~<~ /* ASC */"
        return self.as_sql(compiler, connection, ordering=ordering)


def column_order(column, descending: bool) -> OrderBy:
    """ORDER BY one column the way the console shows it: nulls smallest as the REST API sorts
    (project.rest.paging.nulls_smallest), or nulls after the values for a `nulls_last` column."""
    if column.bytewise:
        return BytewiseOrder(F(column.field), descending)
    if column.nulls_last:
        return (
            F(column.field).desc(nulls_first=True)
            if descending
            else F(column.field).asc(nulls_last=True)
        )
    return nulls_smallest(F(column.field), descending)


def page_window(queryset, start: int, count: int):
    """queryset[start : start + count] (ordered) as a deferred join on every page, the first
    included (project.rest.paging.window joins only past it): the ids are read first, by an
    index-only scan where an index holds the sort keys and the filtered columns, and only the
    page's rows in full. A tenant's viewer sorting by tenant descending walked ~400k other
    tenants' rows with a heap visit each (3.0 s at 1M tasks); from the index alone, 0.13 s."""
    return queryset.filter(pk__in=queryset.values("pk")[start : start + count])


class Table:
    """Everything a table page shows, computed from its query parameters and the user.

    `resource` is the kind's description (console.resources.Resource): its FilterSet, columns,
    search and status table. `path` is the list page the links point at."""

    def __init__(self, query: QueryDict, user, resource, path: str, queryset=None, extra_params=()):
        """`extra_params`: parameters the calling page reads itself (an export's `format`)."""
        self.resource = resource
        self.user = user
        self.path = path
        self.statuses = resource.statuses
        self.params = plain_params(query)
        self.errors: list[str] = []
        scoped = queryset if queryset is not None else resource.visible(user)
        fs_class = resource.filterset_class
        self.filterset = fs_class(fs_class.data_from_query(query), queryset=scoped)
        self.valid = self.filterset.is_valid()
        # Parameters nobody reads and single values given twice: the query would not run what
        # the URL says, so the table shows nothing and no action can be confirmed.
        allowed = {*fs_class.base_filters, *CONSOLE_KEYS, *extra_params}
        self.problems = queries.unknown_parameters(query, allowed, self.url)
        self.errors += [p.text for p in self.problems]
        # `columns` is a list of its own (repeated keys or commas, like the FilterSet's lists).
        list_names = fs_class.list_names() | {"columns"}
        self.errors += queries.repeated_parameters(query, list_names)
        self.q = (query.get("q") or "").strip()
        self.status = query.get("status") or ""
        if self.status and self.status not in self.statuses:
            self.errors.append(self._unknown_status())
        sort = self.params.get("sort", "")
        self.sort = self._parse_sort(sort if isinstance(sort, str) else "")
        self.size = self._parse_size(query.get("size"))
        self.page = self._parse_page(query.get("page"))
        self.explicit_columns = self._parse_columns(query.getlist("columns"))
        self.ok = self.valid and not self.errors

    def _unknown_status(self) -> str:
        keys = [s.key for s in self.statuses]
        text = f"Unknown status '{self.status}': the statuses are {', '.join(keys)}."
        suggestion = queries.close_match(self.status, keys)
        return text + (f" Did you mean '{suggestion}'?" if suggestion else "")

    def _parse_sort(self, text):
        columns, default = self.resource.columns, self.resource.default_sort
        try:
            return parse_sort(text, columns, default)
        except TableError as error:
            self.errors.append(str(error))
            return parse_sort(default, columns, default)

    def _parse_columns(self, values):
        if not any(v.strip() for v in values):
            return None
        try:
            return parse_columns(values, self.resource.columns)
        except TableError as error:
            self.errors.append(str(error))
            return None

    @cached_property
    def shown_columns(self) -> list:
        """The columns this table shows: `columns=` from the URL, else the user's saved choice
        for this kind, else the kind's defaults."""
        if self.explicit_columns is not None:
            return self.explicit_columns
        saved = (
            ColumnChoice.objects.filter(user_id=self.user.pk, kind=self.resource.key)
            .values_list("columns", flat=True)
            .first()
        )
        if isinstance(saved, list):
            keys = {k for k in saved if isinstance(k, str)}
            return [c for c in self.resource.columns if c.required or c.key in keys]
        return [c for c in self.resource.columns if c.default or c.required]

    @cached_property
    def shown(self) -> dict:
        """{column key: True} for the shown columns (what the row partials test)."""
        return {c.key: True for c in self.shown_columns}

    @property
    def columns_chosen_in_url(self) -> bool:
        return self.explicit_columns is not None

    def column_choices(self):
        shown = self.shown
        return [{"column": c, "checked": c.key in shown} for c in self.resource.columns]

    @property
    def columns_value(self) -> str:
        return ",".join(c.key for c in self.shown_columns)

    @property
    def url_without_columns(self) -> str:
        return self.url(columns=None)

    @property
    def url_with_columns(self) -> str:
        """This view as a link that shows the same columns to whoever opens it."""
        return self.url(columns=self.columns_value)

    def _parse_size(self, text):
        size = whole_number(text, DEFAULT_PAGE_SIZE)
        if size in PAGE_SIZES:
            return size
        self.errors.append(f"Page size must be one of {', '.join(map(str, PAGE_SIZES))}")
        return DEFAULT_PAGE_SIZE

    def _parse_page(self, text):
        page = whole_number(text, 1)
        if 1 <= page <= MAX_PAGE:
            return page
        self.errors.append(f"Page must be between 1 and {MAX_PAGE:,}: narrow the filter instead")
        return 1

    # -- the rows ------------------------------------------------------------------------

    def matching(self):
        """The scoped, filtered, searched queryset (unsorted), or none() when input is bad."""
        if not self.ok:
            return self.filterset.queryset.none()
        try:
            qs = self.filterset.qs
        except InvalidRequest as error:
            self.errors.append(error.message)
            self.ok = False
            return self.filterset.queryset.none()
        if self.status:
            qs = qs.in_state(self.status)
        if self.q:
            qs = self.resource.search(qs, self.q)
        return qs

    def ordering(self, sort=None):
        """ORDER BY as the REST API sorts (project.rest.paging.order_by): nulls are the smallest
        value, and ties go by id in the direction of the last key (after the last column's
        own `then` keys), the order the sort indexes (project.indexes) hold, so an index serves
        every sortable column both ways. A
        `nulls_last` column (Due) puts its nulls after the values instead (see _rows)."""
        sort = self.sort if sort is None else sort
        columns = {c.key: c for c in self.resource.columns if c.field}
        expressions = [column_order(columns[key], direction == "desc") for key, direction in sort]
        if "id" not in dict(sort):
            last_key, last_direction = (sort or self.sort)[-1]
            last_descending = last_direction == "desc"
            # The last column's own tie-breaks (Column.then), the keys its index holds next.
            sorted_fields = {columns[key].field for key, _ in sort}
            expressions += [
                nulls_smallest(F(name), last_descending)
                for name in columns[last_key].then
                if name not in sorted_fields
            ]
            expressions.append(F("id").desc() if last_descending else F("id").asc())
        return expressions

    def _rows(self, qs, start: int, count: int) -> list:
        """qs[start : start + count] in the console's order.

        A `nulls_last` leading key is read as two index-ordered parts instead of one ORDER BY
        ... NULLS LAST: the indexes hold nulls first (project.indexes), so PostgreSQL could only
        sort the whole match for that order. The rows with a value, in the index's order, then
        the rows without one by the remaining keys (ascending; the reverse descending). Each
        part is an index range; the second starts where the first ran out."""
        lead, direction = self.sort[0]
        column = self.resource.column(lead)
        if not column.nulls_last:
            return list(page_window(qs.order_by(*self.ordering()), start, count))
        descending = direction == "desc"
        # Both parts keep the column as their first key (all null in the second, so it orders
        # nothing there): then the index (column NULLS FIRST, id) serves each of them.
        key = nulls_smallest(F(column.field), descending)
        rest = self.ordering(self.sort[1:] or [("id", direction)])
        valued = qs.filter(**{f"{column.field}__isnull": False}).order_by(key, *rest)
        empty = qs.filter(**{f"{column.field}__isnull": True}).order_by(key, *rest)
        first, second = (empty, valued) if descending else (valued, empty)
        rows = list(page_window(first, start, count))
        if len(rows) == count:
            return rows
        # How many rows the first part has: known once it ran out inside the window, else
        # (the window starts past its end) counted, never beyond `start`.
        in_first = start + len(rows) if rows or not start else first.order_by()[:start].count()
        return rows + list(page_window(second, max(0, start - in_first), count - len(rows)))

    def evaluate(self):
        qs = self.matching()
        start = (self.page - 1) * self.size
        # One row more than the page tells whether a next page exists without counting.
        # Each row carries its status key from the app's status table (one CASE in the SELECT).
        rows = self._rows(qs.with_status(timezone.now()), start, self.size + 1)
        self.has_next = len(rows) > self.size
        self.rows = rows[: self.size]
        if self.ok:
            self.count, self.count_exact = bounded_count(qs)
        else:
            self.count, self.count_exact = 0, True
        self.first_index = start + 1 if self.rows else 0
        self.last_index = start + len(self.rows)
        return self

    # -- what the template needs -----------------------------------------------------------

    @property
    def count_label(self):
        return count_label(self.count, self.count_exact)

    def url(self, /, **changes) -> str:
        return self.path + querystring(self.params, **changes)

    @property
    def filter_query(self) -> str:
        """The current filter as a query string (what "all matching" actions run on)."""
        return querystring(self.filter_params).lstrip("?")

    @property
    def filter_params(self) -> dict:
        """The parameters that define which rows match (no sort, paging)."""
        return {k: v for k, v in self.params.items() if k not in VIEW_KEYS}

    def field_errors(self) -> dict[str, list[str]]:
        """The FilterSet's errors per parameter, in the console's words ("__all__": the
        filter as a whole)."""
        filters = self.resource.filterset_class.base_filters
        result = {}
        for name, errors in self.filterset.form.errors.as_data().items():
            if name not in filters:
                result[name] = [queries.form_error(e, humanize_name) for e in errors]
                continue
            f = filters[name]
            label = humanize_name(name)
            raw = self.filterset.data.get(name)
            result[name] = [queries.value_error(label, control_kind(f), f, raw, e) for e in errors]
        return result

    @property
    def form_errors(self) -> list[str]:
        messages = [m for errors in self.field_errors().values() for m in errors]
        return messages + self.errors

    @property
    def fixes(self) -> list[tuple[str, str]]:
        """Links that repair the query string (use the filter meant, or drop the unknown one)."""
        return [fix for problem in self.problems for fix in problem.fixes]

    def controls(self):
        form_errors = self.field_errors() if not self.valid else {}
        hidden = set(self.resource.hidden)
        result = []
        for name, f in self.resource.filterset_class.base_filters.items():
            if name in hidden:
                continue
            value = self.params.get(name, "")
            if isinstance(value, list):
                value = ",".join(value)
            control = Control(
                name=name,
                label=humanize_name(name),
                kind=control_kind(f),
                value=value,
                errors=list(form_errors.get(name, [])),
                help=str(getattr(f, "label", "") or ""),
            )
            result.append(control)
        return result

    @property
    def inline_controls(self):
        inline = list(self.resource.inline)
        by_name = {c.name: c for c in self.controls()}
        return [by_name[n] for n in inline if n in by_name]

    @property
    def more_controls(self):
        inline = set(self.resource.inline)
        return [c for c in self.controls() if c.name not in inline]

    @property
    def more_open(self):
        return any(c.value or c.errors for c in self.more_controls)

    # -- the query that runs, in words -----------------------------------------------------
    # Chips, the confirmation's words and the audit entry's filter are built from what the
    # query runs on (the search text, a known status, the FilterSet's cleaned values), never
    # from the raw URL: a parameter the query ignores is never shown as if it filtered.

    def applied(self) -> dict:
        """The filters the query runs, parameter -> cleaned value, in the URL's order."""
        applied = {}
        if self.q:
            applied["q"] = self.q
        if self.status in self.statuses:
            applied["status"] = self.status
        applied.update(self.filterset.applied())
        order = list(self.params)
        return dict(sorted(applied.items(), key=lambda kv: order.index(kv[0])))

    def chips(self):
        chips = []
        for key, value in self.applied().items():
            if key == "q":
                text = f"Search: {value}"
            elif key == "status":
                text = f"Status: {self.statuses[value].label}"
            else:
                label, shown = humanize_name(key), queries.value_words(value)
                text = label if shown is None else f"{label}: {shown}"
            chips.append(
                {"name": key, "text": text, "remove": self.url(**{key: None, "page": None})}
            )
        return chips

    @property
    def ignored(self) -> list[str]:
        """Parameters in the URL that change nothing on their own (said, not hidden)."""
        data = getattr(self.filterset.form, "cleaned_data", {}) or {}
        inert = self.filterset.inert(data)
        return [
            f"{humanize_name(name)} is ignored: {inert[name]}."
            for name in self.params
            if name in inert and data.get(name) is not None and data.get(name) is not False
        ]

    def filter_words(self) -> str:
        chips = self.chips()
        return "; ".join(c["text"] for c in chips) if chips else "no filter (all rows you can see)"

    def audit_filter(self) -> dict:
        """The filter as the audit entry keeps it: each parameter the query runs, as JSON."""
        return {key: queries.audit_value(value) for key, value in self.applied().items()}

    def headers(self):
        current = dict(self.sort)
        position = {k: i + 1 for i, (k, _) in enumerate(self.sort)}
        result = []
        for column in self.shown_columns:
            header = {"column": column, "sortable": bool(column.field)}
            if column.field:
                direction = current.get(column.key)
                flipped = "asc" if direction == "desc" else "desc"
                # Plain click: sort by this column only (flip it if it already leads).
                leads = self.sort and self.sort[0][0] == column.key
                first = flipped if leads else (direction and flipped) or column.first
                header["href"] = self.url(sort=sort_text([(column.key, first)]), page=None)
                # Shift-click: add as the next key, or flip it where it stands.
                if direction:
                    added = [(k, flipped if k == column.key else d) for k, d in self.sort]
                else:
                    added = [*self.sort, (column.key, first)]
                header["add_href"] = self.url(sort=sort_text(added), page=None)
                header["direction"] = direction
                header["aria"] = {"asc": "ascending", "desc": "descending"}.get(direction or "")
                header["position"] = position.get(column.key) if len(self.sort) > 1 else None
            result.append(header)
        return result

    @property
    def sort_value(self):
        return sort_text(self.sort)

    @property
    def first_page_url(self):
        return self.url(page=None)

    @property
    def prev_url(self):
        return self.url(page=self.page - 1 if self.page > 2 else None) if self.page > 1 else None

    @property
    def next_url(self):
        return self.url(page=self.page + 1) if self.has_next and self.page < MAX_PAGE else None

    def size_options(self):
        return [{"value": s, "selected": s == self.size} for s in PAGE_SIZES]
