"""Outcomes of tasks: what a manager records when closing one, and what it does to the task.

An outcome is a code from conf/outcomes.yaml (kamflow.config.load_outcomes) with the minutes
spent and an optional short note. Its ``then`` decides what happens next:

- ``close``: the task is done and, a real contact, starts the action's cooldown;
- ``follow_up``: done as well (a contact), and a follow-up task is raised for the same account
  and action, due on the date the manager gives (default ``follow_up_days`` working days on);
- ``retry``: the customer was not reached: the task stays open with a retry date
  (``retry_days`` on unless given), and no cooldown starts;
- ``cancel``: the task is cancelled, not counted as done, and starts no cooldown.

``check_rows`` checks a whole file of outcomes (``kamflow tasks import``) against the stored
tasks before anything is applied: every bad row is named with its row and field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kamflow.core.vocabulary import Label, outcome_label
from kamflow.worklist.calendar import BusinessCalendar, add_business_time
from kamflow.worklist.models import HELD_OUT, OPEN_STATUSES

__all__ = ["IMPORT_FIELDS", "NEXT_STEPS", "CheckedRows", "NotTheOwnerError", "Outcome",
           "OutcomeList", "OutcomeProblem", "OutcomeRecord", "check_rows", "import_key",
           "next_dates", "not_recordable"]

NEXT_STEPS = ("close", "follow_up", "retry", "cancel")
CONTACT_STEPS = ("close", "follow_up")  # a real contact: the task is done, its cooldown starts
# the columns of an outcome file as kamflow reads it (a mapping makes them from a CRM export)
IMPORT_FIELDS = ("task_id", "outcome", "minutes", "note", "owner", "follow_up_date")


class NotTheOwnerError(PermissionError):
    """An outcome recorded by someone who does not own the task: refused, nothing recorded."""


@dataclass(frozen=True)
class Outcome:
    code: str
    label: Label
    then: str  # one of NEXT_STEPS
    days: float | None = None  # retry: days to the retry; follow_up: to the follow-up's deadline

    @property
    def contact(self) -> bool:
        return self.then in CONTACT_STEPS


@dataclass(frozen=True)
class OutcomeList:
    """The configured outcomes, in the file's order, and the limits on what comes with them."""

    outcomes: tuple[Outcome, ...]
    note_max_chars: int = 500
    minutes_max: int = 480

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {o.code: o for o in self.outcomes})

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(o.code for o in self.outcomes)

    @property
    def labels(self) -> dict[str, Label]:
        return {o.code: o.label for o in self.outcomes}

    def get(self, code: str) -> Outcome:
        found = self._by_code.get(code)  # type: ignore[attr-defined]
        if found is None:
            raise LookupError(f"unknown outcome {code!r}; known: {', '.join(self.codes)}")
        return found

    def find(self, text: str) -> Outcome | None:
        """The outcome named by its code or by its words in either language (a CRM export
        may carry 未联系上 rather than not_reached)."""
        wanted = str(text).strip()
        for outcome in self.outcomes:
            if wanted.casefold() in (outcome.code.casefold(), outcome.label.en.casefold()) \
                    or wanted == outcome.label.zh:
                return outcome
        return None

    def words(self, code: str, lang: str) -> str:
        return outcome_label(code, lang, self.labels)

    def check_minutes(self, minutes: Any) -> int:
        """Minutes spent as a whole number 0..minutes_max; ValueError saying what is wrong."""
        if isinstance(minutes, bool):
            raise ValueError(f"minutes must be a whole number, not {minutes!r}")
        try:
            number = float(str(minutes).strip())
        except ValueError:
            raise ValueError(f"minutes must be a whole number, not {minutes!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"minutes must be a whole number, not {minutes!r}")
        if not 0 <= number <= self.minutes_max:
            raise ValueError(f"minutes must be between 0 and {self.minutes_max}, not "
                             f"{int(number)}")
        return int(number)

    def check_note(self, note: str | None) -> str:
        text = (note or "").strip()
        if len(text) > self.note_max_chars:
            raise ValueError(f"the note has {len(text)} characters; at most "
                             f"{self.note_max_chars}")
        return text


@dataclass(frozen=True)
class OutcomeRecord:
    """One outcome to record on a task (from the web form, the CLI or an imported row)."""

    task_id: int
    outcome: Outcome
    minutes: int
    note: str = ""
    follow_up_on: dt.date | None = None  # follow_up: the day the follow-up task is due
    key: str | None = None  # records nothing more when an event already has it
    owner: str | None = None  # who records it: must own the task (None: not checked)


@dataclass(frozen=True)
class OutcomeProblem:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field}: {self.message}"


@dataclass
class CheckedRows:
    records: list[OutcomeRecord] = field(default_factory=list)
    problems: list[OutcomeProblem] = field(default_factory=list)


