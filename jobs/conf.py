"""The job executor's settings: settings.TASKYARD_EXECUTOR over EXECUTOR_DEFAULTS.

The lowest module of the executor: handlers, claims, the runner, the process loop and the
`runjobs` command all read their settings through it.
"""

import math
import socket
from datetime import timedelta

from django.conf import settings
from django.utils.dateparse import parse_duration

EXECUTOR_DEFAULTS = {
    "RETRY_CYCLE": "R3/PT5M",
    "BACKOFF_FACTOR": 2.0,
    "MAX_RETRY_DELAY": "PT1H",
    "LOCK_TIME": "PT5M",
    "POLL_INTERVAL": 1.0,
    "TIMEOUT": None,
    "HANDLER_MODULES": [],
    # Jobs each executor process claims per statement (see acquire_jobs and executor.Executor).
    "PREFETCH": 10,
    # The name the job log records as the host that wrote an entry (Camunda's engine
    # `hostname`); None: the machine's host name.
    "HOSTNAME": None,
}


def executor_setting(name: str):
    """One value of settings.TASKYARD_EXECUTOR, falling back to EXECUTOR_DEFAULTS."""
    return getattr(settings, "TASKYARD_EXECUTOR", {}).get(name, EXECUTOR_DEFAULTS[name])


def hostname() -> str:
    """This process's host name as the job log records it (the HOSTNAME setting, else the
    machine's)."""
    return executor_setting("HOSTNAME") or socket.gethostname()


MAX_SECONDS = 10 * 366 * 24 * 3600


def parse_seconds(value, name: str) -> float | None:
    """Seconds from a number, a numeric string or an ISO 8601 duration; None/0 = no value."""
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            duration = parse_duration(text) if text.upper().startswith("P") else None
            if duration is None:
                raise ValueError(
                    f"{name}: '{value}' is neither seconds nor a duration like PT5M"
                ) from None
            seconds = duration.total_seconds()
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise ValueError(f"{name}: '{value}' must be between 0 and {MAX_SECONDS} seconds")
    return seconds or None
