"""Health endpoints for load balancers and orchestrators: cheap, unauthenticated, and saying
nothing an outsider could use (no versions, hosts or error texts; those go to the log)."""

import logging

from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger("taskyard.health")

# Once this process has seen every migration applied it stays that way until it is restarted
# (a deploy with new migrations restarts the processes), so the migration graph is loaded once.
_migrations_applied = False


@login_not_required
@never_cache
@require_safe
def live(request):
    """The process is up and serving requests. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database(connection) -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except DatabaseError:
        log.warning("readiness: database unreachable", exc_info=True)
        # A half-open connection must not be reused by the next probe.
        connection.close_if_unusable_or_obsolete()
        return False


def _check_migrations(connection) -> bool:
    global _migrations_applied
    if _migrations_applied:
        return True
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        log.warning("readiness: could not read the migration table", exc_info=True)
        return False
    if pending:
        log.warning("readiness: %d unapplied migration(s)", len(pending))
        return False
    _migrations_applied = True
    return True


@login_not_required
@never_cache
@require_safe
def ready(request):
    """Ready for traffic: the database answers and its schema is migrated. 503 otherwise."""
    connection = connections[DEFAULT_DB_ALIAS]
    checks = {"database": {"ok": _check_database(connection)}}
    if not checks["database"]["ok"]:
        checks["database"]["error"] = "database unreachable"
        checks["migrations"] = {"ok": False, "error": "not checked: database unreachable"}
    else:
        checks["migrations"] = {"ok": _check_migrations(connection)}
        if not checks["migrations"]["ok"]:
            checks["migrations"]["error"] = "migrations not applied"
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
