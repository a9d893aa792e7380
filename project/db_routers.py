"""Optional read replica for reads that tolerate replication lag (see project/docs/deployment.md).

Nothing goes to the replica unless code asks for it: a fetch-and-lock, an executor claim or a
console action must see the primary's current rows, and a router cannot tell those reads from
a dashboard's. Views whose reads may be a few seconds stale (console lists, counts, charts)
opt in with `@use_replica` or a `with replica_reads():` block. Without a configured `replica`
database both are no-ops, so code can opt in unconditionally.
"""

import contextvars
import functools
from contextlib import contextmanager

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"

_reading_from_replica = contextvars.ContextVar("taskyard_replica_reads", default=False)


@contextmanager
def replica_reads():
    """Within the block, ORM reads go to the replica (when one is configured)."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


def use_replica(view):
    """Decorator for views that only read and tolerate lag."""
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args, **kwargs):
            with replica_reads():
                return await view(*args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        with replica_reads():
            return view(*args, **kwargs)

    return wrapper


class ReplicaRouter:
    """Reads inside `replica_reads()` go to DATABASES["replica"]; everything else, and every
    write, to the primary."""

    def db_for_read(self, model, **hints):
        if _reading_from_replica.get() and REPLICA in settings.DATABASES:
            return REPLICA
        return None

    def db_for_write(self, model, **hints):
        # Always the primary, even for an object that was read from the replica (Django would
        # otherwise save it back where it came from).
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA  # the replica follows the primary's schema by replication
