"""Every state transition of external tasks lives here.

The Camunda REST face, the Flowable face, the seed API, the console and management commands
call these functions; nothing else writes to ExternalTask or ExternalTaskLog. Each function is
one short transaction; claims are one statement; bulk variants are set-based and return counts.
"""

from django.db import transaction  # noqa: F401
from django.utils import timezone  # noqa: F401

from external_tasks.models import ExternalTask, ExternalTaskLog  # noqa: F401
