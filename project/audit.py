"""The audit trail: every operator action, from the console or the API, is written here."""

from project.models import AuditEntry

MAX_IDS = 1000  # ids kept per entry; `count` stays exact for bulk actions on millions of rows


def record(
    user,
    action: str,
    target_type: str,
    *,
    ids=(),
    filter=None,
    count: int = 0,
    skipped: int = 0,
    before=None,
    after=None,
    source: str = "api",
) -> AuditEntry:
    """Write one audit entry. Call it inside the action's transaction so both land or neither."""
    ids = list(ids)[:MAX_IDS]
    return AuditEntry.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        username=getattr(user, "username", "") or "system",
        action=action,
        target_type=target_type,
        target_ids=ids,
        filter=filter,
        count=count,
        skipped=skipped,
        before=before,
        after=after,
        source=source,
    )
