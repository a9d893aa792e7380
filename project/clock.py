"""Time as Camunda keeps it: UTC, to the millisecond.

Every time Taskyard writes goes through `now()` (or `to_ms()` for a value from outside), so a
client that reads a time back and sends it as a bound (`dueDates=gt_…`) compares equal values,
and rows written in the same millisecond tie instead of ordering by invisible microseconds.
"""

from django.utils import timezone


def to_ms(value):
    """`value` with its microseconds cut to whole milliseconds; None stays None."""
    if value is None:
        return None
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def now():
    """The current UTC time, to the millisecond."""
    return to_ms(timezone.now())


def truncate_column_sql(vendor: str, table: str, column: str) -> str:
    """One set-based UPDATE cutting the stored times of `table.column` to whole milliseconds
    (for the data migrations of rows written before `now()`); rows already whole are left alone.

    SQLite keeps Django's text form, 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD HH:MM:SS.ffffff', and
    compares it as text: a time that becomes a whole second is written without its fraction,
    exactly as Django writes such a value, or equal times would compare unequal."""
    if vendor == "postgresql":
        return (
            f'UPDATE "{table}" SET "{column}" = date_trunc(\'milliseconds\', "{column}") '
            f'WHERE "{column}" <> date_trunc(\'milliseconds\', "{column}")'
        )
    if vendor == "sqlite":
        return (
            f'UPDATE "{table}" SET "{column}" = CASE WHEN substr("{column}", 21, 3) = \'000\' '
            f'THEN substr("{column}", 1, 19) ELSE substr("{column}", 1, 23) || \'000\' END '
            f'WHERE length("{column}") = 26 AND substr("{column}", 24, 3) <> \'000\''
        )
    raise NotImplementedError(f"No millisecond truncation for database vendor {vendor!r}")
