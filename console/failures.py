"""Failed work grouped by a fingerprint of its error, so one click fixes a whole group.

A group is (resource, source, fingerprint): the resource's kind, where the failure comes from
(a job's handler, a task's topic: `Resource.source_field`) and its message with ids, dates,
numbers and quoted values normalised.
"""

import hashlib
import re

from django.db.models import Count, Max, Min, Q

from console.resources import RESOURCES

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?")
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I)
_NUMBER = re.compile(r"\d+(\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

# Distinct (source, raw message) pairs read per kind before they are folded into groups.
FAILURE_SQL_GROUPS = 5000


def normalize_message(message: str | None) -> str:
    """Error text with ids, dates, numbers and quoted values replaced, so alike errors group."""
    if not message:
        return "(no message)"
    text = message.strip().splitlines()[0][:300]
    for pattern, token in (
        (_UUID, "<id>"),
        (_DATE, "<date>"),
        (_HEX, "<hex>"),
        (_QUOTED, "<value>"),
        (_NUMBER, "<n>"),
    ):
        text = pattern.sub(token, text)
    return re.sub(r"\s+", " ", text)


def failure_groups(user, kind: str | None = None, annotation: str | None = None) -> list[dict]:
    """Failed rows of every resource (or only `kind`'s), grouped; the biggest groups first.
    With `annotation`, only rows whose incident's annotation contains that text."""
    groups: dict[tuple, dict] = {}
    for resource in RESOURCES.values():
        if kind in (None, resource.key):
            _add_groups(groups, resource, user, annotation)
    result = sorted(groups.values(), key=lambda g: (-g["count"], g["kind"], g["fingerprint"]))
    for group in result:
        group["key"] = group_key(group)
    return result


def _add_groups(groups: dict, resource, user, annotation) -> None:
    where, message_field = resource.source_field, resource.message_field
    rows = (
        resource.failed(user, annotation)
        .values(where, message_field)
        .annotate(n=Count("id"), first=Min("create_time"), last=Max("create_time"))
        .order_by("-n")[:FAILURE_SQL_GROUPS]
    )
    for row in rows:
        fingerprint = normalize_message(row[message_field])
        group = groups.setdefault(
            (resource.key, row[where], fingerprint),
            {
                "kind": resource.key,
                "resource": resource,
                "where": row[where],
                "fingerprint": fingerprint,
                "count": 0,
                "first": row["first"],
                "last": row["last"],
                "messages": [],
                "example": row[message_field],
                "annotation": annotation,
            },
        )
        group["count"] += row["n"]
        group["first"] = min(group["first"], row["first"])
        group["last"] = max(group["last"], row["last"])
        group["messages"].append(row[message_field])


def group_key(group) -> str:
    raw = f"{group['kind']}\x00{group['where']}\x00{group['fingerprint']}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def group_rows(user, group):
    """The rows of one failure group: failed, same source, one of its raw messages."""
    resource = group["resource"]
    message_field = resource.message_field
    messages = [m for m in group["messages"] if m is not None]
    q = Q(**{f"{message_field}__in": messages}) if messages else Q(pk__in=[])
    if None in group["messages"]:
        q |= Q(**{f"{message_field}__isnull": True})
    failed = resource.failed(user, group.get("annotation"))
    return failed.filter(q, **{resource.source_field: group["where"]})
