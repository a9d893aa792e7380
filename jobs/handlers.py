"""Which callable a job runs: handler resolution, the allowlist and call arguments.

Anyone who may create a job picks its handler, so the executor (when it runs a job) and the
operator services (when a job is created) refuse the same handlers, through resolve_handler.
"""

import functools

from django.apps import apps
from django.tasks import Task
from django.utils.module_loading import import_string

from jobs import conf
from project.errors import InvalidRequest


def payload_arguments(payload) -> tuple[list, dict]:
    """A job's payload as call arguments.

    {"args": [...], "kwargs": {...}} (what the django.tasks backend writes) is spread; any other
    object is passed as keyword arguments, a list as positional arguments, a scalar as the one
    argument, and null or {} as none.
    """
    if payload is None:
        return [], {}
    if isinstance(payload, dict):
        if payload and set(payload) <= {"args", "kwargs"}:
            args = payload.get("args") or []
            kwargs = payload.get("kwargs") or {}
            return (list(args) if isinstance(args, list) else [args]), dict(kwargs)
        return [], dict(payload)
    if isinstance(payload, list):
        return list(payload), {}
    return [payload], {}


class HandlerNotAllowed(Exception):
    """The job names a callable the executor may not run."""


def _within(module: str, prefixes) -> bool:
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in prefixes if prefix)


def resolve_handler(handler: str):
    """The callable a job's handler path names, if the executor may run it.

    Anyone who can create a job chooses its handler, so a handler is not "any dotted path"
    (that would make `os.system` a job): it must be a django.tasks task defined in an
    installed app, or a callable in a module listed in TASKYARD_EXECUTOR["HANDLER_MODULES"].
    Nothing else is even imported."""
    # Asked several times per job (run, signals); refusals raise and so are never cached.
    return _resolve(handler, tuple(conf.executor_setting("HANDLER_MODULES") or ()))


@functools.lru_cache(maxsize=256)
def _resolve(handler: str, handler_modules: tuple[str, ...]):
    if not handler:
        raise HandlerNotAllowed("The job has no handler")
    module = handler.rpartition(".")[0]
    plain_allowed = _within(module, handler_modules)
    app_modules = [app.name for app in apps.get_app_configs()]
    refusal = (
        f"Handler {handler!r} is not allowed: job handlers are django.tasks tasks of an "
        "installed app, or callables in a module listed in "
        "TASKYARD_EXECUTOR['HANDLER_MODULES']"
    )
    if not plain_allowed and not _within(module, app_modules):
        raise HandlerNotAllowed(refusal)
    target = import_string(handler)
    if isinstance(target, Task):
        return target
    if not plain_allowed:
        raise HandlerNotAllowed(refusal)
    if not callable(target):
        raise HandlerNotAllowed(f"Handler {handler!r} is not callable")
    return target


def check_handler(handler: str | None) -> None:
    """Refuse, when a job is created, a handler the executor would refuse when it first runs."""
    if not handler:
        raise InvalidRequest("Every job needs a handler (the dotted path of a callable)")
    try:
        resolve_handler(handler)
    except Exception as error:  # refused, missing module or attribute: all a bad handler
        raise InvalidRequest(f"Invalid handler '{handler}': {error}") from None
