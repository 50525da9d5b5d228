"""When things happen: one-off times (``--at``, ``--in``), recurrences (``--every``) and time
zones. Pure functions; nothing here reads a clock (callers pass "now"), the environment or the
database.

A recurrence is a five-field cron expression (minute hour day-of-month month day-of-week,
evaluated by croniter) or one of a few plain words that stand for one::

    hourly                      0 * * * *
    every 15 minutes            */15 * * * *
    every 2 hours               0 */2 * * *
    daily 09:00                 0 9 * * *
    weekdays 09:00              0 9 * * MON-FRI
    weekends 10:30              30 10 * * SAT,SUN
    mondays 09:00               0 9 * * MON        (also "weekly monday 09:00")
    monthly 1 09:00             0 9 1 * *

Occurrence times are computed in the schedule's time zone, so "daily 09:00" stays at nine
o'clock across daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kanban.errors import InvalidInput

CATCH_UP_POLICIES: tuple[str, ...] = ("none", "last", "all")
# An occurrence found this late or later was missed (the gateway was down, or paused), not
# merely picked up by a busy loop: `--catch-up none` skips it.
ON_TIME_SECONDS = 60.0
# `--catch-up all` creates at most this many missed occurrences of one schedule at once.
MAX_CATCH_UP = 100
MAX_AHEAD_SECONDS = 10 * 366 * 86400.0  # ten years: longer is a typo, not a plan

_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_CRON_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hr": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
EVERY_HINT = ("try 'daily 09:00', 'weekdays 09:00', 'hourly', 'every 15 minutes' or a cron "
              "expression such as '0 9 * * MON-FRI'")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as "
                           "'Europe/Berlin' or 'UTC')") from None


def parse_duration(text: str) -> float:
    """``2h``, ``90m``, ``1h30m``, ``45s``, ``2d``, ``1w``, ``3 hours`` → seconds (> 0)."""
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    compact = cleaned.replace(" ", "")
    if not compact:
        raise InvalidInput("--in needs a duration such as 2h, 30m or 1h30m")
    for match in _DURATION.finditer(compact):
        if match.start() != pos:
            break
        word = match.group(2)  # "h", "hour", "hours", "mins", …
        unit = word if word in _UNITS else word[:-1] if word.endswith("s") else word
        if unit not in _UNITS or word == "ms":
            break
        total += float(match.group(1)) * _UNITS[unit]
        pos = match.end()
    if pos != len(compact) or pos == 0:
        raise InvalidInput(f"--in {text.strip()[:40]!r} is not a duration (try 2h, 30m, 1h30m, "
                           "45s or 2d)")
    if total <= 0:
        raise InvalidInput("--in must be longer than zero")
    if total > MAX_AHEAD_SECONDS:
        raise InvalidInput("--in is more than ten years ahead")
    return total


def parse_at(text: str, tz: ZoneInfo, now: float) -> float:
    """A one-off time in ``tz`` unless it names its own offset, as epoch seconds; it must lie
    in the future. ``2026-12-08T09:00``, ``2026-12-08 09:00``, ``2026-12-08`` (midnight),
    ``09:00`` (the next nine o'clock), ``tomorrow 09:00``, ``2026-12-08T09:00+01:00``."""
    raw = text.strip()
    words = raw.lower().split()
    local_now = datetime.fromtimestamp(now, tz)
    when: datetime | None = None
    if words and words[0] in ("today", "tomorrow") and len(words) <= 2:
        hour, minute = _clock(words[1]) if len(words) == 2 else (0, 0)
        day = local_now.date() + timedelta(days=1 if words[0] == "tomorrow" else 0)
        when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    elif _CLOCK.match(raw):
        hour, minute = _clock(raw)
        when = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if when.timestamp() <= now:
            when = _same_wall_time(when + timedelta(days=1), tz)
    else:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"--at {raw[:40]!r} is not a time (try 2026-12-08T09:00, "
                               "'tomorrow 09:00' or 09:00)") from None
        when = parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed
    stamp = when.timestamp()
    if stamp <= now:
        raise InvalidInput(f"--at {raw[:40]} is in the past (it is now "
                           f"{local_now:%Y-%m-%d %H:%M} {tz.key})")
    if stamp - now > MAX_AHEAD_SECONDS:
        raise InvalidInput("--at is more than ten years ahead")
    return stamp


def _same_wall_time(value: datetime, tz: ZoneInfo) -> datetime:
    return datetime(value.year, value.month, value.day, value.hour, value.minute, tzinfo=tz)


def _clock(text: str) -> tuple[int, int]:
    match = _CLOCK.match(text)
    if match is None:
        raise InvalidInput(f"{text[:20]!r} is not a time of day (use HH:MM, e.g. 09:00)")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class Recurrence:
    """``every`` as the user wrote it, the cron expression it stands for, and its words."""

    every: str
    cron: str

    @property
    def label(self) -> str:
        return describe(self.cron)


def parse_every(text: str) -> Recurrence:
    """A recurrence (plain words or a five-field cron expression), checked."""
    raw = " ".join(text.split())
    if not raw:
        raise InvalidInput(f"--every needs a schedule: {EVERY_HINT}")
    cron = _words(raw.lower())
    if cron is None:
        from croniter import croniter  # recurring schedules only: `create` never loads it

        fields = raw.split()
        if raw.startswith("@"):
            aliases = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                       "@weekly": "0 0 * * SUN", "@monthly": "0 0 1 * *",
                       "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
            cron = aliases.get(raw.lower())
        elif len(fields) == 5 and croniter.is_valid(raw):
            cron = raw.upper()
        elif len(fields) == 6 and croniter.is_valid(raw):
            raise InvalidInput("--every takes five cron fields (minute hour day month "
                               "weekday); seconds are not supported")
    if cron is None:
        raise InvalidInput(f"--every {raw[:60]!r} is not a schedule: {EVERY_HINT}")
    return Recurrence(raw, cron)


