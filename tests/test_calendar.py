from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.calendar import SupportCalendar
from agent.config import Contract

TEHRAN = ZoneInfo("Asia/Tehran")
BERLIN = ZoneInfo("Europe/Berlin")


def contract(**changes: object) -> Contract:
    base: dict[str, object] = {"support_start": date(2026, 3, 1), "support_until": date(2027, 2, 28)}
    return Contract.model_validate(base | changes)


def at(text: str, zone: ZoneInfo = TEHRAN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


TEHRAN_CAL = SupportCalendar.for_contract(contract(holidays=["2026-12-02"]), TEHRAN)

# (opened, severity, expected due), all in Tehran time. 2026-11-28 is a Saturday.
CASES = [
    ("2026-11-28 09:00", "normal", "2026-11-28 10:00"),     # in hours: 60 support minutes
    ("2026-11-28 08:00", "normal", "2026-11-28 09:00"),     # at opening
    ("2026-11-28 16:00", "normal", "2026-11-29 08:30"),     # 30 min today, 30 tomorrow (Sunday)
    ("2026-11-28 16:30", "normal", "2026-11-29 08:00"),     # closing time is outside: next start
    ("2026-11-28 07:59", "normal", "2026-11-28 08:00"),     # before opening: the start of today's period
    ("2026-11-28 20:00", "normal", "2026-11-29 08:00"),     # evening: next morning
    ("2026-11-25 16:10", "normal", "2026-11-28 08:40"),     # Wednesday late: Thu and Fri are not support days
    ("2026-11-26 11:00", "normal", "2026-11-28 08:00"),     # Thursday: at the next support period
    ("2026-11-27 03:00", "normal", "2026-11-28 08:00"),     # Friday night
    ("2026-12-01 16:00", "normal", "2026-12-05 08:30"),     # Tue late; Wed is a holiday, Thu/Fri off
    ("2026-12-02 10:00", "normal", "2026-12-05 08:00"),     # opened on the holiday
    ("2026-11-27 03:00", "emergency", "2026-11-27 04:00"),  # emergencies: round the clock
    ("2026-11-28 16:00", "emergency", "2026-11-28 17:00"),
]


@pytest.mark.parametrize(("opened", "severity", "due"), CASES)
def test_tehran_response_due(opened: str, severity: str, due: str) -> None:
    result = TEHRAN_CAL.response_due(at(opened), 60, emergency=severity == "emergency")
    assert result == at(due)
    assert result.utcoffset() == at(due).utcoffset()


def test_official_calendar_of_iran() -> None:
    cal = SupportCalendar.for_contract(contract(holidays=["IR"]), TEHRAN)
    assert cal.is_holiday(date(2027, 3, 21))  # Nowruz
    assert cal.is_holiday(date(2027, 2, 10)) or cal.is_holiday(date(2027, 2, 11))  # Revolution Day
    # Nowruz week: Saturday 2027-03-20 is a support day in the week, but holidays push the due date
    due = cal.response_due(at("2027-03-20 20:00"), 60)
    assert due.date() > date(2027, 3, 24) and not cal.is_holiday(due.date())


def test_long_response_spans_several_days() -> None:
    due = TEHRAN_CAL.response_due(at("2026-11-28 12:00"), 8 * 60 + 30)
    assert due == at("2026-11-29 12:00")  # 4h30 on Saturday, 4h on Sunday


BERLIN_CAL = SupportCalendar.for_contract(
    contract(support_days=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], support_hours="00:30-23:30"), BERLIN)

DST_CASES = [
    # 2026-03-29: clocks go 02:00 -> 03:00 (UTC+1 -> UTC+2); two hours of support time are two real hours
    ("2026-03-29 01:00", 120, "2026-03-29 02:00"),
    # 2026-10-25: clocks go 03:00 -> 02:00 (UTC+2 -> UTC+1); 02:00 comes twice, the due time is the second
    ("2026-10-25 01:00", 120, "2026-10-25 01:00"),
    ("2026-10-24 23:00", 60, "2026-10-24 23:00"),  # 30 min before closing, 30 after 00:30 CEST: 01:00 CEST
]


@pytest.mark.parametrize(("opened", "minutes", "due_utc"), DST_CASES)
def test_dst_zone(opened: str, minutes: int, due_utc: str) -> None:
    result = BERLIN_CAL.response_due(at(opened, BERLIN), minutes)
    assert result.astimezone(UTC) == at(due_utc, UTC)
    assert result.tzinfo == BERLIN


@pytest.mark.parametrize("opened", ["2026-03-29 01:30", "2026-10-25 02:30"])
def test_emergency_due_is_elapsed_time_across_a_dst_change(opened: str) -> None:
    """Berlin springs forward on 2026-03-29 and falls back on 2026-10-25: an hour is still an hour."""
    calendar = SupportCalendar.for_contract(contract(), BERLIN)
    start = at(opened, BERLIN)
    due = calendar.response_due(start, 60, emergency=True)
    assert (due.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 3600
    assert due.utcoffset() != start.utcoffset()  # the wall clock jumped in between
