"""Three task-table indexes that no measured query needs (bench/indexes.py, bench/README.md
"Index audit"): ext_worker_locked_idx and ext_error_idx (the "Expired lock" and "Retrying"
console statuses answer as fast from ext_created_idx) and ext_topic_idx (only a topic's tasks by
createTime past the first pages needed it). Each cost every failed task brought back an index
entry: together ~0.8 s of 104k at 1M tasks, and 124 MB of index that competed for the cache."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('external_tasks', '0010_business_key_prefix_index'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_worker_locked_idx',
        ),
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_error_idx',
        ),
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_topic_idx',
        ),
    ]
