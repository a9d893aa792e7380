from django.contrib import admin

from external_tasks.models import ExternalTask, ExternalTaskLog


@admin.register(ExternalTask)
class ExternalTaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "topic_name",
        "worker_id",
        "lock_expiration_time",
        "retries",
        "priority",
        "suspended",
        "tenant_id",
        "business_key",
    ]
    list_filter = ["suspended"]
    search_fields = ["id", "topic_name", "business_key", "process_instance_id", "worker_id"]
    show_full_result_count = False


@admin.register(ExternalTaskLog)
class ExternalTaskLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "task_id", "event", "topic_name", "worker_id", "retries"]
    list_filter = ["event"]
    search_fields = ["task_id", "topic_name", "worker_id"]
    show_full_result_count = False
