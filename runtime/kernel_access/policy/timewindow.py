"""Time windows: days of the week and a wall-clock range in one IANA time zone.

Windows compare the *local wall-clock time* in the rule's zone, computed from an aware datetime
with :mod:`zoneinfo`, so "07:00-19:00 Europe/London" means 07:00-19:00 on London clocks in
winter (UTC+0) and in summer (UTC+1), and DST changes need no special case. A wall-clock time
skipped by a spring-forward change simply never occurs; one repeated by a fall-back change
matches both times it occurs.

Across midnight (``end`` earlier than ``start``, e.g. 22:00-06:00): the early-morning part belongs
to the day the window *started*. "fri 22:00-06:00" therefore covers Friday 22:00 to Saturday
06:00, and Monday 03:00 is inside it only if Sunday is one of the days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: ``HH:MM`` on a 24-hour clock (the range is checked by :func:`parse_hhmm`).
HHMM_RE: Final = re.compile(r"^[0-9]{2}:[0-9]{2}$", re.ASCII)


@dataclass(frozen=True)
class TimeWindow:
    #: Days (0 = Monday ... 6 = Sunday, as :meth:`datetime.weekday`) on which the window starts.
    days: frozenset[int]
    #: Inclusive start, as minutes after local midnight (0-1439).
    start_minute: int
    #: Exclusive end, as minutes after local midnight (1-1440; 1440 = "24:00", end of the day).
    end_minute: int
    timezone: ZoneInfo

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute < self.start_minute

    def contains(self, at: datetime) -> bool:
        """Whether the aware instant ``at`` falls inside the window."""
        if at.tzinfo is None or at.utcoffset() is None:
            return False  # never guess a zone: a naive time is outside every window
        local = at.astimezone(self.timezone)
        minute = local.hour * 60 + local.minute
        if not self.crosses_midnight:
            return local.weekday() in self.days and self.start_minute <= minute < self.end_minute
        if minute >= self.start_minute:
            return local.weekday() in self.days
        if minute < self.end_minute:
            started = local.date() - timedelta(days=1)
            return started.weekday() in self.days
        return False

    def describe(self) -> str:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return (
            f"{days} {format_minute(self.start_minute)}-{format_minute(self.end_minute)} {self.timezone.key}"
        )


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_hhmm(value: str, *, allow_24: bool) -> int:
    """``"HH:MM"`` → minutes after midnight; ``"24:00"`` only when ``allow_24`` (window ends)."""
    if not HHMM_RE.fullmatch(value):
        raise ValueError(f"must be HH:MM (24-hour clock), got {value!r}")
    hours, minutes = value[:2], value[3:]
    if allow_24 and value == "24:00":
        return 1440
    parsed = time(int(hours), int(minutes)) if int(hours) < 24 and int(minutes) < 60 else None
    if parsed is None:
        raise ValueError(f"must be HH:MM between 00:00 and {'24:00' if allow_24 else '23:59'}, got {value!r}")
    return parsed.hour * 60 + parsed.minute
