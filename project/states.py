"""Status tables: the words a row's badge shows and the conditions that decide it, in one place.

Each app describes its rows' statuses once, in precedence order (`jobs.states`,
`external_tasks.states`). A row has the first status whose condition it meets, so the badge a
row shows (the `status` annotation), the status filter that finds it, the metrics that count it
and the executor that claims it all read the same table and cannot disagree.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, CharField, Q, Value, When


@dataclass(frozen=True)
class Status:
    key: str
    label: str
    help: str
    # The status's own condition at a given time, before precedence: a row meeting it has this
    # status unless it meets the condition of a status earlier in the table.
    condition: Callable[[datetime], Q]


class StatusTable:
    """Statuses in precedence order; the last one takes every row the others leave."""

    def __init__(self, *statuses: Status):
        self.statuses = statuses
        self._by_key = {status.key: status for status in statuses}

    def __iter__(self) -> Iterator[Status]:
        return iter(self.statuses)

    def __getitem__(self, key: str) -> Status:
        return self._by_key[key]

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._by_key)

    def q(self, key: str, now: datetime) -> Q:
        """The rows that have status `key` at `now`: its condition and none of the earlier."""
        q = Q()
        for status in self.statuses:
            if status.key == key:
                return q & status.condition(now)
            q &= ~status.condition(now)
        raise KeyError(key)

    def partition(self, now: datetime) -> dict[str, Q]:
        """Every status with its filter: disjoint, and together they cover every row."""
        return {status.key: self.q(status.key, now) for status in self.statuses}

    def annotation(self, now: datetime) -> Case:
        """The status key of each row, as a CASE expression in precedence order."""
        *earlier, last = self.statuses
        return Case(
            *(When(status.condition(now), then=Value(status.key)) for status in earlier),
            default=Value(last.key),
            output_field=CharField(),
        )
