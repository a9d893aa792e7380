"""Incidents as Camunda raises them: a job or an external task whose retries reach 0 has one
(`failedJob`, `failedExternalTask`) until its retries go above 0 (resolved) or the row ends
(completed: resolved; deleted or ended by a BPMN error: deleted). History keeps closed ones.

The apps own their rows and their transitions; they call these functions in the SAME
transaction as the change of retries, with the rows they just changed. Every function is
set-based (one UPDATE and/or one INSERT … SELECT, whatever the number of rows) and idempotent:
`sync` looks at the rows as they are now, so calling it twice, or for rows whose retries did
not cross 0, changes nothing. This module imports no app: callers pass their queryset and the
columns of their model an incident is copied from.
"""

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Exists,
    F,
    Func,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce

from project import audit, bulk, clock, tenancy
from project.errors import BadUserRequest, InvalidRequest, NotFound
from project.models import Incident
from project.rest.parsers import NUL_MESSAGE, has_nul

FAILED_JOB = Incident.FAILED_JOB
FAILED_EXTERNAL_TASK = Incident.FAILED_EXTERNAL_TASK

# The row fields an incident copies, by incident field, for each kind of row (field names of
# the apps' models; kept here so the apps and the backfill migrations copy the same fields).
JOB_COLUMNS = {
    "configuration": "id",
    "incident_message": "exception_message",
    "tenant_id": "tenant_id",
    "activity_id": "activity_id",
    "failed_activity_id": "failed_activity_id",
    "execution_id": "execution_id",
    "process_instance_id": "process_instance_id",
    "process_definition_id": "process_definition_id",
    "process_definition_key": "process_definition_key",
    "job_definition_id": "job_definition_id",
}
# Camunda's external-task incident names no failed activity and no job definition.
EXTERNAL_TASK_COLUMNS = {
    "configuration": "id",
    "incident_message": "error_message",
    "tenant_id": "tenant_id",
    "activity_id": "activity_id",
    "execution_id": "execution_id",
    "process_instance_id": "process_instance_id",
    "process_definition_id": "process_definition_id",
    "process_definition_key": "process_definition_key",
}
COLUMNS = {FAILED_JOB: JOB_COLUMNS, FAILED_EXTERNAL_TASK: EXTERNAL_TASK_COLUMNS}

# Rows without retries left, the condition of both kinds (a task's null retries: never failed).
NO_RETRIES = Q(retries=0)


class NewId(Func):
    """A random UUID (version 4) as text, made by the database, so opening incidents for many
    rows stays one INSERT … SELECT."""

    output_field = CharField()
    template = "CAST(gen_random_uuid() AS text)"

    def as_sqlite(self, compiler, connection, **extra):
        return (
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "
            "substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (random() & 3), 1) || "
            "substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))",
            [],
        )


def open_incidents(incident_type: str | None = None) -> QuerySet:
    """The incidents open now (of one type)."""
    incidents = Incident.objects.filter(state=Incident.State.OPEN)
    return incidents if incident_type is None else incidents.filter(incident_type=incident_type)


def open_for(incident_type: str, rows: QuerySet, *, now=None) -> int:
    """Open an incident for each of `rows` (a queryset of jobs or external tasks) that has no
    retries left and no open incident yet; its timestamp is `now` (the failure's time)."""
    return _insert(Incident, incident_type, rows, clock.to_ms(now) or clock.now())


def _insert(incident_model, incident_type: str, rows: QuerySet, timestamp) -> int:
    # `incident_model` is a migration's historical model or project.models.Incident.
    has_open = Exists(
        incident_model.objects.filter(
            state=Incident.State.OPEN, incident_type=incident_type, configuration=OuterRef("id")
        )
    )
    source = rows.filter(NO_RETRIES).filter(~has_open).order_by()
    columns = {
        "id": NewId(),
        "incident_type": incident_type,
        "incident_timestamp": timestamp,
        "state": Incident.State.OPEN,
        **{name: F(field) for name, field in COLUMNS[incident_type].items()},
    }
    return bulk.insert_select(incident_model, source, columns)


def backfill(incident_model, incident_type: str, rows: QuerySet, log_rows: QuerySet, row_field):
    """Open the incidents of rows already without retries (data migrations, the demo seed).
    Their timestamp is the best the history tells: the latest log entry (`log_rows`, linked
    by `row_field`) that left the row at 0 retries, else the row's create time."""
    reached_zero = (
        log_rows.filter(**{row_field: OuterRef("id")}, retries=0)
        .order_by()
        .values(row_field)
        .annotate(last=Max("timestamp"))
        .values("last")
    )
    timestamp = Coalesce(Subquery(reached_zero), F("create_time"))
    return _insert(incident_model, incident_type, rows, timestamp)


def resolve(incident_type: str, ids, *, now=None) -> int:
    """Resolve the open incidents of the rows `ids` (ids or a values("id") queryset): their
    retries went above 0, or they completed."""
    return close(incident_type, ids, Incident.State.RESOLVED, now)


def delete(incident_type: str, ids, *, now=None) -> int:
    """Close the open incidents of rows `ids` that were deleted (or ended by a BPMN error)."""
    return close(incident_type, ids, Incident.State.DELETED, now)


