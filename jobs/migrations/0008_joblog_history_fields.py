# The job log gets the rest of Camunda's HistoricJobLogDto (issue 21): the job's due date,
# priority, execution, process definition id and failed activity, its definition's type and
# configuration, and the writing host. Old entries get what can be derived: a definition's type
# and configuration never change, nor do a job's execution and process definition (copied from
# jobs still there), nor a priority nobody changed; failure entries failed at the job's
# activity (the executor sets failedActivityId so). Due dates and hosts of the past are unknown
# and stay null. One UPDATE per column group over the whole log table.

from django.db import migrations, models
from django.db.models import Exists, F, OuterRef, Subquery


def backfill(apps, schema_editor):
    JobLog = apps.get_model("jobs", "JobLog")
    Job = apps.get_model("jobs", "Job")
    JobDefinition = apps.get_model("jobs", "JobDefinition")
    definition = JobDefinition.objects.filter(pk=OuterRef("job_definition_id"))
    JobLog.objects.filter(Exists(definition)).update(
        job_definition_type=Subquery(definition.values("job_type")[:1]),
        job_definition_configuration=Subquery(definition.values("job_configuration")[:1]),
    )
    job = Job.objects.filter(pk=OuterRef("job_id"))
    JobLog.objects.filter(Exists(job)).update(
        execution_id=Subquery(job.values("execution_id")[:1]),
        process_definition_id=Subquery(job.values("process_definition_id")[:1]),
    )
    reprioritised = JobLog.objects.filter(job_id=OuterRef("job_id"), event="priority-set")
    JobLog.objects.filter(Exists(job)).exclude(Exists(reprioritised)).update(
        priority=Subquery(job.values("priority")[:1])
    )
    JobLog.objects.filter(event="failed").update(failed_activity_id=F("activity_id"))


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0007_times_to_milliseconds'),
    ]

    operations = [
        migrations.AddField(
            model_name='joblog',
            name='due_date',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='execution_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='failed_activity_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='hostname',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='job_definition_configuration',
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='job_definition_type',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='priority',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='joblog',
            name='process_definition_id',
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
