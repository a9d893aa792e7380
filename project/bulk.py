"""Set-based copying of rows into a log table: one INSERT … SELECT instead of Python objects.

Bulk operator actions write one history row per changed row; building 100k model instances
and sending them through bulk_create costs seconds, while the database copies them in one
statement. Shared by the jobs and external tasks apps (their services own the transitions).
"""

from django.db import connection
from django.db.models import Expression, F, Model, QuerySet, Value


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
