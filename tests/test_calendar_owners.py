"""Business-time deadlines (conf/calendar.yaml) and the owners directory (conf/owners.yaml):
working hours, days off, adjusted working days, people, supervisors and escalation ladders."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.worklist import Owner, OwnerDirectory, plan_tasks
from kamflow.worklist.calendar import BusinessCalendar, add_business_time, format_local
from tests.test_worklist import OWNERS, TITLES, decisions

SH = BusinessCalendar.build(holidays=[dt.date(2026, 10, 1), dt.date(2026, 10, 2)],
                            extra_workdays=[dt.date(2026, 10, 10)])


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH.zone)


@pytest.mark.parametrize(("start", "days", "due"), [
    (local(2026, 11, 25, 10), 1, local(2026, 11, 26, 10)),       # Wed -> Thu, same time
    (local(2026, 11, 27, 17), 1, local(2026, 11, 30, 17)),       # Fri 17:00: 1 h + 8 h Mon
    (local(2026, 11, 28, 11), 0.5, local(2026, 11, 30, 13, 30)),  # Sat: starts Mon 09:00
    (local(2026, 11, 25, 20), 2, local(2026, 11, 27, 18)),       # after hours: Thu + Fri
    (local(2026, 11, 25, 7), 1, local(2026, 11, 25, 18)),        # before hours: that day
    (local(2026, 9, 30, 12), 1, local(2026, 10, 5, 12)),         # holiday Thu/Fri, weekend
    (local(2026, 10, 9, 12), 1, local(2026, 10, 10, 12)),        # Sat 10 Oct is worked (调休)
    (local(2026, 11, 25, 10), 0, local(2026, 11, 25, 10)),       # no time: unchanged
])
def test_add_business_time_decision_table(start: dt.datetime, days: float,
                                          due: dt.datetime) -> None:
    """N days = N working days of working hours, counted only in working time, Asia/Shanghai."""
    got = add_business_time(start, days, SH)
    assert got == due and got.tzinfo == dt.UTC


def test_personal_working_hours_and_utc_input() -> None:
    """Someone's own hours change the deadline; UTC input is read in the calendar's zone."""
    early = SH.with_hours((dt.time(8, 0), dt.time(12, 0)))
    start = dt.datetime(2026, 11, 25, 1, 0, tzinfo=dt.UTC)  # 09:00 Shanghai
    assert add_business_time(start, 1, early) == local(2026, 11, 26, 9)


def test_plan_tasks_uses_business_time_when_given_a_calendar() -> None:
    """With a calendar, planned deadlines fall inside working hours on working days."""
    rows = [("KA1", "care_call", "account_manager", "wang@operator.example")]
    friday_evening = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)  # 18:00 Shanghai
    plan = plan_tasks(decisions(rows), OWNERS, TITLES, friday_evening, SH)
    assert plan.loc[0, "due_at"] == local(2026, 12, 1, 18)  # two full days: Mon + Tue


def test_shipped_calendar_loads_with_2026_holidays() -> None:
    """conf/calendar.yaml: Asia/Shanghai, Mon-Fri 09:00-18:00, National Day off, 调休 days on
    (the public days from the holidays package: tests/test_calendar_data.py)."""
    calendar = config.load_calendar(today=dt.date(2026, 10, 1))
    assert calendar.timezone == "Asia/Shanghai" and calendar.start == dt.time(9)
    assert not calendar.is_workday(dt.date(2026, 10, 1))
    assert calendar.is_workday(dt.date(2026, 10, 10))  # a Saturday worked
    assert config.load_escalation_due_days() == 1.0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("timezone", "Mars/Olympus", "unknown timezone"),
    ("working_hours", "18:00-09:00", "start must be before"),
    ("workdays", ["mon", "funday"], "unknown weekday"),
    ("holidays", ["2026-13-01"], "not a date"),
    ("public_holidays", "Atlantis", "no public holidays known for 'Atlantis'"),
    ("escalation", 1, "is unknown"),
])
def test_bad_calendar_is_refused_naming_the_problem(tmp_path: Path, key: str, value: object,
                                                    message: str) -> None:
    """Each bad calendar value is refused with the file and what is wrong."""
    doc = yaml.safe_load((config.conf_dir() / "calendar.yaml").read_text(encoding="utf-8"))
    doc[key] = value
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        config.load_calendar(path)
    assert str(path) in str(caught.value)


def test_ladders_of_the_shipped_directory() -> None:
    """Unlisted manager -> default supervisor -> head; a queue with a supervisor -> it -> head;
    the head has no ladder; the NOC manager's own hours are known."""
    owners = config.load_owners()
    assert [o.email for o in owners.ladder("someone@operator.example")] == [
        "ka-sales-director@operator.example", "ka-head@operator.example"]
    assert [o.email for o in owners.ladder("sla-team@operator.example")] == [
        "noc-manager@operator.example", "ka-head@operator.example"]
    assert owners.ladder("ka-head@operator.example") == []
    assert owners.working_hours_of("noc-manager@operator.example") == (dt.time(8, 30),
                                                                       dt.time(17, 30))


