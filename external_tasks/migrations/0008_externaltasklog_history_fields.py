# The external task log gets the rest of Camunda's HistoricExternalTaskLogDto (issue 21): the
# task's priority, activity instance, execution and process definition id. Old entries of tasks
# still in the runtime table get them from the task (none of them changes, except a priority
# that an operator set: then only the task's current value is known, so those stay null).
# Entries of finished tasks cannot be derived and stay null.

from django.db import migrations, models
from django.db.models import Exists, OuterRef, Subquery


def backfill(apps, schema_editor):
    Log = apps.get_model("external_tasks", "ExternalTaskLog")
    Task = apps.get_model("external_tasks", "ExternalTask")
    task = Task.objects.filter(pk=OuterRef("task_id"))
    Log.objects.filter(Exists(task)).update(
        activity_instance_id=Subquery(task.values("activity_instance_id")[:1]),
        execution_id=Subquery(task.values("execution_id")[:1]),
        process_definition_id=Subquery(task.values("process_definition_id")[:1]),
    )
    reprioritised = Log.objects.filter(task_id=OuterRef("task_id"), event="priority-set")
    Log.objects.filter(Exists(task)).exclude(Exists(reprioritised)).update(
        priority=Subquery(task.values("priority")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ('external_tasks', '0007_times_to_milliseconds'),
    ]

    operations = [
        migrations.AddField(
            model_name='externaltasklog',
            name='activity_instance_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='externaltasklog',
            name='execution_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='externaltasklog',
            name='priority',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='externaltasklog',
            name='process_definition_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
