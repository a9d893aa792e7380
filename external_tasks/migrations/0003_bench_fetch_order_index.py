# Added by the benchmark (bench branch): fetchAndLock without usePriority orders by
# (create_time, id) inside one topic. ext_fetchable_idx leads with priority, so PostgreSQL walked
# ext_created_idx over every task of every topic to find the oldest of one topic: 7.5 s per
# fetch for a topic whose tasks are the newest among 1M. This partial index answers that order
# directly. Raw SQL (not AddIndex) keeps the model state, and so makemigrations, unchanged;
# the statement is valid on PostgreSQL and SQLite alike.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("external_tasks", "0002_task_api_process_definition_name"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX IF NOT EXISTS ext_fetch_order_idx "
                "ON external_tasks_externaltask (topic_name, create_time, id) "
                "WHERE NOT suspended AND (retries IS NULL OR retries > 0)"
            ),
            reverse_sql="DROP INDEX IF EXISTS ext_fetch_order_idx",
        ),
    ]
