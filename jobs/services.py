"""Every state transition of jobs and job definitions lives here.

The Camunda REST face, the console, the job executor and management commands call these
functions; nothing else writes to Job, JobDefinition or JobLog. Each function is one short
transaction; bulk variants are set-based (one UPDATE per batch) and return row counts.
"""

from django.db import transaction  # noqa: F401
from django.utils import timezone  # noqa: F401

from jobs.models import Job, JobDefinition, JobLog  # noqa: F401

# =============================================================================================
# Creating, querying helpers and operator transitions
# (set_retries, suspend/activate, set_priority, set_due_date, unlock, delete, job definitions)
# =============================================================================================


# =============================================================================================
# The executor: acquire (claim), execute, succeed, fail with back-off, expired locks
# =============================================================================================
