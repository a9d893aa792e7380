"""An audit entry's before → after as words an operator reads: "retries: 0 → 3 (26 jobs)".

The services record `before` and `after` as small JSON objects (project.audit.record): `after`
holds the new values (and the operator's reason), `before` the old ones, either one value per
key or, for bulk job actions, a histogram {old value: rows} per key."""

import re

from console.resources import RESOURCES

NOUNS = {resource.target_type: (resource.noun, resource.plural) for resource in RESOURCES.values()}
MAX_HISTOGRAM = 5  # old values listed before "…and N more"


def field_words(name: str) -> str:
    """'overridingJobPriority' / 'history_days' -> 'overriding job priority' / 'history days'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name)).replace("_", " ")
    return words.lower()


def value_words(value) -> str:
    if value is None:
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,g}"
    if isinstance(value, str):
        return value if value else "(empty)"
    if isinstance(value, list):
        return ", ".join(value_words(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{field_words(k)} {value_words(v)}" for k, v in value.items())
    return str(value)


def _number_text(text: str) -> str:
    """A histogram key (JSON keys are strings) in words: "3" -> "3", "1000" -> "1,000"."""
    if text == "None":
        return "none"
    try:
        return f"{int(text):,}"
    except ValueError:
        return text


def _rows(n: int, target_type: str) -> str:
    noun, plural = NOUNS.get(target_type, (target_type.replace("_", " "), ""))
    plural = plural or noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"


def _is_histogram(value) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in value.values())
    )


def _histogram_words(value: dict, target_type: str, new: str | None) -> str:
    """{old: rows} as "0 → 3 (20 jobs), 1 → 3 (6 jobs)" (`new` None: "0 (20 jobs), …")."""
    counts = sorted(value.items(), key=lambda item: (-item[1], item[0]))
    arrow = f" → {new}" if new is not None else ""
    parts = [
        f"{_number_text(old)}{arrow} ({_rows(n, target_type)})" for old, n in counts[:MAX_HISTOGRAM]
    ]
    if len(counts) > MAX_HISTOGRAM:
        rest = sum(n for _, n in counts[MAX_HISTOGRAM:])
        parts.append(f"{len(counts) - MAX_HISTOGRAM:,} other values ({_rows(rest, target_type)})")
    return ", ".join(parts)


def changes(before, after, target_type: str = "") -> list[str]:
    """One line per changed field: "retries: 0 → 3 (20 jobs), 1 → 3 (6 jobs)"; a key only in
    `after` reads "suspended → yes", one only in `before` "configuration was abc"."""
    before = before if isinstance(before, dict) else ({} if before is None else {"": before})
    after = after if isinstance(after, dict) else ({} if after is None else {"": after})
    lines = []
    for key, new in after.items():
        if key == "reason":
            continue
        label = field_words(key)
        prefix = f"{label}: " if label else ""
        if key in before and _is_histogram(before[key]):
            lines.append(prefix + _histogram_words(before[key], target_type, value_words(new)))
        elif key in before:
            lines.append(f"{prefix}{value_words(before[key])} → {value_words(new)}")
        else:
            lines.append(f"{label} → {value_words(new)}" if label else value_words(new))
    for key, old in before.items():
        if key not in after:
            label = field_words(key)
            old_words = (
                _histogram_words(old, target_type, None) if _is_histogram(old) else value_words(old)
            )
            lines.append(f"{label} was {old_words}" if label else f"was {old_words}")
    return lines


def reason(after) -> str:
    """The operator's reason recorded with the action ("" if none)."""
    return str(after.get("reason") or "") if isinstance(after, dict) else ""
