"""What the console remembers per user: the columns each table shows."""

from django.conf import settings
from django.db import models


class ColumnChoice(models.Model):
    """The columns one user chose for one kind's table (console.resources: Resource.key).

    Only a preference: an explicit `columns=` in the URL overrides it, so a shared link shows
    the sender's columns. Column keys that no longer exist are dropped when it is read."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    columns = models.JSONField(default=list)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="column_choice_user_kind")
        ]

    def __str__(self):
        return f"{self.user_id} {self.kind}: {', '.join(self.columns)}"


class Snapshot(models.Model):
    """One console page's aggregate figures for one tenant scope, as of `computed_at`
    (console.snapshots). In the database, so every server process and every user of the scope
    reads the same figures: the first view costs what a later one does."""

    name = models.CharField(max_length=64)
    # "*" (every tenant) or a digest of the sorted tenant ids; `tenants` holds them.
    scope = models.CharField(max_length=64)
    tenants = models.JSONField(null=True)
    data = models.BinaryField()
    computed_at = models.DateTimeField()
    # How long computing it took, in seconds (what a view without the snapshot would cost).
    seconds = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "scope"], name="console_snapshot_name_scope")
        ]

    def __str__(self):
        return f"{self.name} {self.scope} at {self.computed_at:%H:%M:%S}"
