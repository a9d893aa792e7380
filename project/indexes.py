"""Indexes in the order Taskyard sorts: nulls are the smallest value.

The REST API and the console sort nullable columns `ASC NULLS FIRST` / `DESC NULLS LAST`
(project.rest.paging.order_by) and break ties by id in the direction of the last key. PostgreSQL's
default btree order is `ASC NULLS LAST`, which serves neither direction of that, so every such
sort read and sorted the whole match. An index declared `(col ASC NULLS FIRST, id)` serves both:
forwards for ascending, backwards for descending.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import TrigramExtension as _TrigramExtension
from django.db import migrations, models
from django.db.models import F, OrderBy, Q
from django.db.models.functions import Upper


def nulls_first(key) -> OrderBy:
    """An index key on a nullable column (a name, or an expression such as an OpClass) that
    puts nulls first (forwards) / last (backwards)."""
    return OrderBy(F(key) if isinstance(key, str) else key, nulls_first=True)


class SortIndex(models.Index):
    """A models.Index whose NULLS FIRST keys are spelled only on PostgreSQL.

    SQLite refuses the NULLS clause in CREATE INDEX, and its ascending order already puts
    nulls first, so there the plain key gives the same order. It has no operator classes
    either (its default order is bytewise, a pattern operator class's): the column alone."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        plain = self.clone()
        plain.expressions = tuple(
            OrderBy(_without_opclass(e.expression), descending=e.descending)
            if isinstance(e, OrderBy)
            else _without_opclass(e)
            for e in self.expressions
        )
        return super(SortIndex, plain).create_sql(model, schema_editor, using=using, **kwargs)


class TrigramIndex(GinIndex):
    """A pg_trgm GIN index on one text column, partial on rows that have a value: `icontains`
    on that column becomes an index lookup instead of a scan of the table. Django spells
    `icontains` `UPPER(col) LIKE UPPER('%word%')` on PostgreSQL, so the index holds UPPER(col).
    Needs the pg_trgm extension (django.contrib.postgres.operations.TrigramExtension in the
    migration before it). SQLite has neither; there it is a plain index on the column, and
    `icontains` stays a scan of the (small) table."""

    def __init__(self, field: str, *, name: str):
        self.column_name = field
        super().__init__(
            OpClass(Upper(F(field)), name="gin_trgm_ops"),
            name=name,
            condition=Q(**{f"{field}__isnull": False}),
        )

    def deconstruct(self):
        path, _args, _kwargs = super().deconstruct()
        return path, (self.column_name,), {"name": self.name}

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        plain = models.Index(fields=[self.column_name], name=self.name, condition=self.condition)
        return plain.create_sql(model, schema_editor, using=using, **kwargs)


class TrigramExtension(_TrigramExtension):
    """CREATE EXTENSION pg_trgm (a trusted extension: the database's owner may create it),
    nothing on SQLite. Kept when a migration is reversed: both queue tables' indexes use it."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


def expression_statistics(name: str, table: str, expression: str):
    """A migration operation: PostgreSQL statistics on an expression (CREATE STATISTICS).

    The planner uses an expression index's statistics only when the index is not partial; a
    TrigramIndex is, so without these it guessed `UPPER(message) LIKE '%word%'` matched
    hundreds of rows, walked the newest-first index for them and read all 1M rows (2.8 s) for
    a word that one row has. With them it looks the word up in the trigram index."""

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(
                f"CREATE STATISTICS IF NOT EXISTS {name} ON ({expression}) FROM {table}"
            )
            schema_editor.execute(f"ANALYZE {table}")

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")

    return migrations.RunPython(forwards, backwards, elidable=False)


def _without_opclass(expression):
    return expression.get_source_expressions()[0] if isinstance(expression, OpClass) else expression


def drop_pattern_ops_indexes(table: str):
    """A migration operation dropping the `*_like` (varchar_pattern_ops) indexes Django adds
    beside CharField primary and foreign keys on PostgreSQL. They serve only `LIKE 'x%'` on
    those ids, which nothing here runs, and every insert, claim and bulk update paid for them."""

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = %s AND indexdef LIKE '%%varchar_pattern_ops%%'",
                [table],
            )
            for (name,) in cursor.fetchall():
                schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    return migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)


def queue_table_autovacuum(table: str):
    """A migration operation: autovacuum a queue table at 1 % dead rows instead of 20 %.

    Claims, completes and bulk actions churn these tables; at 1M rows the default waits for
    200k dead tuples, and until a vacuum sets the visibility map, counts and deep pages cannot
    answer from an index-only scan."""
    options = (
        "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05"
    )

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET ({options})")

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            names = ", ".join(part.split("=")[0].strip() for part in options.split(","))
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} RESET ({names})")

    return migrations.RunPython(forwards, backwards, elidable=False)
