# Setting retries on many tasks rewrote every index entry of every row (21 s of UPDATE for 100k
# tasks, bench/README.md). Indexes now test the stored `has_retries` instead of `retries`, and the
# table keeps free space in each page, so a change of retries that leaves retries left is a HOT
# update: the new row version goes into the same page and no index changes.
#
# Adding the stored column rewrites the table (about 30 s per million tasks, under an exclusive
# lock); the rewrite already honours the new fillfactor, so existing rows get the free space too.
from django.db import migrations, models

# Percent of each heap page that inserts fill. A task row is ~1.2 kB (variables, error details)
# of an 8 kB page, so a page holds ~5. Setting retries on one topic of ten (100k of 1M tasks,
# 84k of them keeping retries left) made 82k HOT updates at 70 (UPDATE 4.9 s, table +47%) and
# 75k at 80 (6.8 s, table +31%); at 100 none (21 s). The table's live rows are its backlog, so
# the extra space is bounded by what waits.
FILLFACTOR = 70


def set_fillfactor(apps, schema_editor, value=FILLFACTOR):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE external_tasks_externaltask SET (fillfactor = {int(value)})"
        )


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE external_tasks_externaltask RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('external_tasks', '0005_activity_id_index'),
    ]

    operations = [
        migrations.RunPython(set_fillfactor, reset_fillfactor),
        # Made by raw SQL in 0003 (outside the model state); now a model index on has_retries.
        migrations.RunSQL(
            "DROP INDEX IF EXISTS ext_fetch_order_idx",
            reverse_sql=(
                "CREATE INDEX IF NOT EXISTS ext_fetch_order_idx "
                "ON external_tasks_externaltask (topic_name, create_time, id) "
                "WHERE NOT suspended AND (retries IS NULL OR retries > 0)"
            ),
        ),
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_fetchable_idx',
        ),
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_failed_idx',
        ),
        migrations.RemoveIndex(
            model_name='externaltask',
            name='ext_topic_priority_idx',
        ),
        migrations.AddField(
            model_name='externaltask',
            name='has_retries',
            field=models.GeneratedField(db_persist=True, expression=models.Q(('retries__isnull', True), ('retries__gt', 0), _connector='OR'), output_field=models.BooleanField()),
        ),
        migrations.AddIndex(
            model_name='externaltask',
            index=models.Index(models.F('topic_name'), models.OrderBy(models.F('priority'), descending=True), models.F('create_time'), condition=models.Q(('has_retries', True), ('suspended', False)), name='ext_fetchable_idx'),
        ),
        migrations.AddIndex(
            model_name='externaltask',
            index=models.Index(condition=models.Q(('has_retries', False)), fields=['-create_time'], include=('tenant_id',), name='ext_failed_idx'),
        ),
        migrations.AddIndex(
            model_name='externaltask',
            index=models.Index(condition=models.Q(('has_retries', True), ('suspended', False)), fields=['topic_name', 'create_time', 'id'], name='ext_fetch_order_idx'),
        ),
        migrations.AddIndex(
            model_name='externaltask',
            index=models.Index(fields=['topic_name', 'priority', 'id'], include=('lock_expiration_time', 'has_retries'), name='ext_topic_priority_idx'),
        ),
    ]