def test_people_from_csv_and_cycles_refused(tmp_path: Path) -> None:
    """people_file adds people from a GB18030 CSV with supervisors; a supervisor cycle is refused
    naming the chain."""
    (tmp_path / "staff.csv").write_bytes(
        "email,name,supervisor,language,working_hours\n"
        "wang@x.example,王芳,zhao@x.example,zh-CN,\n"
        "zhao@x.example,赵主管,,zh-CN,08:30-17:30\n".encode("gb18030"))
    doc = yaml.safe_load((config.conf_dir() / "owners.yaml").read_text(encoding="utf-8"))
    doc["people_file"] = "staff.csv"
    path = tmp_path / "owners.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    owners = config.load_owners(path)
    assert [o.email for o in owners.ladder("wang@x.example")] == [
        "zhao@x.example", "ka-head@operator.example"]
    assert owners.lookup("WANG@x.example").name == "王芳"
    doc["people"].append({"email": "ka-head@operator.example", "name": "head",
                          "supervisor": "wang@x.example"})
    doc["people"].append({"email": "zhao2@x.example", "name": "z"})
    (tmp_path / "staff.csv").write_text("email,name,supervisor\nwang@x.example,W,zhao@x.example\n"
                                        "zhao@x.example,Z,wang@x.example\n", encoding="utf-8")
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        config.load_owners(path)


def test_unknown_or_malformed_owner_goes_to_fallback(caplog: pytest.LogCaptureFixture) -> None:
    """A manager email that is missing or malformed routes the task to the fallback queue, and
    the warning names the account."""
    directory = OwnerDirectory(roles={}, fallback=Owner("Fallback", "fb@operator.example"))
    rows = [("KA7", "care_call", "account_manager", "not-an-address")]
    plan = plan_tasks(decisions(rows), directory, TITLES, dt.datetime(2026, 11, 25,
                                                                      tzinfo=dt.UTC))
    assert plan.loc[0, "owner_email"] == "fb@operator.example"
    assert "KA7" in caplog.text and "fallback" in caplog.text


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "2026-12-11 10:00 Asia/Shanghai"),
    ("zh-CN", "2026-12-11 10:00 北京时间"),
])
def test_times_a_person_reads_are_in_the_business_zone_with_the_zone_named(
        language: str, expected: str) -> None:
    """A stored UTC due time (naive, as SQLite returns it) shows in the calendar's zone, named;
    an aware one too; no time shows as an empty text."""
    calendar = BusinessCalendar()
    assert calendar.format_local(dt.datetime(2026, 12, 11, 2, 0), language) == expected
    assert format_local(dt.datetime(2026, 12, 11, 2, 0, tzinfo=dt.UTC), "Asia/Shanghai",
                        language) == expected
    assert calendar.format_local(None, language) == ""
    assert format_local(dt.datetime(2026, 12, 11, 2, 0), "Europe/Berlin", language) == \
        "2026-12-11 03:00 Europe/Berlin"


def test_today_is_the_operators_date_not_the_hosts() -> None:
    """At 22:30 UTC it is already tomorrow in Shanghai: the default snapshot date follows the
    calendar's zone (the 06:00 Shanghai run on a UTC host took yesterday before)."""
    from kamflow.worklist.calendar import BusinessCalendar

    late_utc = dt.datetime(2026, 12, 1, 22, 30, tzinfo=dt.UTC)
    assert BusinessCalendar.build("Asia/Shanghai").today(late_utc) == dt.date(2026, 12, 2)
    assert BusinessCalendar.build("UTC").today(late_utc) == dt.date(2026, 12, 1)
