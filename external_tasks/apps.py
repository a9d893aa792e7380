from django.apps import AppConfig


class ExternalTasksConfig(AppConfig):
    name = "external_tasks"
    verbose_name = "External tasks"