def _words(text: str) -> str | None:
    """The cron expression a plain-words schedule stands for, or None."""
    words = text.split()
    head, rest = words[0], words[1:]
    if text in ("hourly", "every hour"):
        return "0 * * * *"
    if text == "every minute":
        return "* * * * *"
    if head == "every" and len(rest) == 2 and rest[0].isdigit():
        n, unit = int(rest[0]), rest[1].rstrip("s")
        if unit in ("minute", "min") and 1 <= n <= 59:
            return f"*/{n} * * * *"
        if unit in ("hour", "hr") and 1 <= n <= 23:
            return f"0 */{n} * * *"
        if unit in ("minute", "min", "hour", "hr"):
            raise InvalidInput(f"--every {text!r}: use 1-59 minutes or 1-23 hours")
        return None
    days = {"daily": "*", "weekdays": "MON-FRI", "weekends": "SAT,SUN", "weekly": None,
            "monthly": None}
    for index, name in enumerate(_DAYS):
        days[name] = days[name + "s"] = _CRON_DAYS[index]
    if head not in days:
        return None
    dom = "*"
    dow = days[head]
    if head == "weekly":
        dow = "MON"
        if rest and rest[0].rstrip("s") in _DAYS:
            dow = _CRON_DAYS[_DAYS.index(rest[0].rstrip("s"))]
            rest = rest[1:]
    elif head == "monthly":
        dow, dom = "*", "1"
        if rest and rest[0].isdigit():
            if not 1 <= int(rest[0]) <= 31:
                raise InvalidInput("--every monthly: the day must be 1-31")
            dom, rest = str(int(rest[0])), rest[1:]
    if len(rest) > 1:
        return None
    hour, minute = _clock(rest[0]) if rest else (0, 0)
    return f"{minute} {hour} {dom} * {dow}"


def describe(cron: str) -> str:
    """A cron expression in words where it has a plain form (``weekdays 09:00``), else as
    it is."""
    fields = cron.split()
    if len(fields) != 5:
        return cron
    minute, hour, dom, month, dow = fields
    if fields == ["*"] * 5:
        return "every minute"
    if month != "*":
        return cron
    if minute.startswith("*/") and hour == dom == dow == "*" and minute[2:].isdigit():
        return f"every {int(minute[2:])} minutes"
    if minute == "0" and hour.startswith("*/") and dom == dow == "*" and hour[2:].isdigit():
        return f"every {int(hour[2:])} hours"
    if not minute.isdigit():
        return cron
    if hour == "*" and dom == dow == "*":
        return "hourly" if int(minute) == 0 else f"hourly at :{int(minute):02d}"
    if not hour.isdigit():
        return cron
    at = f"{int(hour):02d}:{int(minute):02d}"
    if dom == "*":
        named = {"*": "daily", "MON-FRI": "weekdays", "1-5": "weekdays", "SAT,SUN": "weekends",
                 "SUN,SAT": "weekends", "0,6": "weekends", "6,0": "weekends"}
        if dow in named:
            return f"{named[dow]} {at}"
        if dow in _CRON_DAYS:
            return f"{_DAYS[_CRON_DAYS.index(dow)].capitalize()}s {at}"
        if dow.isdigit() and int(dow) <= 7:
            return f"{_DAYS[int(dow) % 7].capitalize()}s {at}"
        return cron
    if dom.isdigit() and dow == "*":
        return f"monthly on day {int(dom)} at {at}"
    return cron


def next_after(cron: str, tz: ZoneInfo, after: float) -> float:
    """The first occurrence strictly after ``after`` (epoch seconds)."""
    from croniter import croniter

    start = datetime.fromtimestamp(after, tz)
    return float(croniter(cron, start).get_next(float))


def due_between(cron: str, tz: ZoneInfo, first: float, now: float,
                limit: int = MAX_CATCH_UP) -> tuple[list[float], bool]:
    """Occurrences from ``first`` (an occurrence itself) up to ``now``, oldest first: the
    latest ``limit`` of them, and whether older ones were left out. Walks back from ``now``,
    so a schedule that was down for a year costs ``limit`` steps, not a year's worth."""
    if first > now:
        return [], False
    from croniter import croniter

    found: list[float] = []
    walker = croniter(cron, datetime.fromtimestamp(now + 0.001, tz))
    while len(found) < limit:
        stamp = float(walker.get_prev(float))
        if stamp < first - 0.001:
            return sorted(found), False
        found.append(stamp)
    more = float(walker.get_prev(float)) >= first - 0.001
    return sorted(found), more


def local_text(stamp: float, tz: ZoneInfo, now: float | None = None) -> str:
    """``Mon 8 Dec 09:00`` in ``tz`` (with the year when it is not the year of ``now``)."""
    value = datetime.fromtimestamp(stamp, tz)
    this_year = value.year if now is None else datetime.fromtimestamp(now, tz).year
    year = "" if value.year == this_year else f" {value.year}"
    return f"{value:%a} {value.day} {value:%b}{year} {value:%H:%M}"