def close(incident_type: str, ids, state: str, now=None) -> int:
    """Close the open incidents of rows `ids` with `state` (resolved or deleted)."""
    if not isinstance(ids, QuerySet):
        ids = list(ids)
        if not ids:
            return 0
    return (
        open_incidents(incident_type)
        .filter(configuration__in=ids)
        .update(state=state, end_time=clock.to_ms(now) or clock.now())
    )


def sync(incident_type: str, rows: QuerySet, *, now=None) -> tuple[int, int]:
    """After a change of retries on `rows` (still in the table): open incidents for those now
    at 0, resolve those of rows now above 0. Returns (opened, resolved)."""
    now = now or clock.now()
    with_retries = rows.exclude(NO_RETRIES).order_by().values("id")
    resolved = resolve(incident_type, with_retries, now=now)
    return open_for(incident_type, rows, now=now), resolved


def sync_ids(incident_type: str, model, ids: Iterable[str], *, now=None) -> tuple[int, int]:
    """`sync` for the rows of `model` with these ids."""
    ids = list(ids)
    if not ids:
        return 0, 0
    return sync(incident_type, model.objects.filter(id__in=ids), now=now)


def retries_set(incident_type: str, model, ids: Iterable[str], retries: int, *, now=None):
    """After the rows `ids` of `model` were given `retries`: above 0 resolves their incidents
    (one UPDATE of the incident table, the rows are not read again), 0 opens them."""
    ids = list(ids)
    if not ids:
        return 0
    if retries > 0:
        return resolve(incident_type, ids, now=now)
    return open_for(incident_type, model.objects.filter(id__in=ids), now=now)


def close_sql(incident_type: str, state: str, ids_sql: str, now) -> tuple[str, list]:
    """The UPDATE closing the open incidents of the rows whose ids `ids_sql` selects, as SQL
    to embed in a caller's single statement (a CTE of a DELETE … RETURNING): the worker path
    ends a task in one statement, and the incident of a failed task it ends must close in it."""
    table = connection.ops.quote_name(Incident._meta.db_table)
    return (
        f"UPDATE {table} SET state = %s, end_time = %s "
        f"WHERE state = %s AND incident_type = %s AND configuration IN ({ids_sql})",
        [state, clock.to_ms(now) or clock.now(), Incident.State.OPEN, incident_type],
    )


# ---------------------------------------------------------------------------------------------
# Reading and annotating, for the Camunda face and the console (scoped like every row).

ANNOTATION_MAX_LENGTH = 4000  # Camunda's ANNOTATION_ column is a varchar(4000)


def visible_to(user) -> QuerySet:
    """Every incident (open and closed) of the user's tenants and the tenant-less ones."""
    return tenancy.scope(Incident.objects.all(), user)


def current(user, configuration: str, incident_type: str) -> Incident | None:
    """The open incident of one job or task (by its id), if the user may see it."""
    if has_nul(configuration):
        return None
    return (
        visible_to(user)
        .filter(state=Incident.State.OPEN, incident_type=incident_type, configuration=configuration)
        .first()
    )


def last_for(user, configuration: str, incident_type: str) -> Incident | None:
    """The row's open incident, else its most recent closed one (for its detail page)."""
    if has_nul(configuration):
        return None
    return (
        visible_to(user)
        .filter(incident_type=incident_type, configuration=configuration)
        .order_by(Case(When(state=Incident.State.OPEN, then=0), default=1), "-incident_timestamp")
        .first()
    )


def get_open(user, incident_id: str, *, for_update: bool = False) -> Incident | None:
    """The open incident with this id if the user may see it (an id holding a NUL character
    cannot exist, and PostgreSQL would refuse it in the query: None)."""
    if has_nul(incident_id):
        return None
    incidents = visible_to(user).filter(state=Incident.State.OPEN, id=incident_id)
    return (incidents.select_for_update() if for_update else incidents).first()


def set_annotation(user, incident_id: str, annotation: str | None, *, source: str = "api"):
    """Set (or, with None, clear) the annotation of an open incident, audited. Camunda's
    BadUserRequestException "incident is null" when there is no such open incident for the
    user (another tenant's incident is no different from a missing one)."""
    if annotation is not None and not isinstance(annotation, str):
        raise InvalidRequest("'annotation' must be a string")
    if annotation is not None and len(annotation) > ANNOTATION_MAX_LENGTH:
        raise InvalidRequest(f"'annotation' is longer than {ANNOTATION_MAX_LENGTH} characters")
    if has_nul(annotation or ""):
        raise InvalidRequest(f"Invalid 'annotation': {NUL_MESSAGE}")
    with transaction.atomic():
        incident = get_open(user, incident_id, for_update=True)
        if incident is None:
            raise BadUserRequest("incident is null")
        before = incident.annotation
        incident.annotation = annotation
        incident.save(update_fields=["annotation"])
        audit.record(
            user,
            "incident",
            "clear_annotation" if annotation is None else "set_annotation",
            tenants=[incident.tenant_id],
            ids=[incident.id],
            count=1,
            before={"annotation": before, "configuration": incident.configuration},
            after={"annotation": annotation},
            source=source,
        )
    return incident


def resolve_by_id(user, incident_id: str) -> None:
    """Camunda's DELETE /incident/{id}: 404 when there is no such open incident; the failedJob
    and failedExternalTask incidents, the only ones here, are resolved by setting retries."""
    incident = get_open(user, incident_id)
    if incident is None:
        raise NotFound(f"Cannot find an incident with id '{incident_id}': incident is null")
    raise InvalidRequest(f"Cannot resolve an incident of type {incident.incident_type}")
