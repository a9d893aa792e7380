import os

from django.apps import AppConfig

# Connection pools a forked child inherited from its parent (see _forget_inherited_pools).
_INHERITED_POOLS: list[dict] = []


def _forget_inherited_pools():
    """After fork (runjobs --concurrency), the parent's pooled connections are the parent's
    sockets: the child must not use them, nor let them be garbage collected (closing them would
    end the parent's sessions). It keeps them untouched and opens a pool of its own."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    if DatabaseWrapper._connection_pools:
        _INHERITED_POOLS.append(dict(DatabaseWrapper._connection_pools))
        DatabaseWrapper._connection_pools.clear()


class ProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Taskyard: users, tenants and audit"

    def ready(self):
        from django.conf import settings

        from project import schema  # noqa: F401  (registers the OpenAPI auth extensions)

        if any(db.get("OPTIONS", {}).get("pool") for db in settings.DATABASES.values()):
            os.register_at_fork(after_in_child=_forget_inherited_pools)
