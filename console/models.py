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
