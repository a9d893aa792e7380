"""Set-based copying of rows into a log table: one INSERT … SELECT instead of Python objects.

Bulk operator actions write one history row per changed row; building 100k model instances
and sending them through bulk_create costs seconds, while the database copies them in one
statement. Shared by the jobs and external tasks apps (their services own the transitions).
"""

import json
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import OperationalError, connection, transaction
from django.db.models import Expression, F, Model, Q, QuerySet, Value


@dataclass(frozen=True)
class BulkResult:
    """What an operator action did, for jobs and external tasks alike: rows changed, and rows
    asked for but left alone (gone, not visible to the user, or already in the requested
    state)."""

    changed: int
    skipped: int = 0


def where_of(queryset: QuerySet) -> tuple[str, list]:
    """The WHERE clause of a queryset (no joins) as SQL, to reuse in a hand-written statement."""
    query = queryset.query
    return query.get_compiler(connection=connection).compile(query.where)


def insert_select(target: type[Model], source: QuerySet, columns: dict) -> int:
    """INSERT INTO target (columns) SELECT … FROM source; returns the rows inserted.

    `columns` maps target field names to an expression over the source rows (F("id")) or a
    constant, which is adapted by the target field (datetimes, time zones) like any value."""
    selected = {}
    for index, (name, value) in enumerate(columns.items()):
        if not isinstance(value, (Expression, F)):
            value = Value(value, output_field=target._meta.get_field(name))
        # Aliases, not the field names: an annotation may not shadow a source field, and the
        # SELECT list must come out in exactly this order.
        selected[f"bulk_col_{index}"] = value
    query = source.annotate(**selected).values(*selected)
    sql, params = query.query.sql_with_params()
    quote = connection.ops.quote_name
    names = ", ".join(quote(target._meta.get_field(name).column) for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(target._meta.db_table)} ({names}) {sql}", params)
        return cursor.rowcount


def update_and_log(
    model: type[Model],
    ids: list,
    changes: dict,
    log_model: type[Model],
    log_columns: dict,
    *,
    only_if: Q | None = None,
    within: QuerySet | None = None,
    before: tuple[str, ...] = (),
    returning: tuple[str, ...] = (),
    also: tuple[tuple[str, list], ...] = (),
) -> list[dict]:
    """PostgreSQL: lock the rows of `ids` in id order, apply `changes` and write one log row per
    changed row, all in one statement; returns one dict per changed row with the `returning`
    fields (new values; at least one) and the `before` fields (old values, keyed
    `before_<name>`).

    The three statements per batch it replaces (SELECT … FOR UPDATE, INSERT … SELECT of the
    log rows, UPDATE) each found the same rows again through the primary key; here the log
    rows are copied from the UPDATE's RETURNING. Rows are locked in id order, so two bulk
    actions over overlapping rows wait for each other instead of deadlocking: with `before`, by
    a materialized SELECT … ORDER BY id FOR UPDATE that keeps the old values; without, by the
    UPDATE itself (_update_in_id_order), retried should PostgreSQL ever abort it as a
    deadlock's victim. `log_columns` is as for insert_select, over the updated (new) row.

    `within` (a queryset of `model`, e.g. the user's visible rows) narrows the rows locked by
    its WHERE clause, in the same statement: a batch chunk re-scoped its ids by a SELECT of its
    own first. `also` are further data-modifying statements (SQL, params) over the changed rows,
    run in the same statement: they may read the CTE `changed` (the `returning` fields), e.g.
    incidents.close_sql(…, 'SELECT "id" FROM changed', …)."""
    quote = connection.ops.quote_name
    # Parameters in the order their statements appear in the WITH clause below.
    params: list = []
    try:
        if before:
            locked = _locking_select(model, ids, only_if, within, before, params)
            update = _update_returning(model, changes, log_columns, before, returning, params)
            head = f"WITH locked AS MATERIALIZED ({locked}), changed AS ({update})"
        else:
            update = _update_in_id_order(
                model, ids, changes, log_columns, only_if, within, returning, params
            )
            head = f"WITH changed AS ({update})"
    except EmptyResultSet:  # `within` admits no row (a user who sees nothing)
        return []
    insert = _log_insert(log_model, log_columns, params)
    wanted = [*returning, *(f"before_{name}" for name in before)]
    further = ""
    for index, (statement, statement_params) in enumerate(also):
        further += f", also_{index} AS ({statement})"
        params += statement_params
    sql = (
        f"{head}, logged AS ({insert})"
        f"{further} SELECT {', '.join(quote(name) for name in wanted)} FROM changed"
    )
    if before:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [dict(zip(wanted, row, strict=True)) for row in cursor.fetchall()]
    return _retrying_deadlocks(sql, params, wanted)


# Attempts of a statement that a deadlock aborted (see _update_in_id_order).
DEADLOCK_ATTEMPTS = 5


