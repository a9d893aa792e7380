"""Small helpers to create real Job and JobDefinition rows for the job API tests."""

from datetime import UTC, datetime

from jobs.models import Job, JobDefinition


def at(text: str) -> datetime:
    """'2012-07-17 17:05' -> an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_job(id, **fields) -> Job:
    fields.setdefault("handler", "tests.jobs.handlers.succeed")
    return Job.objects.create(id=id, **fields)


def make_definition(id, **fields) -> JobDefinition:
    return JobDefinition.objects.create(id=id, **fields)
