from django.contrib import admin

from jobs.models import Job, JobDefinition, JobLog


@admin.register(JobDefinition)
class JobDefinitionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "job_type",
        "activity_id",
        "process_definition_key",
        "tenant_id",
        "suspended",
        "overriding_priority",
    ]
    list_filter = ["suspended", "job_type"]
    search_fields = ["id", "activity_id", "process_definition_key", "process_definition_id"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "type",
        "handler",
        "due_date",
        "retries",
        "priority",
        "suspended",
        "tenant_id",
        "lock_owner",
    ]
    list_filter = ["type", "suspended"]
    search_fields = ["id", "process_instance_id", "process_definition_key", "activity_id"]
    raw_id_fields = ["job_definition"]
    show_full_result_count = False


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "job_id", "event", "worker", "retries", "duration_ms"]
    list_filter = ["event"]
    search_fields = ["job_id"]
    show_full_result_count = False
