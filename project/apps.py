from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Taskyard: users, tenants and audit"

    def ready(self):
        from project import schema  # noqa: F401  (registers the OpenAPI auth extensions)
