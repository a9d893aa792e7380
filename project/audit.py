"""The audit trail: every operator action, from the console or the API, is written here."""

from project.models import AuditEntry

MAX_IDS = 1000  # ids kept per entry; `count` stays exact for bulk actions on millions of rows


def action_name(target_type: str, verb: str) -> str:
    """The one naming scheme of audit actions: "<target type>.<verb>", e.g. "job.set_retries"."""
    return f"{target_type}.{verb}"


def record(
    user,
    target_type: str,
    verb: str,
    *,
    ids=(),
    filter=None,
    count: int = 0,
    skipped: int = 0,
    before=None,
    after=None,
    source: str = "api",
    reason: str = "",
) -> AuditEntry:
    """Write one audit entry for `verb` done to rows of `target_type`, with the operator's
    `reason` if they gave one. Call it inside the action's transaction so both land or neither."""
    ids = list(ids)[:MAX_IDS]
    if reason:
        after = {**(after or {}), "reason": reason}
    return AuditEntry.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        username=getattr(user, "username", "") or "system",
        action=action_name(target_type, verb),
        target_type=target_type,
        target_ids=ids,
        filter=filter,
        count=count,
        skipped=skipped,
        before=before,
        after=after,
        source=source,
    )
