"""Error fingerprints: a failure's message with ids, dates, numbers and quoted values replaced,
so that alike errors ("address 1 not found", "address 2 not found") form one group.

The console's Failures page groups by it and the FilterSets' `failureGroup` parameter selects
one group with it, so a group's list shows exactly the rows (and the count) the group shows.
"""

import re

from django.db.models import Q

from project.errors import InvalidRequest

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?")
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I)
_NUMBER = re.compile(r"\d+(\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

NO_MESSAGE = "(no message)"
# Distinct raw messages a `failureGroup` filter reads before it refuses to guess: beyond this
# the group cannot be selected exactly, and the caller must narrow the query first.
MAX_GROUP_MESSAGES = 5000


def normalize_message(message: str | None) -> str:
    """Error text with ids, dates, numbers and quoted values replaced, so alike errors group."""
    lines = (message or "").strip().splitlines()
    if not lines:
        return NO_MESSAGE
    text = lines[0][:300]
    for pattern, token in (
        (_UUID, "<id>"),
        (_DATE, "<date>"),
        (_HEX, "<hex>"),
        (_QUOTED, "<value>"),
        (_NUMBER, "<n>"),
    ):
        text = pattern.sub(token, text)
    return re.sub(r"\s+", " ", text)


def in_group(queryset, message_field: str, fingerprint: str):
    """The rows of `queryset` whose `message_field` normalises to `fingerprint`.

    Fingerprints are computed in Python (the same code on both databases), so this reads the
    distinct messages of `queryset` once and filters on the raw messages that match."""
    distinct = (
        queryset.order_by()
        .values_list(message_field, flat=True)
        .distinct()[: MAX_GROUP_MESSAGES + 1]
    )
    messages = list(distinct)
    if len(messages) > MAX_GROUP_MESSAGES:
        raise InvalidRequest(
            f"failureGroup: more than {MAX_GROUP_MESSAGES:,} distinct messages to compare; "
            "narrow the query first"
        )
    matching = [m for m in messages if m is not None and normalize_message(m) == fingerprint]
    condition = Q(**{f"{message_field}__in": matching})
    if fingerprint == NO_MESSAGE and None in messages:
        condition |= Q(**{f"{message_field}__isnull": True})
    return queryset.filter(condition)
