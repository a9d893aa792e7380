"""Times to the millisecond, as Camunda keeps them: new rows get them from project.clock (the
defaults below), and the times already stored are cut to whole milliseconds, one UPDATE per
column, so a client sending back a time it read compares equal values."""

from django.db import migrations, models

import project.clock

COLUMNS = {
    "ExternalTask": ("lock_expiration_time", "create_time"),
    "ExternalTaskLog": ("timestamp",),
}


def truncate(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for model_name, columns in COLUMNS.items():
            model = apps.get_model("external_tasks", model_name)
            for name in columns:
                column = model._meta.get_field(name).column
                cursor.execute(
                    project.clock.truncate_column_sql(
                        connection.vendor, model._meta.db_table, column
                    )
                )


class Migration(migrations.Migration):
    dependencies = [
        ("external_tasks", "0006_hot_retries"),
    ]

    operations = [
        migrations.AlterField(
            model_name="externaltask",
            name="create_time",
            field=models.DateTimeField(default=project.clock.now),
        ),
        migrations.AlterField(
            model_name="externaltasklog",
            name="timestamp",
            field=models.DateTimeField(default=project.clock.now),
        ),
        # Cut microseconds can never be restored: going back leaves the times as they are.
        migrations.RunPython(truncate, migrations.RunPython.noop),
    ]
