"""django.tasks tasks defined outside any installed app (and outside HANDLER_MODULES): the
backend must refuse to enqueue them, and a job naming one can never run."""

from django.tasks import task

RUNS = []


@task
def stray(*args):
    RUNS.append(args)
    return "ran"
