"""The read replica router: opt-in reads go to the replica, writes never do."""

from asgiref.sync import async_to_sync

from jobs.models import Job
from project.db_routers import ReplicaRouter, replica_reads, use_replica


def with_replica(settings):
    settings.DATABASES = {**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}


def test_reads_go_to_the_replica_only_inside_replica_reads(settings):
    with_replica(settings)
    router = ReplicaRouter()
    assert router.db_for_read(Job) is None
    with replica_reads():
        assert router.db_for_read(Job) == "replica"
    assert router.db_for_read(Job) is None


def test_writes_always_go_to_the_primary(settings):
    with_replica(settings)
    router = ReplicaRouter()
    with replica_reads():
        assert router.db_for_write(Job, instance=Job(id="x")) == "default"


def test_without_a_replica_configured_replica_reads_is_a_no_op():
    with replica_reads():
        assert ReplicaRouter().db_for_read(Job) is None


def test_migrations_never_run_on_the_replica():
    router = ReplicaRouter()
    assert router.allow_migrate("replica", "jobs") is False
    assert router.allow_migrate("default", "jobs") is True


def test_use_replica_decorates_sync_and_async_views(settings):
    with_replica(settings)
    router = ReplicaRouter()

    @use_replica
    def view(request):
        return router.db_for_read(Job)

    @use_replica
    async def async_view(request):
        return router.db_for_read(Job)

    assert view(None) == "replica"
    assert async_to_sync(async_view)(None) == "replica"
    assert router.db_for_read(Job) is None
