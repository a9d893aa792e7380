"""Finding an external task by the start of its business key, in the global search and in the
table's search box, with the key shown in the results."""

import pytest
from django.db import connection

from external_tasks.models import ExternalTask
from tests.console.conftest import make_task
from tests.console.test_tables import row_ids


def test_the_global_search_finds_tasks_by_a_business_key_prefix_and_shows_the_key(
    operator_client,
):
    first = make_task(business_key="INV-2026-0042")
    second = make_task(business_key="INV-2026-0043")
    make_task(business_key="ORDER-2026-0042")
    html = operator_client.get("/search/?q=INV-2026").content.decode()
    assert first.pk in html and second.pk in html
    assert "INV-2026-0042" in html and "INV-2026-0043" in html
    assert "ORDER-2026-0042" not in html


def test_a_whole_business_key_still_finds_exactly_its_task(operator_client):
    task = make_task(business_key="ORDER-7")
    make_task(business_key="ORDER-8")
    assert row_ids(operator_client.get("/external-tasks/?q=ORDER-7")) == [task.pk]


def test_a_prefix_does_not_match_inside_a_key(operator_client):
    make_task(business_key="XINV-1")
    html = operator_client.get("/search/?q=INV-1").content.decode()
    assert "XINV-1" not in html
    assert "No external tasks match" in html


def test_like_wildcards_in_the_search_text_are_literal(operator_client):
    literal = make_task(business_key="A_%-1")
    make_task(business_key="AB%-1")
    make_task(business_key="AXY-1")
    assert row_ids(operator_client.get("/external-tasks/?q=A_%25")) == [literal.pk]


def test_another_tenants_business_key_is_not_found_by_its_prefix(operator_client):
    make_task(business_key="SECRET-1", tenant_id="globex")
    html = operator_client.get("/search/?q=SECRET").content.decode()
    assert "SECRET-1" not in html
    assert "No external tasks match" in html


@pytest.mark.postgres
def test_the_prefix_search_can_read_the_business_key_index(db, is_postgres):
    """With the pattern operator class, LIKE 'prefix%' is an index range whatever the
    database's collation; plain btree indexes serve it only under the C collation."""
    make_task(business_key="INV-1")
    query = ExternalTask.objects.filter(business_key__startswith="INV-")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        # Nor a walk of the primary key testing every row (the index now holds the id too,
        # for the sort by business key, so on one row that walk costs less).
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "ext_business_key_idx" in plan, plan
