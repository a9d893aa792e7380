"""What a list page's query string means, said in the console's own words.

A table (console.tables.Table) runs its FilterSet over the query string; this module answers
the questions around that run: which parameters exist at all (the FilterSet's own plus the
table's keys — anything else is an error naming it, never a silently dropped filter), which
values are wrong and why (in our words, not the Camunda face's "convert value abc to java type
long"), and what the query that runs filters on (the FilterSet's cleaned values), for the chips,
the confirmation's words and the audit entry's filter.
"""

import difflib
import re
from dataclasses import dataclass
from datetime import datetime

from jobs.filters import Condition, ConditionListFilter
from project.rest.dates import format_date

EXAMPLE_DATE = "2026-12-04T09:30:00"


@dataclass(frozen=True)
class Problem:
    """Something wrong with the query string, with the links that fix it."""

    text: str
    fixes: tuple = ()  # (label, url) pairs


def close_match(name: str, allowed) -> str | None:
    """The allowed parameter `name` was most likely meant to be (case first, then spelling)."""
    by_case = {a.lower(): a for a in allowed}
    if name.lower() in by_case:
        return by_case[name.lower()]
    matches = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_parameters(query, allowed, url) -> list[Problem]:
    """An error for every parameter nobody reads, suggesting the closest one that exists.

    `url(**changes)` builds the page's URL with parameters changed (None removes one)."""
    problems = []
    for name in query:
        if name in allowed:
            continue
        suggestion = close_match(name, allowed)
        values = [v for v in query.getlist(name) if v != ""]
        fixes = []
        if suggestion:
            text = f"Unknown filter '{name}': did you mean '{suggestion}'?"
            if suggestion not in query and values:
                value = values if len(values) > 1 else values[0]
                fixes.append((f"Use {suggestion}", url(**{name: None, suggestion: value})))
        else:
            text = f"Unknown filter '{name}': no such filter here."
        fixes.append((f"Remove {name}", url(**{name: None, "page": None})))
        problems.append(Problem(text + " Nothing was searched.", tuple(fixes)))
    return problems


def repeated_parameters(query, list_names) -> list[str]:
    """Errors for single-value parameters given more than once: only one of the values would
    run, while the URL (and whoever reads it) says both."""
    errors = []
    for name in query:
        values = [v for v in query.getlist(name) if v != ""]
        if len(values) > 1 and name not in list_names:
            shown = ", ".join(f"'{v}'" for v in values)
            errors.append(f"'{name}' is given {len(values)} times ({shown}); it takes one value.")
    return errors


# ---------------------------------------------------------------------------------------------
# Invalid values, in our words.

_WHOLE = re.compile(r"^\s*[+-]?\d+\s*$")


def value_error(label: str, kind: str, f, raw, error) -> str:
    """What is wrong with one parameter's value. `kind` is the control kind (console.tables)
    and `error` the FilterSet's ValidationError, whose wording belongs to the Camunda face."""
    shown = raw if isinstance(raw, str) else ", ".join(map(str, raw or ()))
    if isinstance(f, ConditionListFilter):
        return (
            f"{label}: '{shown}' is not understood. Write gt_<date> (after) or "
            f"lt_<date> (before), comma-separated, e.g. gt_{EXAMPLE_DATE}."
        )
    if kind == "number":
        if _WHOLE.match(shown):
            bits = 32 if error.code == "int" else 64
            return f"{label} is out of range: '{shown}' does not fit a {bits}-bit whole number."
        return f"{label} must be a whole number, not '{shown}'."
    if kind == "date":
        return (
            f"{label} must be a date and time such as {EXAMPLE_DATE} (UTC, or with an offset "
            f"such as +02:00 or Z), not '{shown}'."
        )
    if kind == "bool":
        return f"{label} is a yes/no filter: use true (or leave it out), not '{shown}'."
    if kind == "list":
        return f"{label} must be a comma-separated list of values."
    # Our own wording already (processVariables): say which filter it is about.
    return f"{label}: {' '.join(error.messages)}"


def form_error(error, humanize) -> str:
    """An error about the whole filter (two parameters that exclude each other)."""
    together = (error.params or {}).get("together") if error.params else None
    if together:
        names = " and ".join(f"'{humanize(n)}'" for n in together)
        return f"{names} cannot be used together: choose one."
    return " ".join(error.messages)


# ---------------------------------------------------------------------------------------------
# The query that runs, in words and as the audit entry's filter.


def _quoted(text: str) -> str:
    # Spaces at either end change what matches: show them.
    return f"“{text}”" if text != text.strip() or not text else text


def _condition_words(condition: Condition) -> str:
    word = {"gt": "after", "lt": "before"}.get(condition.operator, condition.operator)
    return f"{word} {format_date(condition.value)}"


_VARIABLE_OPERATORS = {
    "eq": "=",
    "neq": "≠",
    "gt": ">",
    "gteq": "≥",
    "lt": "<",
    "lteq": "≤",
    "like": "like",
    "notLike": "not like",
}


def value_words(value) -> str | None:
    """A cleaned filter value as the operator reads it (None: a flag, its label says it all)."""
    if value is True:
        return None
    if isinstance(value, datetime):
        return format_date(value)
    if isinstance(value, list):
        if value and all(isinstance(v, Condition) for v in value):
            return " and ".join(_condition_words(v) for v in value)
        if value and all(isinstance(v, dict) and "operator" in v for v in value):
            return ", ".join(
                f"{v['name']} {_VARIABLE_OPERATORS.get(v['operator'], v['operator'])} "
                f"{v['value']!r}"
                for v in value
            )
        return ", ".join(_quoted(str(v)) for v in value)
    if isinstance(value, str):
        return _quoted(value)
    return str(value)


def audit_value(value):
    """A cleaned filter value as JSON, in the form the query string takes it back ("true",
    "5", a date in Camunda's format, a list of values)."""
    if value is True:
        return "true"
    if isinstance(value, datetime):
        return format_date(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [
            f"{v.operator}_{format_date(v.value)}" if isinstance(v, Condition) else v for v in value
        ]
    return value
