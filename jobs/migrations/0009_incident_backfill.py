# Jobs that already had no retries left before incidents existed get their failedJob incident.
# Its timestamp is the best the job log tells: the latest entry that left the job at 0 retries
# (its last failure, or an operator's set-retries to 0), else the job's create time.
# (Numbered 0009 to leave room for the other migrations of this round; the lead chains them.)

from django.db import migrations

from project import incidents


def open_incidents(apps, schema_editor):
    incidents.backfill(
        apps.get_model("project", "Incident"),
        incidents.FAILED_JOB,
        apps.get_model("jobs", "Job").objects.all(),
        apps.get_model("jobs", "JobLog").objects.all(),
        "job_id",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_joblog_history_fields"),
        ("project", "0004_incident"),
    ]

    # Reversing drops the incidents table (project 0004) anyway; nothing to undo here.
    operations = [migrations.RunPython(open_incidents, migrations.RunPython.noop)]
