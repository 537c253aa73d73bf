"""The business calendar's public holidays come from the holidays package (China's statutory
holidays and the State Council's yearly arrangement); conf/calendar.yaml adds the operator's own
days. When the arrangement runs out within 60 days, the run says so (summary, artifact, ops)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from kamflow import config
from kamflow.flows.delivery import calendar_alert
from kamflow.flows.report import RunSummary, markdown
from kamflow.worklist.calendar import BusinessCalendar, add_business_time

SHANGHAI = BusinessCalendar().zone


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


def calendar_file(tmp_path: Path, **changes: object) -> Path:
    doc = yaml.safe_load((config.conf_dir() / "calendar.yaml").read_text(encoding="utf-8"))
    doc.update(changes)
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_shipped_conf_types_no_holiday_list() -> None:
    """conf/calendar.yaml lists no public holiday or make-up day: they come from the package."""
    doc = yaml.safe_load((config.conf_dir() / "calendar.yaml").read_text(encoding="utf-8"))
    assert doc["public_holidays"] == "CN"
    assert doc["holidays"] == [] and doc["extra_workdays"] == []


def test_spring_festival_2026_with_its_make_up_saturdays() -> None:
    """The 2026 notice: 15-23 February off, Saturdays 14 and 28 February worked."""
    calendar = config.load_calendar(today=dt.date(2026, 2, 1))
    assert [d.day for d in (dt.date(2026, 2, 13) + dt.timedelta(n) for n in range(17))
            if calendar.is_workday(d)] == [13, 14, 24, 25, 26, 27, 28]
    # Friday 17:00 + 1 day: 1 h on Friday, 8 h on the worked Saturday
    assert add_business_time(local(2026, 2, 13, 17), 1, calendar) == local(2026, 2, 14, 17)
    # Saturday 14 February 17:00 + 1 day: 1 h, then nothing until Tuesday 24 February
    assert add_business_time(local(2026, 2, 14, 17), 1, calendar) == local(2026, 2, 24, 17)
    assert calendar.data_gap(dt.date(2026, 2, 1)) is None


def test_on_2027_01_15_the_run_warns_where_the_data_ends_and_spring_festival_is_off() -> None:
    """With the date set to 2027-01-15 (no 2027 notice in the package, as tests/conftest.py
    pins it whatever release is installed): a gap from that day,
    the arrangement known through 2026-12-31; the statutory Spring Festival (5-10 February 2027:
    eve, three days, two weekday days for the weekend ones) is still off in deadlines."""
    today = dt.date(2027, 1, 15)
    calendar = config.load_calendar(today=today)
    gap = calendar.data_gap(today)
    assert gap is not None
    assert (gap.first, gap.years, gap.known_through) == (today, (2027,), dt.date(2026, 12, 31))
    assert "ends on 2026-12-31" in gap.message() and "from 2027-01-15" in gap.message()
    assert not any(calendar.is_workday(dt.date(2027, 2, d)) for d in range(5, 11))
    assert calendar.is_workday(dt.date(2027, 2, 11))
    # Thursday 4 February 17:00 + 1 day: 1 h, then Thursday 11 February
    assert add_business_time(local(2027, 2, 4, 17), 1, calendar) == local(2027, 2, 11, 17)
    # In the summary, where ops read the run
    summary = RunSummary(run_id="r", source="s", as_of=today.isoformat(),
                         calendar_warning=gap.message())
    assert f"> **Warning:** {gap.message()}" in markdown(summary)
    # and in ops' inbox, once a week
    alert = calendar_alert("ops@operator.example", gap, today)
    assert alert.recipient == "ops@operator.example" and alert.kind == "calendar_alert"
    assert "2027-01-15" in alert.subject and gap.message() in alert.text
    # the Sunday's run finds the gap from its own day, still the same email (same outbox key)
    sunday = today + dt.timedelta(days=2)
    later_gap = calendar.data_gap(sunday)
    assert later_gap is not None and later_gap.first == sunday
    assert alert.key == calendar_alert("o", later_gap, sunday).key
    assert alert.key != calendar_alert("o", gap, today + dt.timedelta(days=7)).key


def test_on_todays_date_2026_12_07_every_run_warns_of_2027() -> None:
    """From 3 November 2026 on, the next 60 days reach 2027, which has no State Council notice
    in the package (holidays 0.109, as pinned): every run warns, from 1 January 2027; the
    statutory New Year's Day 2027 still counts as a day off."""
    today = dt.date(2026, 12, 7)
    calendar = config.load_calendar(today=today)
    gap = calendar.data_gap(today)
    assert gap is not None
    assert (gap.first, gap.years, gap.known_through) == (dt.date(2027, 1, 1), (2027,),
                                                         dt.date(2026, 12, 31))
    assert not calendar.is_workday(dt.date(2027, 1, 1))
    assert calendar.data_gap(dt.date(2026, 11, 2)) is None  # 60 days end on 31 December


def test_no_warning_when_the_next_60_days_are_covered() -> None:
    """1 October 2026: the 60 days end on 29 November, inside the arranged 2026."""
    calendar = config.load_calendar(today=dt.date(2026, 10, 1))
    assert calendar.data_gap(dt.date(2026, 10, 1)) is None
    assert calendar.data_gap(dt.date(2026, 11, 3)) is not None  # 60 days reach 1 January 2027


def test_the_operators_own_days_and_a_typed_notice(tmp_path: Path) -> None:
    """holidays adds days off, extra_workdays removes them (or makes a weekend worked); a year
    with a make-up Saturday in the file counts as arranged (the operator typed its notice)."""
    path = calendar_file(tmp_path, holidays=["2026-11-20"],
                         extra_workdays=["2026-10-08", "2027-02-20"])
    calendar = config.load_calendar(path, today=dt.date(2027, 1, 15))
    assert not calendar.is_workday(dt.date(2026, 11, 20))  # the operator's own day off
    assert calendar.is_workday(dt.date(2026, 10, 8))  # a National Day holiday worked here
    assert calendar.is_workday(dt.date(2027, 2, 20))  # a Saturday worked
    assert calendar.data_gap(dt.date(2027, 1, 15)) is None


def test_without_public_holidays_every_day_ahead_is_a_gap(tmp_path: Path) -> None:
    """public_holidays: none counts weekends only and always warns (no year is arranged)."""
    calendar = config.load_calendar(calendar_file(tmp_path, public_holidays="none"),
                                    today=dt.date(2026, 10, 1))
    assert calendar.is_workday(dt.date(2026, 10, 1))
    gap = calendar.data_gap(dt.date(2026, 10, 1))
    assert gap is not None and gap.known_through is None and "is missing" in gap.message()
