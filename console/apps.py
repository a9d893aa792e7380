from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Operator console"

    def ready(self):
        # The pages register the figures console.snapshots refreshes in the background; the
        # job executor runs that refresh without loading the URLs that would import them.
        from console import failures, overview, queues  # noqa: F401
