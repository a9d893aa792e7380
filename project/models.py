from django.conf import settings
from django.db import models


class Membership(models.Model):
    """A user belongs to a tenant: they see and act on that tenant's rows."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant_id"], name="membership_unique")
        ]
        ordering = ["user_id", "tenant_id"]

    def __str__(self):
        return f"{self.user} in {self.tenant_id}"


class AuditEntry(models.Model):
    """One operator action: who, when, what, which ids or filter, how many rows, before/after."""

    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=64)  # e.g. "job.set_retries"
    target_type = models.CharField(max_length=32)  # "job", "job_definition", "external_task"
    # The ids touched (capped for huge bulk actions; `count` is always exact).
    target_ids = models.JSONField(default=list)
    # The filter a bulk action ran on (query parameters), when it ran on a filter.
    filter = models.JSONField(null=True, blank=True)
    count = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=16, default="console")  # console / api / command

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["target_type", "-timestamp"], name="audit_target_idx")]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username} {self.action} ({self.count})"
