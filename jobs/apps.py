from django.apps import AppConfig

from project import metrics


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Models may be imported only once the app registry is ready, hence here.
        from jobs import batches, services
        from jobs.models import STATUSES, Job, JobDefinition, JobLog
        from project import batches as project_batches
        from project import tenancy

        # The batch engine, and the job batch types: project/ never imports jobs/.
        project_batches.use_engine(batches.ENGINE)
        for batch_type in services.batch_types():
            project_batches.register(batch_type)
        # A batch's jobs, job definitions and their log are seen by those who see the batch.
        tenancy.has_batch_rows(Job, "job_definition_id")
        tenancy.has_batch_rows(JobDefinition, "pk")
        tenancy.has_batch_rows(JobLog, "job_definition_id", history=True)

        # The status table's partition: disjoint and covering every job, so the gauge's states
        # are the console's badges and a job of a suspended definition counts as suspended,
        # as the executor treats it.
        metrics.register_backlog(
            "job",
            Job,
            "handler",
            STATUSES.partition,
            metric="taskyard_jobs",
            group_label="handler",
            help=f"Jobs by handler and status ({', '.join(STATUSES.keys)})",
        )
