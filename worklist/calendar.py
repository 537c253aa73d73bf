"""Deadlines in business time: working hours, working days, holidays, a timezone. Pure: no I/O.

A deadline of N days means N *working days' worth of working hours* after the task is raised,
counted only inside working hours on working days. With 09:00-18:00, Monday to Friday:

- raised Wednesday 10:00 with 1 day  -> due Thursday 10:00;
- raised Friday 17:00 with 1 day     -> 1 h on Friday + 8 h on Monday -> due Monday 17:00;
- raised Saturday 11:00 with 0.5 day -> counting starts Monday 09:00 -> due Monday 13:30.

Holidays are days off even on a weekday; ``extra_workdays`` are weekend days that are worked
(China's adjusted working days, 调休). kamflow.config builds them from the ``holidays`` package
and the operator's own days in ``conf/calendar.yaml``. ``arranged_years`` are the years whose
days off and make-up days are known; `BusinessCalendar.data_gap` says when the coming weeks run
past them (the run warns; such days count weekends and the statutory holidays only).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from kamflow.core import vocabulary

__all__ = ["HOLIDAY_HORIZON_DAYS", "WEEKDAYS", "BusinessCalendar", "CalendarGap",
           "PublicDays", "add_business_time", "format_local", "parse_hours", "public_days",
           "public_holiday_countries",
           "zone_label"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS_SCANNED = 3 * 366  # a calendar with no working day left would loop forever
HOLIDAY_HORIZON_DAYS = 60  # how far ahead a run wants the holiday arrangement known
# How a Chinese reader names the zones of mainland China's one official time.

def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    """``"09:00-18:00"`` -> (09:00, 18:00). Raises ValueError unless start < end."""
    try:
        start_text, end_text = (part.strip() for part in str(text).split("-"))
        start, end = dt.time.fromisoformat(start_text), dt.time.fromisoformat(end_text)
    except ValueError:
        raise ValueError(f"working hours must look like 09:00-18:00, not {text!r}") from None
    if start >= end:
        raise ValueError(f"working hours {text!r}: the start must be before the end")
    return start, end


@dataclass(frozen=True)
class BusinessCalendar:
    """When work happens. Defaults: Asia/Shanghai, Monday to Friday, 09:00-18:00, no holidays."""

    timezone: str = "Asia/Shanghai"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(18, 0)
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    extra_workdays: frozenset[dt.date] = field(default_factory=frozenset)
    # Years whose holiday arrangement (days off and make-up workdays) is known; None: not
    # tracked (a calendar built in code, as in tests: every day counts as known).
    arranged_years: frozenset[int] | None = None

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone
        if self.start >= self.end:
            raise ValueError("working hours: the start must be before the end")
        if not self.workdays and not self.extra_workdays:
            raise ValueError("a business calendar needs at least one working day")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def day_length(self) -> dt.timedelta:
        return _on(dt.date(2000, 1, 1), self.end) - _on(dt.date(2000, 1, 1), self.start)

    def is_workday(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.weekday() in self.workdays and day not in self.holidays

    def data_gap(self, today: dt.date, horizon_days: int = HOLIDAY_HORIZON_DAYS,
                 ) -> CalendarGap | None:
        """The first day of the next ``horizon_days`` (from ``today``) in a year without a known
        holiday arrangement, or None when every such day is covered."""
        if self.arranged_years is None:
            return None
        last = today + dt.timedelta(days=horizon_days - 1)
        missing = tuple(y for y in range(today.year, last.year + 1)
                        if y not in self.arranged_years)
        if not missing:
            return None
        first = max(today, dt.date(missing[0], 1, 1))
        known = [y for y in self.arranged_years if y < missing[0]]
        return CalendarGap(first, missing, dt.date(max(known), 12, 31) if known else None,
                           horizon_days)

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """The operator's date now: in this calendar's zone, not the host's (a UTC host's
        06:00 Shanghai run would otherwise take yesterday's date)."""
        return (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(self.timezone)).date()

    def with_hours(self, hours: tuple[dt.time, dt.time] | None) -> BusinessCalendar:
        """The same calendar with someone's own working hours (None: unchanged)."""
        if hours is None or hours == (self.start, self.end):
            return self
        return replace(self, start=hours[0], end=hours[1])

    def local_date(self, moment: dt.datetime) -> dt.date:
        """The calendar date of ``moment`` (aware) in this calendar's timezone."""
        return _aware(moment).astimezone(self.zone).date()

    def zone_label(self, language: str = "en") -> str:
        """This calendar's zone as a reader names it (see `zone_label`)."""
        return zone_label(self.timezone, language)

    def format_local(self, moment: dt.datetime | None, language: str = "en") -> str:
        """``moment`` in this calendar's zone, with the zone named (see `format_local`)."""
        return format_local(moment, self.timezone, language)

    @classmethod
    def build(cls, timezone: str = "Asia/Shanghai", workdays: Iterable[str] = WEEKDAYS[:5],
              hours: str = "09:00-18:00", holidays: Iterable[dt.date] = (),
              extra_workdays: Iterable[dt.date] = (),
              arranged_years: Iterable[int] | None = None) -> BusinessCalendar:
        """A calendar from configuration-style values (weekday names, ``"09:00-18:00"``)."""
        names = [str(d).strip().lower()[:3] for d in workdays]
        unknown = [n for n in names if n not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        start, end = parse_hours(hours)
        return cls(timezone, frozenset(WEEKDAYS.index(n) for n in names), start, end,
                   frozenset(holidays), frozenset(extra_workdays),
                   None if arranged_years is None else frozenset(arranged_years))


@dataclass(frozen=True)
class CalendarGap:
    """Days ahead with no known holiday arrangement: from ``first``, in ``years``."""

    first: dt.date
    years: tuple[int, ...]
    known_through: dt.date | None  # the last day of the last arranged year before the gap
    horizon_days: int

    def message(self) -> str:
        years = ", ".join(str(y) for y in self.years)
        through = (f"ends on {self.known_through.isoformat()}" if self.known_through
                   else "is missing")
        return (f"The business calendar's holiday arrangement (days off and make-up workdays, "
                f"调休) {through}: from {self.first.isoformat()}, within the next "
                f"{self.horizon_days} days, deadlines count weekends and the statutory public "
                f"holidays only. Fix: upgrade the holidays package (pip install -U holidays) "
                f"once it has the State Council's notice for {years}, or add that notice's "
                f"days to conf/calendar.yaml (holidays, extra_workdays)")


@dataclass(frozen=True)
class PublicDays:
    """A country's public holidays and make-up workdays over some years, from the maintained
    ``holidays`` package, and the years whose yearly arrangement it carries."""

    days_off: frozenset[dt.date]
    workdays: frozenset[dt.date]  # weekend days worked to make up for a holiday (调休)
    arranged_years: frozenset[int]


@functools.lru_cache(maxsize=8)
def public_days(country: str, years: tuple[int, ...]) -> PublicDays:
    """``country``'s public holidays over ``years`` (ISO code, e.g. ``CN``).

    For China the package computes the statutory holidays of any year (with the weekday days
    off the law gives for a festival on a weekend) and carries the State Council's yearly notice
    (bridging days off and the weekend days worked, 调休) for the years published when it was
    released. A year counts as arranged when the package lists a make-up workday in it: every
    notice since 2001 has some, a year computed from the law alone has none."""
    import holidays as holiday_data  # here: ~0.3 s to import, only when a calendar is loaded

    found = holiday_data.country_holidays(country, years=years)
    days_off = frozenset(found)  # the keys: dates
    workdays = frozenset(d for d in found.weekend_workdays if d.year in years)
    return PublicDays(days_off, workdays, frozenset(d.year for d in workdays))


def public_holiday_countries() -> frozenset[str]:
    """The country codes the holidays package has public holidays for."""
    import holidays as holiday_data

    return frozenset(holiday_data.list_supported_countries())


def add_business_time(start: dt.datetime, days: float, calendar: BusinessCalendar) -> dt.datetime:
    """``start`` plus ``days`` working days of working time, in UTC.

    ``start`` must be timezone-aware (naive values are taken as UTC). ``days`` may be fractional
    (0.5 = half a working day). ``days <= 0`` returns ``start`` unchanged.
    """
    start = _aware(start)
    if days <= 0:
        return start.astimezone(dt.UTC)
    zone = calendar.zone
    remaining = calendar.day_length * float(days)
    local = start.astimezone(zone).replace(tzinfo=None)  # wall-clock arithmetic in the zone
    day = local.date()
    cursor = local
    for _ in range(_MAX_DAYS_SCANNED + int(days * 2) + 10):
        if calendar.is_workday(day):
            opens, closes = _on(day, calendar.start), _on(day, calendar.end)
            begin = max(cursor, opens)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return (begin + remaining).replace(tzinfo=zone).astimezone(dt.UTC)
                remaining -= available
        day += dt.timedelta(days=1)
        cursor = _on(day, dt.time(0, 0))
    raise ValueError("the business calendar has no working day in the next three years")


def zone_label(timezone: str, language: str = "en") -> str:
    """A time zone as a person reading a list names it: ``北京时间`` for Asia/Shanghai in
    Chinese; otherwise the IANA name, e.g. ``Asia/Shanghai``."""
    if language.lower().replace("_", "-").startswith("zh"):
        return vocabulary.timezone_label(timezone, "zh-CN")
    return timezone


def format_local(moment: dt.datetime | None, timezone: str, language: str = "en",
                 pattern: str = "%Y-%m-%d %H:%M") -> str:
    """``moment`` as a person reads it: in the business zone, with the zone named, e.g.
    ``2026-12-11 10:00 Asia/Shanghai`` or ``2026-12-11 10:00 北京时间``. A naive ``moment`` is
    UTC (as SQLite returns stored times); None gives "". JSON output should keep ISO 8601
    with its offset instead."""
    if moment is None:
        return ""
    local = _aware(moment).astimezone(ZoneInfo(timezone))
    return f"{local.strftime(pattern)} {zone_label(timezone, language)}"


def _on(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
