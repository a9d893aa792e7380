# Added by the benchmark (bench branch): `runjobs --queue Q` (and every django.tasks worker bound
# to a queue) filters on queue_name, which job_acquirable_idx does not lead with. With 1M jobs
# of other queues ahead in priority order, each claim walked ~685k index entries: 4.3 s per job.
# This partial index gives the queue's own acquisition order. Raw SQL (not AddIndex) keeps the
# model state, and so makemigrations, unchanged; valid on PostgreSQL and SQLite alike.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_executor_queue_name_and_log_payload"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX IF NOT EXISTS job_queue_acquirable_idx "
                "ON jobs_job (queue_name, priority DESC, due_date) "
                "WHERE retries > 0 AND NOT suspended"
            ),
            reverse_sql="DROP INDEX IF EXISTS job_queue_acquirable_idx",
        ),
    ]