def _retrying_deadlocks(sql: str, params: list, wanted: list[str]) -> list[dict]:
    """Run the statement in a savepoint; when PostgreSQL aborts it as a deadlock's victim, roll
    back to the savepoint (its row locks, updates and log rows go) and run it again, so the
    caller's transaction and counts are as if the first attempt had waited instead."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                return [dict(zip(wanted, row, strict=True)) for row in cursor.fetchall()]
        except OperationalError as error:
            if attempt == DEADLOCK_ATTEMPTS or not _is_deadlock(error):
                raise
    raise AssertionError("unreachable")


def _is_deadlock(error: Exception) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) == "40P01" or getattr(cause, "pgcode", None) == "40P01"


def _column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _narrowing(model, only_if, within, params: list) -> str:
    """ " AND (…)" of `only_if` and `within`'s WHERE clause (or ""), its parameters appended."""
    narrowed = model.objects.all() if within is None else within
    if only_if is not None:
        narrowed = narrowed.filter(only_if)
    if not narrowed.query.where:
        return ""
    condition, condition_params = where_of(narrowed)
    if not condition:
        return ""
    params += condition_params
    return f" AND ({condition})"


def _assignments(model, changes: dict, params: list) -> list[str]:
    """ "column = %s" per change, its value (prepared by the field) appended to `params`."""
    quote = connection.ops.quote_name
    assignments = []
    for name, value in changes.items():
        field = model._meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return assignments


def _locking_select(model, ids, only_if, within, before, params: list) -> str:
    """SELECT … FOR UPDATE of the rows of `ids` (that meet `only_if` and `within`'s WHERE) in
    id order, keeping the `before` columns as before_<name>."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    where = f"{table}.{pk} = ANY(%s)"
    params.append(list(ids))
    where += _narrowing(model, only_if, within, params)
    kept = "".join(
        f", {table}.{_column(model, name)} AS {quote('before_' + name)}" for name in before
    )
    return f"SELECT {table}.{pk}{kept} FROM {table} WHERE {where} ORDER BY {table}.{pk} FOR UPDATE"


def _update_in_id_order(
    model, ids, changes, log_columns, only_if, within, returning, params: list
) -> str:
    """UPDATE of the rows of `ids` (that meet `only_if` and `within`'s WHERE) joined to the ids
    in ascending order, returning what the log rows and the caller read: no locking pre-pass.

    The pre-pass (SELECT … ORDER BY id FOR UPDATE, then the UPDATE finding each row again)
    locked every row twice over, ~10 µs of a chunk's ~50 µs per row at 1M tasks. Here the
    rows are locked as the UPDATE reaches them: a nested loop over the sorted ids probing the
    primary key (the plan for any batch-sized list), so in id order too, and two bulk actions
    over overlapping rows wait for each other. Should a plan ever take them in another order
    and deadlock, PostgreSQL aborts the statement and update_and_log runs it again. The
    WHERE conditions are re-checked on a row's latest version when it had to wait for it,
    as with SELECT … FOR UPDATE. The ids go in as one JSON text (quoting 1,000 array elements
    cost more client time than the database takes to read them)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    assignments = _assignments(model, changes, params)
    # No row's id holds a NUL (and jsonb refuses one).
    params.append(json.dumps([str(i) for i in ids if "\x00" not in str(i)]))
    where = f"{table}.{pk} = wanted.id" + _narrowing(model, only_if, within, params)
    sources = {v.name for v in log_columns.values() if isinstance(v, F)} | set(returning)
    returned = ", ".join(
        f"{table}.{_column(model, name)} AS {quote(name)}" for name in sorted(sources)
    )
    return (
        f"UPDATE {table} SET {', '.join(assignments)} FROM (SELECT jsonb_array_elements_text"
        "(%s::jsonb) AS id ORDER BY 1) wanted "
        f"WHERE {where} RETURNING {returned}"
    )


def _update_returning(model, changes, log_columns, before, returning, params: list) -> str:
    """UPDATE of the locked rows, returning what the log rows and the caller read."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    assignments = _assignments(model, changes, params)
    sources = {v.name for v in log_columns.values() if isinstance(v, F)} | set(returning)
    returned = ", ".join(
        [f"{table}.{_column(model, name)} AS {quote(name)}" for name in sorted(sources)]
        + [f"locked.{quote('before_' + name)}" for name in before]
    )
    return (
        f"UPDATE {table} SET {', '.join(assignments)} FROM locked "
        f"WHERE {table}.{pk} = locked.{pk} RETURNING {returned}"
    )


def _log_insert(log_model, log_columns, params: list) -> str:
    """INSERT of one log row per changed row, copied from the UPDATE's RETURNING."""
    quote = connection.ops.quote_name
    names, selected = [], []
    for name, value in log_columns.items():
        field = log_model._meta.get_field(name)
        names.append(quote(field.column))
        if isinstance(value, F):
            selected.append(quote(value.name))
        else:
            selected.append("%s")
            params.append(field.get_db_prep_save(value, connection))
    return (
        f"INSERT INTO {quote(log_model._meta.db_table)} ({', '.join(names)}) "
        f"SELECT {', '.join(selected)} FROM changed"
    )
