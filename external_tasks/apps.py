from django.apps import AppConfig

from project import metrics


class ExternalTasksConfig(AppConfig):
    name = "external_tasks"
    verbose_name = "External tasks"

    def ready(self):
        # Models may be imported only once the app registry is ready, hence here.
        from external_tasks import services
        from external_tasks.models import STATUSES, ExternalTask
        from project import batches

        for batch_type in services.batch_types():
            batches.register(batch_type)

        # The status table's partition: disjoint and covering every task, so the gauge's states
        # are the console's badges.
        metrics.register_backlog(
            "external_task",
            ExternalTask,
            "topic_name",
            STATUSES.partition,
            metric="taskyard_external_tasks",
            group_label="topic",
            help=f"External tasks by topic and status ({', '.join(STATUSES.keys)})",
        )