def not_recordable(task_id: int, status: str) -> str | None:
    """Why no outcome can be recorded on a task in ``status`` (None: it can, the task is open).
    A held-out decision is the holdout's control group: nobody was asked to act on it, and an
    outcome on it would make it a treated account and spoil the measured effect."""
    if status == HELD_OUT:
        return (f"task {task_id} is held out (the holdout's control group: nobody works it, so "
                "it gets no outcome; it is measured by the account's fate alone)")
    if status not in OPEN_STATUSES:
        return f"task {task_id} is already {status}; no outcome can be recorded on it"
    return None


def import_key(row: Mapping[str, Any]) -> str:
    """The key of an imported outcome: the same row imported again has the same key, so it is
    applied once."""
    text = "\x1f".join(str(row.get(k, "") or "") for k in IMPORT_FIELDS)
    return "import:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def check_rows(rows: Sequence[Mapping[str, Any]], tasks: Mapping[int, tuple[str, str]],
               outcomes: OutcomeList, applied: set[str],
               today: dt.date | None = None) -> CheckedRows:
    """Every row of an outcome file checked: ``rows`` have ``_row`` (the file's row) and the
    IMPORT_FIELDS as text; ``tasks`` is {task id: (owner address, status)} of the tasks the rows
    name; ``applied`` the keys already recorded (a re-import skips those rows); a follow-up
    date must be after ``today``. Returns the
    records to apply and every problem, each naming its row and field."""
    out = CheckedRows()
    seen: dict[str, int] = {}
    status = {task_id: task[1] for task_id, task in tasks.items()}  # as the rows leave them
    for row in rows:
        line = int(row["_row"])
        bad = len(out.problems)

        def problem(name: str, message: str, line: int = line) -> None:
            out.problems.append(OutcomeProblem(line, name, message))

        task_id = _whole(row.get("task_id"))
        task = tasks.get(task_id) if task_id is not None else None
        if task_id is None:
            problem("task_id", f"{_shown(row.get('task_id'))} is not a task id")
        elif task is None:
            problem("task_id", f"there is no task {task_id}")
        outcome = outcomes.find(str(row.get("outcome") or ""))
        if outcome is None:
            problem("outcome", f"unknown outcome {_shown(row.get('outcome'))}; known: "
                               f"{', '.join(outcomes.codes)}")
        try:
            minutes = outcomes.check_minutes(row.get("minutes"))
        except ValueError as exc:
            problem("minutes", str(exc))
        try:
            note = outcomes.check_note(row.get("note"))
        except ValueError as exc:
            problem("note", str(exc))
        owner = str(row.get("owner") or "").strip()
        if not owner:
            problem("owner", "who recorded the outcome is missing (the owner's email)")
        elif task is not None and owner.casefold() != task[0].casefold():
            problem("owner", f"task {task_id} belongs to {task[0]}, not {owner}")
        follow_up_on = None
        if str(row.get("follow_up_date") or "").strip():
            try:
                follow_up_on = dt.date.fromisoformat(str(row["follow_up_date"]).strip()[:10])
            except ValueError:
                problem("follow_up_date", f"{_shown(row['follow_up_date'])} is not a date "
                                          "YYYY-MM-DD")
            if follow_up_on is not None and today is not None and follow_up_on <= today:
                problem("follow_up_date", f"{follow_up_on} is not after today ({today})")
        key = import_key(row)
        if len(out.problems) > bad or key in applied:
            continue  # a bad row, or one recorded by an earlier import
        assert task_id is not None and outcome is not None and task is not None
        if key in seen:
            problem("task_id", f"the same outcome of task {task_id} is on row {seen[key]} too")
            continue
        why = not_recordable(task_id, status[task_id])
        if why is not None:
            problem("task_id", why)
            continue
        seen[key] = line
        status[task_id] = {"retry": status[task_id], "cancel": "cancelled"}.get(outcome.then,
                                                                               "done")
        out.records.append(OutcomeRecord(task_id, outcome, minutes, note, follow_up_on, key,
                                         owner))
    return out


def _whole(value: Any) -> int | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) and number > 0 \
        else None


def _shown(value: Any) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def next_dates(record: OutcomeRecord, now: dt.datetime, calendar: BusinessCalendar
               ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(retry date, follow-up deadline) of an outcome recorded at ``now``: a retry
    ``days`` working days on; a follow-up due at the end of the working day the manager gave,
    else ``days`` (default 5) working days on."""
    outcome = record.outcome
    if outcome.then == "retry":
        return add_business_time(now, outcome.days or 1.0, calendar), None
    if outcome.then != "follow_up":
        return None, None
    if record.follow_up_on is not None:
        due = dt.datetime.combine(record.follow_up_on, calendar.end, calendar.zone)
        return None, due.astimezone(dt.UTC)
    return None, add_business_time(now, outcome.days or 5.0, calendar)
