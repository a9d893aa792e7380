"""Roles and tenants: who may see which rows and who may change them.

`scope()` is the one function every query path (REST faces, console, exports, counts) runs a
queryset through before filtering. Rows of other tenants are simply absent: 404, never 403,
never counted. As in Camunda's tenant check, rows without a tenant are shared by everyone.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db.models import Aggregate, JSONField, OuterRef, Q, QuerySet, Subquery

from project.models import AuditEntry, Batch, Membership

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
WORKER = "worker"
ROLES = (VIEWER, OPERATOR, ADMIN, WORKER)


def roles(user) -> frozenset[str]:
    """The user's role names, cached on the user object for the request."""
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_taskyard_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMIN}
        user._taskyard_roles = cached
    return cached


class _JsonAgg(Aggregate):
    """The group's values as a JSON array: a list in one column, whatever characters it holds."""

    function = "JSONB_AGG"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra)


def with_roles_and_tenants(users: QuerySet) -> QuerySet:
    """Users with their role names and tenant ids in the same query: HTTP Basic re-reads a
    worker's account on every request, and this makes that one query instead of three.
    Pass each loaded user through `remember()`."""
    in_groups = get_user_model().groups.through.objects.filter(
        user_id=OuterRef("pk"), group__name__in=ROLES
    )
    tenants = Membership.objects.filter(user_id=OuterRef("pk"))
    return users.annotate(
        taskyard_role_names=Subquery(
            in_groups.values("user_id").annotate(names=_JsonAgg("group__name")).values("names")
        ),
        taskyard_tenant_ids=Subquery(
            tenants.values("user_id").annotate(ids=_JsonAgg("tenant_id")).values("ids")
        ),
    )


def remember(user):
    """Keep what `with_roles_and_tenants()` loaded as the user's roles and tenants."""
    names = frozenset(user.taskyard_role_names or ())
    user._taskyard_roles = names | {ADMIN} if user.is_superuser else names
    user._taskyard_tenants = frozenset(user.taskyard_tenant_ids or ())
    return user


def is_admin(user) -> bool:
    return ADMIN in roles(user)


def can_view(user) -> bool:
    """Read access to the console and the query endpoints (workers excluded)."""
    return bool(roles(user) & {VIEWER, OPERATOR, ADMIN})


def can_operate(user) -> bool:
    """Retries, suspend/activate, unlock, priority, due date."""
    return bool(roles(user) & {OPERATOR, ADMIN})


def can_delete(user) -> bool:
    return is_admin(user)


def can_work(user) -> bool:
    """Fetch, lock, complete and fail work through the worker endpoints."""
    return bool(roles(user) & {WORKER, OPERATOR, ADMIN})


def tenant_ids(user) -> frozenset[str] | None:
    """The tenants the user belongs to; None means all tenants (admins)."""
    if is_admin(user):
        return None
    if user is None or not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_taskyard_tenants", None)
    if cached is None:
        cached = frozenset(user.memberships.values_list("tenant_id", flat=True))
        user._taskyard_tenants = cached
    return cached


# Models whose rows can belong to a batch: {model: (the field holding the row's job definition,
# "pk" for job definitions themselves; whether rows outlive the batch's run)}. The jobs app
# registers its jobs, job definitions and job log (batches run as jobs there).
BATCH_ROWS: dict[type, tuple[str, bool]] = {}
BATCH_DEFINITIONS = (
    "seed_job_definition_id",
    "monitor_job_definition_id",
    "batch_job_definition_id",
)


def has_batch_rows(model, definition_field: str, *, history: bool = False) -> None:
    """Make `scope()` show the rows of `model` that belong to a batch (those whose
    `definition_field` is one of a batch's seed, monitor or batch job definitions) only to
    those who may see the batch (`scope_batches`). `history`: the rows stay after the batch
    ends (log entries); otherwise only running batches have rows."""
    BATCH_ROWS[model] = (definition_field, history)


def scope(queryset: QuerySet, user, field: str = "tenant_id") -> QuerySet:
    """Restrict a queryset to the rows the user may see. Anonymous users see nothing.

    A batch's jobs, job definitions and job log entries are the batch's: seen exactly by those
    who may see the batch, and admins. Camunda gives them the batch's tenant, or none when the
    rows span tenants; shared by everyone they would show one tenant another's batch (its id
    in every payload and definition, its size and pace), so the tenant-less ones of a batch the
    user cannot see are hidden too."""
    if user is None or not user.is_authenticated:
        return queryset.none()
    tenants = tenant_ids(user)
    batch_rows = BATCH_ROWS.get(queryset.model)
    if tenants is None or batch_rows is None:
        return restrict(queryset, tenants, field)
    definition_field, history = batch_rows
    hidden = _hidden_batch_definitions(user, history)
    if not hidden:  # the usual case: no batch over several tenants that the user cannot see
        return restrict(queryset, tenants, field)
    # Only the tenant-less rows need the look: a tenant's rows are already theirs alone.
    shared = Q(**{f"{field}__isnull": True}) & ~Q(**{f"{definition_field}__in": hidden})
    return queryset.filter(Q(**{f"{field}__in": sorted(tenants)}) | shared)


def _hidden_batch_definitions(user, history: bool) -> list[str]:
    """The job definition ids of the batches without a tenant (rows of several tenants, or of
    none) that the user may not see; with `history`, ended ones too. Read first, as a short
    list: as subqueries they cost every query more planning than the few ids cost to read, and
    with none (the usual case) the query stays as it was."""
    candidates = Batch.objects.filter(tenant_id__isnull=True)
    if not history:
        candidates = candidates.filter(end_time__isnull=True)
    rows = list(candidates.values_list("pk", *BATCH_DEFINITIONS))
    if not rows:
        return []
    seen = set(scope_batches(candidates, user).values_list("pk", flat=True))
    return sorted({i for batch, *ids in rows if batch not in seen for i in ids if i})


def restrict(queryset: QuerySet, tenants, field: str = "tenant_id") -> QuerySet:
    """The rows of `tenants` (None: all) and the tenant-less ones: what `scope` keeps for an
    authenticated user, for callers that cache by the tenants rather than by the user."""
    if tenants is None:
        return queryset
    return queryset.filter(Q(**{f"{field}__in": sorted(tenants)}) | Q(**{f"{field}__isnull": True}))


def scope_audit(queryset: QuerySet, user) -> QuerySet:
    """Restrict audit entries to those `user` may see: admins all; others the entries whose
    every touched tenant is one of theirs (rows without a tenant are everyone's), never an
    entry of unknown or all tenants. What `scope` is for rows, for the audit trail: the
    /audit/ page, its filters and counts, the detail pages and the admin go through it."""
    if user is None or not user.is_authenticated:
        return queryset.none()
    return queryset.within(tenant_ids(user))


def may_use_tenant(user, tenant_id: str | None) -> bool:
    """Whether the user may create or act on a row of this tenant."""
    tenants = tenant_ids(user)
    return tenants is None or tenant_id is None or tenant_id in tenants


def scope_batches(queryset: QuerySet, user) -> QuerySet:
    """Restrict batches to those `user` may see: readers (viewer, operator, admin) see a batch
    when they may see its audit entry, i.e. every tenant its rows touched is theirs (rows
    without a tenant are everyone's); admins see all. A batch whose audit entry is gone
    (pruned) is shown to admins only."""
    if user is None or not user.is_authenticated or not can_view(user):
        return queryset.none()
    if is_admin(user):
        return queryset
    return queryset.filter(audit_entry__in=AuditEntry.objects.within(tenant_ids(user)).values("pk"))
