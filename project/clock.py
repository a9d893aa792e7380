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
