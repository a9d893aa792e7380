import pytest
from django.contrib.auth.models import AnonymousUser

from external_tasks.models import ExternalTask
from jobs.models import Job
from project import tenancy
from tests.conftest import make_user


@pytest.fixture
def rows(db):
    for tenant in ["acme", "globex", None]:
        Job.objects.create(id=f"job-{tenant}", tenant_id=tenant)
        ExternalTask.objects.create(id=f"task-{tenant}", topic_name="t", tenant_id=tenant)


def ids(queryset):
    return sorted(queryset.values_list("id", flat=True))


def test_viewer_of_one_tenant_never_sees_another_tenants_rows(rows, viewer_user):
    assert ids(tenancy.scope(Job.objects.all(), viewer_user)) == ["job-None", "job-acme"]
    assert ids(tenancy.scope(ExternalTask.objects.all(), viewer_user)) == [
        "task-None",
        "task-acme",
    ]
    assert tenancy.scope(Job.objects.filter(tenant_id="globex"), viewer_user).count() == 0


def test_admin_sees_every_tenant(rows, admin_user):
    assert len(ids(tenancy.scope(Job.objects.all(), admin_user))) == 3


def test_user_of_several_tenants_sees_all_of_them(rows, db):
    user = make_user("dave", "operator", ["acme", "globex"])
    assert ids(tenancy.scope(Job.objects.all(), user)) == ["job-None", "job-acme", "job-globex"]


def test_user_without_tenant_sees_only_shared_rows(rows, db):
    user = make_user("erin", "viewer")
    assert ids(tenancy.scope(Job.objects.all(), user)) == ["job-None"]


def test_anonymous_sees_nothing(rows):
    assert tenancy.scope(Job.objects.all(), AnonymousUser()).count() == 0
    assert tenancy.scope(Job.objects.all(), None).count() == 0


def test_superuser_without_group_is_admin(rows, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", password="x")
    assert tenancy.is_admin(boss)
    assert len(ids(tenancy.scope(Job.objects.all(), boss))) == 3


def test_roles_decide_what_a_user_may_do(viewer_user, operator_user, admin_user, worker_user):
    assert tenancy.can_view(viewer_user) and not tenancy.can_operate(viewer_user)
    assert tenancy.can_operate(operator_user) and not tenancy.can_delete(operator_user)
    assert tenancy.can_delete(admin_user) and tenancy.can_work(admin_user)
    assert tenancy.can_work(worker_user) and not tenancy.can_view(worker_user)


def test_may_use_tenant_follows_membership(viewer_user, admin_user):
    assert tenancy.may_use_tenant(viewer_user, "acme")
    assert tenancy.may_use_tenant(viewer_user, None)
    assert not tenancy.may_use_tenant(viewer_user, "globex")
    assert tenancy.may_use_tenant(admin_user, "globex")


def test_create_user_replaces_role_and_tenants(db):
    user = make_user("frank", "viewer", ["acme"])
    user = make_user("frank", "operator", ["globex"])
    user = type(user).objects.get(pk=user.pk)  # fresh object: role caches are per instance
    assert tenancy.roles(user) == {"operator"}
    assert tenancy.tenant_ids(user) == {"globex"}
    assert user.check_password("frank-password")
