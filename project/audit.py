"""The audit trail: every operator action, from the console or the API, is written here.

Each entry records the tenants of the rows it touched (AuditTenant, null for rows without a
tenant), and `tenancy.scope_audit(entries, user)` shows it only to users who belong to every
one of them: what an operator of two tenants did to one tenant's rows never reaches the other's
viewers, by id, filter or count.
"""

from collections.abc import Iterable

from project import tenancy
from project.models import AuditEntry, AuditTenant

MAX_IDS = 1000  # ids kept per entry; `count` stays exact for bulk actions on millions of rows


def action_name(target_type: str, verb: str) -> str:
    """The one naming scheme of audit actions: "<target type>.<verb>", e.g. "job.set_retries"."""
    return f"{target_type}.{verb}"


def _named_in_filter(filter) -> set[str]:
    """Tenant ids a filter names (tenantIdIn=globex, processDefinitionTenantId, …): an entry
    showing that filter tells its readers about those tenants even when it reached none of
    their rows."""
    named: set[str] = set()
    if not isinstance(filter, dict):
        return named
    for key, value in filter.items():
        if "tenant" not in str(key).lower() or value in (None, "", [], False, True):
            continue
        values = value if isinstance(value, (list, tuple)) else str(value).split(",")
        # As stored (64 characters, no NUL): a cut name matches no membership, which only
        # hides the entry from more people.
        named.update(str(v).replace("\x00", "")[:64] for v in values if v not in (None, ""))
    return named


def _touched(user, tenants: Iterable | None, filter) -> set | None:
    """The tenants to record (None: only admins may see the entry)."""
    if tenants is None:
        return None
    touched = set(tenants) | _named_in_filter(filter)
    if touched:
        return touched
    # Nothing reached: the entry still shows the filter or ids the actor asked about, so it
    # belongs to the tenants the actor acts for (an admin's, or the system's: all of them).
    actor_tenants = tenancy.tenant_ids(user) if getattr(user, "is_authenticated", False) else None
    return set(actor_tenants) if actor_tenants is not None else None


def record(
    user,
    target_type: str,
    verb: str,
    *,
    tenants: Iterable | None,
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
    `reason` if they gave one. Call it inside the action's transaction so both land or neither.

    `tenants` are the distinct tenant ids of the rows the action reached (None in it: rows
    without a tenant), read by the statements that selected the rows; `tenants=None` means
    unknown or every tenant, and makes the entry visible to admins only."""
    ids = list(ids)[:MAX_IDS]
    if reason:
        after = {**(after or {}), "reason": reason}
    touched = _touched(user, tenants, filter)
    entry = AuditEntry.objects.create(
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
        admin_only=touched is None,
    )
    _write_tenants(entry, touched)
    return entry


def set_tenants(entry: AuditEntry, user, tenants: Iterable | None) -> None:
    """Record the tenants an entry's action reached once they are known, in place of those it
    was written with (a large batch's entry is written with its creator's tenants; its seed
    job selects the rows later). Inside the caller's transaction."""
    touched = _touched(user, tenants, entry.filter)
    AuditTenant.objects.filter(entry=entry).delete()
    _write_tenants(entry, touched)
    if entry.admin_only != (touched is None):
        entry.admin_only = touched is None
        entry.save(update_fields=["admin_only"])


def _write_tenants(entry: AuditEntry, touched: set | None) -> None:
    if touched:
        AuditTenant.objects.bulk_create(
            AuditTenant(entry=entry, tenant_id=tenant)
            for tenant in sorted(touched, key=lambda t: (t is not None, t or ""))
        )
