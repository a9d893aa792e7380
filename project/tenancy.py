"""Roles and tenants: who may see which rows and who may change them.

`scope()` is the one function every query path (REST faces, console, exports, counts) runs a
queryset through before filtering. Rows of other tenants are simply absent: 404, never 403,
never counted. As in Camunda's tenant check, rows without a tenant are shared by everyone.
"""

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet

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


def scope(queryset: QuerySet, user, field: str = "tenant_id") -> QuerySet:
    """Restrict a queryset to the rows the user may see. Anonymous users see nothing."""
    if user is None or not user.is_authenticated:
        return queryset.none()
    tenants = tenant_ids(user)
    if tenants is None:
        return queryset
    return queryset.filter(Q(**{f"{field}__in": sorted(tenants)}) | Q(**{f"{field}__isnull": True}))


def may_use_tenant(user, tenant_id: str | None) -> bool:
    """Whether the user may create or act on a row of this tenant."""
    tenants = tenant_ids(user)
    return tenants is None or tenant_id is None or tenant_id in tenants
