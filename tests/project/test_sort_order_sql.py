"""Sorting keeps Camunda's "nulls are smallest" order and stays index-friendly."""

import pytest

from external_tasks.models import ExternalTask
from project.rest.paging import order_by


def sql_for(sort_by, sort_order):
    keys = {"createTime": "create_time", "lockExpirationTime": "lock_expiration_time"}
    ordering = order_by([{"sortBy": sort_by, "sortOrder": sort_order}], keys)
    return str(ExternalTask.objects.order_by(*ordering).query).upper()


@pytest.mark.django_db
def test_sort_on_not_null_column_has_no_nulls_clause_so_its_index_serves_it():
    for direction in ("asc", "desc"):
        assert "NULLS" not in sql_for("createTime", direction).split("ORDER BY")[1]


@pytest.mark.django_db
def test_sort_on_nullable_column_keeps_nulls_smallest():
    assert "NULLS FIRST" in sql_for("lockExpirationTime", "asc").split("ORDER BY")[1]
    assert "NULLS LAST" in sql_for("lockExpirationTime", "desc").split("ORDER BY")[1]


@pytest.mark.django_db
def test_nulls_sort_first_ascending_and_last_descending_on_real_rows():
    ExternalTask.objects.create(id="a", topic_name="t")
    ExternalTask.objects.create(id="b", topic_name="t", lock_expiration_time="2030-01-01T00:00Z")
    keys = {"lockExpirationTime": "lock_expiration_time"}
    asc = order_by([{"sortBy": "lockExpirationTime", "sortOrder": "asc"}], keys)
    desc = order_by([{"sortBy": "lockExpirationTime", "sortOrder": "desc"}], keys)
    assert list(ExternalTask.objects.order_by(*asc).values_list("id", flat=True)) == ["a", "b"]
    assert list(ExternalTask.objects.order_by(*desc).values_list("id", flat=True)) == ["b", "a"]
