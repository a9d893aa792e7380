"""Failed work grouped by a fingerprint of its error (project.failures), each group a link to
exactly its rows and a bulk action on them, confirmed like every other.

A group is (resource, source, fingerprint): the resource's kind, where the failure comes from
(a job's handler, a task's topic: `Resource.source_field`) and its message with ids, dates,
numbers and quoted values normalised.
"""

import hashlib
from urllib.parse import urlencode

from django.db.models import Count, Max, Min

from console import snapshots
from console.resources import RESOURCES
from project.failures import normalize_message

__all__ = ["failure_groups", "group_key", "group_params", "group_query", "normalize_message"]

# What an operator may do to a whole group, through the same confirmation as every bulk action.
GROUP_ACTIONS = ("set_retries", "suspend")

# Distinct (source, raw message) pairs read per kind before they are folded into groups.
FAILURE_SQL_GROUPS = 5000


def failure_groups(
    user, kind: str | None = None, annotation: str | None = None, counted=None
) -> list[dict]:
    """Failed rows of every resource (or only `kind`'s), grouped; the biggest groups first.
    With `annotation`, only rows whose incident's annotation contains that text. `counted`:
    the groups of every kind as raw_groups() counted them for this user's scope (a snapshot)."""
    if counted is None:
        counted = raw_groups(user, kind, annotation)
    result = []
    for raw in counted:
        if kind in (None, raw["kind"]):
            result.append({**raw, "resource": RESOURCES[raw["kind"]], "annotation": annotation})
    for group in result:
        group["key"] = group_key(group)
        group["query"] = group_query(group)
        group["actions"] = [group["resource"].action(key) for key in GROUP_ACTIONS]
    return result


def raw_groups(user, kind: str | None = None, annotation: str | None = None) -> list[dict]:
    """The groups as plain values (what a snapshot keeps), the biggest first."""
    groups: dict[tuple, dict] = {}
    for resource in RESOURCES.values():
        if kind in (None, resource.key):
            _add_groups(groups, resource, user, annotation)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["kind"], g["fingerprint"]))


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
                "where": row[where],
                "fingerprint": fingerprint,
                "count": 0,
                "first": row["first"],
                "last": row["last"],
                "messages": [],
                "example": row[message_field],
            },
        )
        group["count"] += row["n"]
        group["first"] = min(group["first"], row["first"])
        group["last"] = max(group["last"], row["last"])
        group["messages"].append(row[message_field])


def group_key(group) -> str:
    raw = f"{group['kind']}\x00{group['where']}\x00{group['fingerprint']}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def group_params(group) -> dict:
    """The list parameters that select exactly this group's rows: failed, from its source, its
    fingerprint (and the annotation text the page was narrowed to). The group's link and its
    actions use them, so both see the rows, and the count, the group shows."""
    resource = group["resource"]
    params = {"status": "failed"}
    if group["where"]:
        params[resource.source_param] = group["where"]
    params["failureGroup"] = group["fingerprint"]
    if group.get("annotation"):
        params["incidentAnnotation"] = group["annotation"]
    return params


def group_query(group) -> str:
    return urlencode(group_params(group))


# The page without an annotation filter reads its scope's snapshot (console.snapshots).
snapshots.register("failures", raw_groups)
