"""FHIR date and dateTime values as timezone-aware datetimes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_datetime(value: object) -> datetime | None:
    """A FHIR `date`/`dateTime`/`instant` as an aware datetime; None when absent or malformed.

    Partial dates (`2024`, `2024-05`) take their first day: a result is then judged older,
    never fresher, than it may be. A dateTime without an offset is read as UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    match = _PARTIAL.match(value)
    try:
        if match:
            year, month, day = match.groups()
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age_in_years(birth: date, on: date) -> int:
    """Completed years between a birth date and a day."""
    years = on.year - birth.year
    if (on.month, on.day) < (birth.month, birth.day):
        years -= 1
    return years
