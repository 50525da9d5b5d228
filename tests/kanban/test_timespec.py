"""Time specifications (kanban/timespec.py): plain words and cron for --every, the words a cron
expression is shown in, --in durations and --at times in a zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kanban.errors import InvalidInput
from kanban.timespec import (
    describe,
    due_between,
    local_text,
    next_after,
    parse_at,
    parse_duration,
    parse_every,
    zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 7, 23, 0, tzinfo=BERLIN).timestamp()  # a Monday night


@pytest.mark.parametrize(("every", "cron", "words"), [
    ("hourly", "0 * * * *", "hourly"),
    ("every 15 minutes", "*/15 * * * *", "every 15 minutes"),
    ("every 2 hours", "0 */2 * * *", "every 2 hours"),
    ("every minute", "* * * * *", "every minute"),
    ("daily 09:00", "0 9 * * *", "daily 09:00"),
    ("Daily  9:05", "5 9 * * *", "daily 09:05"),
    ("weekdays 09:00", "0 9 * * MON-FRI", "weekdays 09:00"),
    ("weekends 10:30", "30 10 * * SAT,SUN", "weekends 10:30"),
    ("mondays 09:00", "0 9 * * MON", "Mondays 09:00"),
    ("weekly friday 17:30", "30 17 * * FRI", "Fridays 17:30"),
    ("monthly 1 09:00", "0 9 1 * *", "monthly on day 1 at 09:00"),
    ("@daily", "0 0 * * *", "daily 00:00"),
    ("0 9 * * MON-FRI", "0 9 * * MON-FRI", "weekdays 09:00"),
    ("0 9 * * 1-5", "0 9 * * 1-5", "weekdays 09:00"),
    ("15 14 1 * *", "15 14 1 * *", "monthly on day 1 at 14:15"),
    ("0 9 1 1 *", "0 9 1 1 *", "0 9 1 1 *"),
])
def test_every_takes_plain_words_and_cron(every: str, cron: str, words: str) -> None:
    recurrence = parse_every(every)
    assert recurrence.cron == cron and describe(cron) == words == recurrence.label


@pytest.mark.parametrize(("every", "message"), [
    ("", "needs a schedule"), ("sometimes", "is not a schedule"),
    ("daily 25:00", "not a time of day"), ("every 0 minutes", "1-59 minutes"),
    ("monthly 32 09:00", "1-31"), ("0 0 9 * * *", "five cron fields"),
    ("* * *", "is not a schedule"),
])
def test_bad_recurrences_are_one_line(every: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_every(every)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("2d", 172800), ("1w", 604800),
    ("3 hours", 10800), ("10 mins", 600), ("1.5h", 5400),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2ms", "h", "0m", "-1h", "99999999999h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput, match="--in"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-08T09:00", datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)),
    ("2026-12-08 09:00", datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)),
    ("2026-12-09", datetime(2026, 12, 9, 0, 0, tzinfo=BERLIN)),
    ("09:00", datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)),
    ("23:30", datetime(2026, 12, 7, 23, 30, tzinfo=BERLIN)),
    ("tomorrow 07:15", datetime(2026, 12, 8, 7, 15, tzinfo=BERLIN)),
    ("2026-12-08T09:00Z", datetime(2026, 12, 8, 10, 0, tzinfo=BERLIN)),
])
def test_at_is_read_in_the_zone_unless_it_names_one(text: str, expected: datetime) -> None:
    assert parse_at(text, BERLIN, NOW) == expected.timestamp()


@pytest.mark.parametrize(("text", "message"), [
    ("2026-12-07T22:00", "in the past"), ("today 08:00", "in the past"),
    ("next week", "is not a time"), ("2040-13-01", "is not a time"),
    ("2099-01-01", "ten years"),
])
def test_bad_times(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_at(text, BERLIN, NOW)


def test_zones_next_times_and_catching_up() -> None:
    with pytest.raises(InvalidInput, match="unknown time zone"):
        zone("Mars/Olympus")
    first = next_after("0 9 * * MON-FRI", BERLIN, NOW)
    assert local_text(first, BERLIN, NOW) == "Tue 8 Dec 09:00"
    assert local_text(first, BERLIN, first + 40 * 86400) == "Tue 8 Dec 2026 09:00"
    # Friday 18:00: Tue, Wed, Thu and Fri 09:00 are due; the weekend is not.
    friday = datetime(2026, 12, 11, 18, 0, tzinfo=BERLIN).timestamp()
    due, more = due_between("0 9 * * MON-FRI", BERLIN, first, friday)
    assert [local_text(t, BERLIN, NOW) for t in due] == [
        "Tue 8 Dec 09:00", "Wed 9 Dec 09:00", "Thu 10 Dec 09:00", "Fri 11 Dec 09:00"]
    assert not more
    assert due_between("0 9 * * MON-FRI", BERLIN, first, friday, limit=2) == (due[-2:], True)
    assert due_between("0 9 * * *", BERLIN, first, first - 1) == ([], False)
