from django.shortcuts import render

from external_tasks.models import ExternalTask
from jobs.models import Job
from project import tenancy


def overview(request):
    jobs = tenancy.scope(Job.objects.all(), request.user)
    tasks = tenancy.scope(ExternalTask.objects.all(), request.user)
    context = {
        "failed_jobs": jobs.filter(retries=0).count(),
        "failed_tasks": tasks.filter(retries=0).count(),
    }
    return render(request, "overview.html", context)
