"""Settings for the bench process and its peer workers: Taskyard's own settings plus the peer
task queues (django-tasks-db) that run the same no-op task on the same database."""

import importlib.util

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, TASKS

HAVE_DJANGO_TASKS_DB = importlib.util.find_spec("django_tasks_db") is not None

if HAVE_DJANGO_TASKS_DB:
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
    TASKS = {**TASKS, "dtdb": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}}
