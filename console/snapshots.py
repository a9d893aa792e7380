"""The console's aggregate figures (overview, failures, queues, topics), computed outside the
request and kept in the database, per tenant scope.

At 1M jobs + 1M tasks each of those pages scans big tables (seconds). A periodic job
(`refresh`, on the SNAPSHOT_QUEUE: one job, due again after each run, like the batch monitor)
computes every registered page for every tenant scope a console user has ("*" for admins, each
viewer's and operator's tenant set), and a page reads its scope's row: a few milliseconds, in
every server process, for the first view as for a later one. Figures are exact as of the
snapshot's time, which each page shows; a missing snapshot, one older than max_age() (no
executor serves the queue) or `?fresh` is computed in the request, as before, and the page
says so.

A scope's figures are computed as a principal that sees exactly that scope's tenants, through
the same scoping (project.tenancy) as a user's request, and read back only by users whose
tenant set is that scope: never across two scopes.
"""

import hashlib
import json
import pickle
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.tasks import task
from django.utils import timezone

from console.models import Snapshot
from jobs.claims import RunAgain, default_retry_cycle
from jobs.models import Job
from project import clock, tenancy

SNAPSHOT_QUEUE = "console"
REFRESH_HANDLER = "console.snapshots.refresh"
# Seconds between two refreshes, and the age past which a page recomputes in the request.
INTERVAL = 30
MAX_AGE = 120
# Figures no job refreshes (the overview's other windows) are recounted after this many seconds.
ON_DEMAND_AGE = 15
# Tenant sets refreshed in the background, at most (admins' "*" first); others on demand.
MAX_SCOPES = 20

FORGET_AFTER = timedelta(days=1)

# name: compute(user) -> picklable data; the pages register theirs (register(); console.apps
# imports them).
PAGES: dict = {}


def _setting(key, default):
    return getattr(settings, "TASKYARD_CONSOLE", {}).get(key, default)


def interval() -> float:
    return float(_setting("SNAPSHOT_INTERVAL", INTERVAL))


def max_age() -> float:
    return float(_setting("SNAPSHOT_MAX_AGE", MAX_AGE))


def register(name: str, compute) -> None:
    """`compute(user)` is refreshed in the background for every scope."""
    PAGES[name] = compute


def scope_key(tenants) -> str:
    if tenants is None:
        return "*"
    return hashlib.sha256(json.dumps(sorted(tenants)).encode()).hexdigest()[:40]


def principal(tenants):
    """An unsaved user that sees exactly `tenants` (None: every tenant, as an admin does)."""
    user = get_user_model()(username="console-snapshot")
    user._taskyard_roles = frozenset({tenancy.ADMIN if tenants is None else tenancy.VIEWER})
    user._taskyard_tenants = frozenset(tenants or ())
    return user


def store(name: str, tenants, data, at, seconds: float) -> None:
    Snapshot.objects.update_or_create(
        name=name,
        scope=scope_key(tenants),
        defaults={
            "tenants": None if tenants is None else sorted(tenants),
            "data": pickle.dumps(data),
            "computed_at": at,
            "seconds": seconds,
        },
    )


def compute_and_store(name: str, tenants, compute):
    at = timezone.now()
    started = time.monotonic()
    data = compute()
    store(name, tenants, data, at, time.monotonic() - started)
    return data, at


def numbers(request, name: str, compute) -> tuple:
    """(data, as of, counted now) of the page `name` for the request's user: the snapshot of
    the user's tenant scope; computed now (and stored) when it is missing, older than
    max_age() (ON_DEMAND_AGE for a page no job refreshes) or the user asks `?fresh`."""
    tenants = tenancy.tenant_ids(request.user)
    row = (
        Snapshot.objects.filter(name=name, scope=scope_key(tenants))
        .only("data", "computed_at")
        .first()
    )
    now = timezone.now()
    oldest = now - timedelta(seconds=max_age() if name in PAGES else ON_DEMAND_AGE)
    if row is not None and "fresh" not in request.GET and row.computed_at >= oldest:
        return pickle.loads(row.data), row.computed_at, False
    data, at = compute_and_store(name, tenants, compute)
    if name in PAGES:
        ensure_refresh()
    return data, at, True


def scopes() -> list:
    """Every console reader's tenant scope: None (every tenant) first, then the distinct tenant
    sets of viewers and operators, at most MAX_SCOPES."""
    users = tenancy.with_roles_and_tenants(
        get_user_model()
        .objects.filter(is_active=True, is_superuser=False)
        .filter(groups__name__in=[tenancy.VIEWER, tenancy.OPERATOR])
    ).distinct()
    found: list = [None]
    for user in users.iterator():
        tenancy.remember(user)
        tenants = tenancy.tenant_ids(user)
        if tenants is not None and tenants not in found:
            found.append(tenants)
    return found[:MAX_SCOPES]


def _pending() -> Q:
    return Q(handler=REFRESH_HANDLER, queue_name=SNAPSHOT_QUEUE)


def ensure_refresh() -> None:
    """Schedule the periodic refresh unless a job of it exists (pending or running)."""
    if not Job.objects.filter(_pending()).exists():
        refresh.enqueue()


def refresh_all() -> int:
    """Recompute every registered page for every scope; answers how many snapshots. Snapshots
    nobody read or refreshed for FORGET_AFTER (a tenant set no user has any more) go."""
    Snapshot.objects.filter(computed_at__lt=timezone.now() - FORGET_AFTER).delete()
    done = 0
    for tenants in scopes():
        user = principal(tenants)
        for name, compute in PAGES.items():
            compute_and_store(name, tenants, lambda c=compute, u=user: c(u))
            done += 1
    return done


def _full_retries() -> int:
    """The retries a new refresh job is created with (the backend's, else the retry cycle's)."""
    retries = getattr(refresh.get_backend(), "retries", None)
    return default_retry_cycle().retries if retries is None else retries


@task(queue_name=SNAPSHOT_QUEUE)
def refresh() -> RunAgain | dict:
    """Recompute every registered page for every scope, then run again after interval(): the
    same job, due again, with its retries full again. A failure is the executor's as for any
    job: retried after the retry cycle's delay (pages older than max_age() are counted in the
    request meanwhile); only consecutive failures that spend every retry stop it, with an
    incident, until an operator sets its retries again."""
    done = refresh_all()
    # Two requests that found no job at once created two: this one ends if another will run.
    # This job is locked while it runs; the others are not.
    if Job.objects.filter(_pending(), lock_owner__isnull=True, retries__gt=0).exists():
        return {"snapshots": done}
    return RunAgain(
        clock.now() + timedelta(seconds=interval()), {"snapshots": done}, retries=_full_retries()
    )
