"""Delete history past its retention, in small batches, so it can run beside busy workers.

What goes:
* JobLog / ExternalTaskLog entries older than TASKYARD_HISTORY_RETENTION_DAYS whose job or task
  is no longer in the runtime table (finished: succeeded, completed, deleted). The history of
  work that is still there (an open incident, a job still retrying) stays whatever its age, so
  every row the console shows keeps its attempt history.
* Audit entries older than TASKYARD_AUDIT_RETENTION_DAYS (kept longer by default: they are the
  record of who changed what).

Each batch is one short DELETE in its own transaction; the rows it touches are old history no
worker or console action writes to, so nothing waits on it for long.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from external_tasks.models import ExternalTask, ExternalTaskLog
from jobs.models import Job, JobLog
from project import audit
from project.models import AuditEntry

NEVER = "never"


def parse_days(value, name: str) -> int | None:
    """A retention in whole days (>= 1), or None for keep forever ("never" or empty)."""
    if value is None or str(value).strip().lower() in ("", NEVER):
        return None
    try:
        days = int(str(value).strip())
    except ValueError:
        raise CommandError(
            f"{name} must be a whole number of days or 'never', not {value!r}."
        ) from None
    if days < 1:
        raise CommandError(f"{name} must be at least 1 day (use 'never' to keep forever).")
    return days


class Command(BaseCommand):
    help = "Delete worker history and audit entries older than the retention, in batches."

    def add_arguments(self, parser):
        parser.add_argument(
            "--history-days",
            default=settings.TASKYARD_HISTORY_RETENTION_DAYS,
            help="Keep job/external task history this many days, or 'never' to keep it all "
            "(default: TASKYARD_HISTORY_RETENTION_DAYS = %(default)s).",
        )
        parser.add_argument(
            "--audit-days",
            default=settings.TASKYARD_AUDIT_RETENTION_DAYS,
            help="Keep audit entries this many days, or 'never' "
            "(default: TASKYARD_AUDIT_RETENTION_DAYS = %(default)s).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.TASKYARD_PRUNE_BATCH_SIZE,
            help="Rows per DELETE statement (default %(default)s).",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="Seconds to sleep between batches, to leave the database more room.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args, history_days, audit_days, batch_size, pause, dry_run, **options):
        self.verbosity = options["verbosity"]
        history_days = parse_days(history_days, "--history-days")
        audit_days = parse_days(audit_days, "--audit-days")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if pause < 0:
            raise CommandError("--pause must not be negative.")
        if history_days and audit_days and audit_days < history_days:
            self.stderr.write(
                "Note: the audit trail is kept shorter than the worker history "
                f"({audit_days} < {history_days} days)."
            )

        now = timezone.now()
        targets = []
        if history_days is not None:
            cutoff = now - timedelta(days=history_days)
            targets += [
                (
                    "job log entries",
                    JobLog.objects.filter(timestamp__lt=cutoff).exclude(
                        Exists(Job.objects.filter(id=OuterRef("job_id")))
                    ),
                    history_days,
                ),
                (
                    "external task log entries",
                    ExternalTaskLog.objects.filter(timestamp__lt=cutoff).exclude(
                        Exists(ExternalTask.objects.filter(id=OuterRef("task_id")))
                    ),
                    history_days,
                ),
            ]
        if audit_days is not None:
            cutoff = now - timedelta(days=audit_days)
            targets.append(
                ("audit entries", AuditEntry.objects.filter(timestamp__lt=cutoff), audit_days)
            )
        if not targets:
            self.stdout.write("Nothing to prune: every retention is 'never'.")
            return

        removed = {}
        for label, queryset, days in targets:
            if dry_run:
                count = queryset.count()
            else:
                count = self._delete_in_batches(label, queryset, batch_size, pause)
            removed[label] = count
            verb = "Would delete" if dry_run else "Deleted"
            self.stdout.write(f"{verb} {count:,} {label} older than {days} days.")

        if not dry_run and any(removed.values()):
            audit.record(
                None,
                "history.prune",
                "history",
                count=sum(removed.values()),
                after={label.replace(" ", "_"): count for label, count in removed.items()},
                filter={"history_days": history_days, "audit_days": audit_days},
                source="command",
            )

    def _delete_in_batches(self, label, queryset, batch_size, pause) -> int:
        total = 0
        while True:
            ids = list(queryset.order_by().values_list("id", flat=True)[:batch_size])
            if not ids:
                return total
            # The conditions are applied again at delete time, so a row that stopped qualifying
            # since the SELECT (a task re-created under the same id) is left alone.
            deleted, _ = queryset.filter(id__in=ids).delete()
            total += deleted
            if self.verbosity >= 2:
                self.stdout.write(f"  {label}: {total:,} so far")
            if len(ids) < batch_size:
                return total
            if pause:
                time.sleep(pause)
