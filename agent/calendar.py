"""The contract's clock: support periods, holidays, and when a ticket's response is due.

Support time is the days and hours of the contract in its own time zone, holidays excluded.
A normal ticket opened in support time is due ``response_minutes`` of support time later (the
clock stops outside support time); one opened outside is due at the start of the next support
period. An emergency ticket is due ``response_minutes`` later round the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holiday_calendars

from agent.config import WEEKDAYS, Contract

SEARCH_DAYS = 800  # a calendar with no support day for this long is a config mistake


@dataclass(frozen=True)
class SupportCalendar:
    zone: ZoneInfo
    days: frozenset[int]  # Monday is 0
    opens: time
    closes: time
    fixed_holidays: frozenset[date] = frozenset()
    countries: tuple[str, ...] = ()
    _years: dict[int, frozenset[date]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_contract(cls, contract: Contract, zone: ZoneInfo) -> SupportCalendar:
        opens, closes = contract.hours
        fixed = frozenset(date.fromisoformat(h) for h in contract.holidays if len(h) == 10)
        countries = tuple(h for h in contract.holidays if len(h) == 2)
        days = frozenset(WEEKDAYS.index(d) for d in contract.support_days)
        return cls(zone, days, opens, closes, fixed, countries)

    def is_holiday(self, day: date) -> bool:
        return day in self.fixed_holidays or day in self._country_holidays(day.year)

    def _country_holidays(self, year: int) -> frozenset[date]:
        if year not in self._years:
            found: set[date] = set()
            for country in self.countries:
                found.update(holiday_calendars.country_holidays(country, years=year).keys())
            self._years[year] = frozenset(found)
        return self._years[year]

    def is_support_day(self, day: date) -> bool:
        return day.weekday() in self.days and not self.is_holiday(day)

    def period(self, day: date) -> tuple[datetime, datetime]:
        return (datetime.combine(day, self.opens, self.zone), datetime.combine(day, self.closes, self.zone))

    def in_support(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        if not self.is_support_day(local.date()):
            return False
        start, end = self.period(local.date())
        return start <= local < end

    def next_support_start(self, moment: datetime) -> datetime:
        """The start of the first support period at or after ``moment`` (``moment`` itself inside one)."""
        local = moment.astimezone(self.zone)
        if self.in_support(local):
            return local
        for offset in range(SEARCH_DAYS):
            day = local.date() + timedelta(days=offset)
            start, _ = self.period(day)
            if self.is_support_day(day) and start >= local:
                return start
        raise ValueError("no support day in the calendar")

    def add_support_minutes(self, moment: datetime, minutes: int) -> datetime:
        """``minutes`` of support time after ``moment``; time outside support does not count."""
        remaining = timedelta(minutes=minutes)
        current = self.next_support_start(moment)
        while True:
            _, end = self.period(current.date())
            available = end.astimezone(UTC) - current.astimezone(UTC)
            if remaining <= available:
                return (current.astimezone(UTC) + remaining).astimezone(self.zone)
            remaining -= available
            current = self.next_support_start(end)

    def support_minutes_between(self, start: datetime, end: datetime) -> float:
        """Minutes of support time from ``start`` to ``end`` (0 when ``end`` is not later)."""
        total = timedelta()
        current = start.astimezone(self.zone)
        end = end.astimezone(self.zone)
        while current < end:
            current = self.next_support_start(current)
            if current >= end:
                break
            _, closes = self.period(current.date())
            stop = min(closes, end)
            total += stop.astimezone(UTC) - current.astimezone(UTC)
            current = closes
        return total.total_seconds() / 60

    def response_due(self, opened_at: datetime, minutes: int, *, emergency: bool = False) -> datetime:
        if emergency:  # elapsed time: aware-datetime arithmetic in one zone is wall-clock, off by a DST shift
            return (opened_at.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(self.zone)
        if self.in_support(opened_at):
            return self.add_support_minutes(opened_at, minutes)
        return self.next_support_start(opened_at)
