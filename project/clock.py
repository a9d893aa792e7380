"""Time as Camunda keeps it: UTC, to the millisecond.

Every time Taskyard writes goes through `now()` (or `to_ms()` for a value from outside), so a
client that reads a time back and sends it as a bound (`dueDates=gt_…`) compares equal values,
and rows written in the same millisecond tie instead of ordering by invisible microseconds.
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

# The latest and earliest times Taskyard stores: a day inside what Python's datetime holds
# (PostgreSQL and SQLite hold more), so that a value shown in any time zone still fits.
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(value):
    """`value` with its microseconds cut to whole milliseconds; None stays None."""
    if value is None:
        return None
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def now():
    """The current UTC time, to the millisecond."""
    return to_ms(timezone.now())


def after(start, milliseconds: int):
    """`start` plus a duration in milliseconds, clamped to [EARLIEST, LATEST].

    Camunda takes lockDuration, newDuration and retryTimeout as Java longs and adds them to the
    clock, so 300000000000000 ms (a lock for 9,500 years) is a valid request there. Python's
    datetime ends in year 9999: rather than refuse a value Camunda accepts, a time past the end
    is kept as LATEST, which means the same to everyone reading it (locked for good)."""
    if milliseconds >= (LATEST - start) // _MS:
        return LATEST
    if milliseconds <= (EARLIEST - start) // _MS:
        return EARLIEST
    return start + timedelta(milliseconds=milliseconds)


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
