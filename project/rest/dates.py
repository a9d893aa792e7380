"""Dates and durations: out as yyyy-MM-dd'T'HH:mm:ss.SSSZ (UTC, "+0000"); in with any common
offset form, as Camunda accepts them; ISO 8601 durations as Flowable and the seed API send them."""

import re
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_duration

from project.errors import InvalidRequest

_DATE_RE = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?))?"
    r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _utc_millis(value: datetime) -> str:
    # Not strftime: it drops the zero padding of years before 1000 on glibc.
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}"
    )


def format_date(value: datetime | None) -> str | None:
    """Camunda's date format, always in UTC: 2013-01-23T12:42:45.000+0000."""
    if value is None:
        return None
    return _utc_millis(value) + "+0000"


def format_date_z(value: datetime | None) -> str | None:
    """ISO 8601 with a Z suffix and milliseconds, as Flowable answers: 2021-05-04T16:35:10.474Z."""
    if value is None:
        return None
    return _utc_millis(value) + "Z"


def parse_date(value, name: str = "date") -> datetime:
    """Parse a date from a request; no offset means UTC. Bad values raise InvalidRequest."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    text = str(value).strip() if value is not None else ""
    match = _DATE_RE.match(text)
    if not match:
        raise InvalidRequest(
            f"Cannot convert value '{value}' of '{name}' to a date: expected "
            "yyyy-MM-dd'T'HH:mm:ss.SSSZ (e.g. 2013-01-23T14:42:45.000+0200)"
        )
    time_part = (match["time"] or "00:00:00").replace(",", ".")
    if len(time_part) == 5:
        time_part += ":00"
    if "." in time_part:
        base, fraction = time_part.split(".")
        time_part = f"{base}.{fraction[:6].ljust(6, '0')}"
    tz = match["tz"] or "+00:00"
    if tz in {"Z", "z"}:
        tz = "+00:00"
    elif len(tz) == 3:
        tz += ":00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    try:
        # Normalised to UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts.
        return datetime.fromisoformat(f"{match['date']}T{time_part}{tz}").astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise InvalidRequest(
            f"Cannot convert value '{value}' of '{name}' to a date: {error}"
        ) from None


def parse_iso_duration(value, name: str = "duration") -> timedelta:
    """ISO 8601 durations such as PT10M or P1DT2H, as Flowable and the seed API send them."""
    text = str(value or "").strip()
    try:
        duration = parse_duration(text) if text.upper().startswith("P") else None
    except OverflowError:
        # Flowable reads a java.time.Duration and sends it on as milliseconds (a Java long).
        raise InvalidRequest(f"'{name}' {value} is out of range for a duration") from None
    if duration is None:
        raise InvalidRequest(
            f"Cannot parse '{value}' of '{name}' as an ISO 8601 duration (e.g. PT10M)"
        )
    return duration


# ---------------------------------------------------------------------------------------------
# Request values: Camunda accepts comma-separated and repeated query keys, true/false flags.
