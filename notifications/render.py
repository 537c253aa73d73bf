"""Renders the "your new retention tasks" digest an account manager receives.

Templates live in `notifications/templates/<name>.<language>.<txt|html>` (Jinja2; flat, so the
`templates/*` package-data glob ships them all). Each extends `_layout.<txt|html>` (greeting,
font, sign-off) and imports its repeated pieces as macros: `_tasks.html` (task tables, cells,
links; both languages), `_tasks.<language>.txt` (a task's optional lines), `_report.html` (the
weekly report's tables). tests/test_email_golden.py holds every email to its rendering, byte for
byte. HTML templates are autoescaped,
so customer data (account names, reasons) cannot inject markup; the plain-text part and the
subject carry the data as it is.

Words are made here, in the reader's language, from the vocabulary (kamflow/core/vocabulary.py)
and the run's rule set (``wording``): statuses (待处理 / open), value classes and churn bands,
the time zone (北京时间), action titles, and each reason as the rule's description plus the top
churn factors with their values. The raw conditions and codes stay in ``kamflow tasks show``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kamflow.core import vocabulary
from kamflow.core.urgency import urgency

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "SUPPORTED_LANGUAGES",
    "TASK_FIELDS",
    "normalise_language",
    "render_escalations",
    "render_open_tasks_digest",
    "render_task_assignment",
    "render_task_digest",
    "render_urgent_tasks",
]

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"
SUPPORTED_LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
TASK_FIELDS = (
    "task_id",
    "account_id",
    "account_name",
    "action",
    "action_title",
    "priority",
    "due_at",
    "reason",
    "rule_id",
)
# Optional per-task keys: one-click links (signed, expiring), the state shown in digests, and
# the account's value class and churn band (codes; shown by their labels when given).
# ``value_at_risk`` (CNY a month, may be missing) is shown a year: "年化风险收入 ¥147,600".
OPTIONAL_FIELDS = {"ack_url": "", "done_url": "", "status": "open", "escalation_level": 0,
                   "value_class": "", "churn_band": "", "value_at_risk": 0.0,
                   # what the task is worth (worklist/worth.py): "预计挽留 ¥X/年 · 约 N 小时"
                   "effort_hours": None, "expected_retained_cny_yearly": None, "must_do": False,
                   "queued_total": 0,  # the owner's tasks waiting for capacity (new tasks email)
                   # the top churn factors as data (kamflow.core.factors, or their JSON) the
                   # reason words; None: a task stored without them, read from its reason
                   "factors": None}
# A rule set's words: action titles (en, zh), with rule descriptions when a vocabulary.Wording.
Titles = Mapping[str, tuple[str, str]]
_ALIASES = {"zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "zh-hans-cn": "zh-CN"}


def normalise_language(language: str | None) -> str:
    """The supported language for `language` (`zh_CN`, `zh-cn`, `zh` → `zh-CN`; unknown → `en`)."""
    tag = (language or "").strip().replace("_", "-").lower()
    if tag in _ALIASES:
        return _ALIASES[tag]
    if tag == "en" or tag.startswith("en-"):
        return "en"
    logger.debug("no templates for language %r, using %s", language, DEFAULT_LANGUAGE)
    return DEFAULT_LANGUAGE


def render_task_digest(
    owner_name: str,
    tasks: Sequence[Mapping[str, Any]],
    language: str = "en",
    timezone: str | None = None,
    wording: Titles | None = None,
) -> tuple[str, str, str]:
    """Return `(subject, text, html)` of the email telling `owner_name` about `tasks`.

    Each task needs the keys in `TASK_FIELDS`; `due_at` is a datetime (or date). Tasks are listed by
    urgency (kamflow.core.urgency: must-do work by priority, then expected net revenue kept per
    hour; tasks not appraised by priority, then value at risk, CNY a month, shown a year), then
    due time, then task id; the subject names their count and the
    first of them. Raises `ValueError` for an empty list or a task with missing keys.
    A task may carry `ack_url` / `done_url` (one-click links); with `timezone` (an IANA name),
    aware due times are shown in that zone. `wording` (the run's rule set's words) gives the
    action titles and the rules' descriptions in the reader's language.
    """
    if not tasks:
        raise ValueError("render_task_digest needs at least one task")
    return _render("task_digest", owner_name, tasks, language, timezone, {}, wording)


def render_open_tasks_digest(
    owner_name: str,
    tasks: Sequence[Mapping[str, Any]],
    language: str = "en",
    timezone: str | None = None,
    now: datetime | None = None,
    wording: Titles | None = None,
) -> tuple[str, str, str]:
    """The daily digest: every open task of `owner_name`, overdue ones marked, with links.

    Tasks as for `render_task_digest`, plus optional `status` and `escalation_level`.
    """
    if not tasks:
        raise ValueError("render_open_tasks_digest needs at least one task")
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return _render("open_tasks", owner_name, tasks, language, timezone, {"now": moment},
                   wording)


def render_task_assignment(
    owner_name: str,
    task: Mapping[str, Any],
    kind: str,
    previous_owner: str,
    language: str = "en",
    timezone: str | None = None,
    note: str = "",
    wording: Titles | None = None,
) -> tuple[str, str, str]:
    """The immediate email to a task's new owner: `kind` is `escalation` (overdue, moved up the
    ladder from `previous_owner`) or `reassignment` (given by a person); `note` says why."""
    if kind not in ("escalation", "reassignment"):
        raise ValueError(f"kind must be escalation or reassignment, not {kind!r}")
    extra = {"kind": kind, "previous_owner": previous_owner, "note": note}
    return _render("task_assigned", owner_name, [task], language, timezone, extra, wording)


def render_urgent_tasks(
    owner_name: str,
    tasks: Sequence[Mapping[str, Any]],
    language: str = "en",
    timezone: str | None = None,
    wording: Titles | None = None,
) -> tuple[str, str, str]:
    """The one "urgent" email a run sends each owner about its new tasks whose action says
    `email: own`, apart from the routine list of new tasks. Tasks as for `render_task_digest`."""
    if not tasks:
        raise ValueError("render_urgent_tasks needs at least one task")
    return _render("urgent_tasks", owner_name, tasks, language, timezone, {}, wording)


def render_escalations(
    owner_name: str,
    tasks: Sequence[Mapping[str, Any]],
    language: str = "en",
    timezone: str | None = None,
    wording: Titles | None = None,
) -> tuple[str, str, str]:
    """The one email an sla_watch run sends a new owner: every task escalated to them, by
    priority, then the longest overdue first; each with its ladder (who held it, since when),
    its new deadline and one-click links.

    Tasks as for `render_task_digest` (`due_at` is the new deadline) plus `overdue_since` (the
    deadline that passed), `escalation_level` and `ladder`: (who, since) pairs, oldest first.
    """
    if not tasks:
        raise ValueError("render_escalations needs at least one task")
    overdue = {t["task_id"]: _comparable(t["overdue_since"], t["overdue_since"].tzinfo)
               for t in tasks}
    extra = {
        "storm_total": max(int(t.get("storm_total") or 0) for t in tasks),
        "overdue_since": {t["task_id"]: _due_text(t["overdue_since"], t["overdue_since"].tzinfo,
                                                  timezone)[0] for t in tasks},
        "ladders": {t["task_id"]: [(who, _due_text(since, since.tzinfo, timezone)[0])
                                   for who, since in t.get("ladder", ())] for t in tasks},
    }
    return _render("task_escalations", owner_name, tasks, language, timezone, extra, wording,
                   order=lambda row: (int(row["priority"]), overdue[row["task_id"]],
                                      row["task_id"]))


def _render(
    name: str,
    owner_name: str,
    tasks: Sequence[Mapping[str, Any]],
    language: str,
    timezone: str | None,
    extra: Mapping[str, Any],
    wording: Titles | None = None,
    order: Callable[[Mapping[str, Any]], Any] | None = None,
) -> tuple[str, str, str]:
    lang = normalise_language(language)
    words = _Words(lang, wording)
    rows = sorted((words.localise(_row(i, task, timezone)) for i, task in enumerate(tasks)),
                  key=order or _sort_key)
    if "now" in extra:
        for row in rows:
            row["overdue"] = _utc_naive(row["due_at"]) < extra["now"]
    env = _environment()
    context = {
        "owner_name": owner_name,
        "tasks": rows,
        "first": rows[0],
        "count": len(rows),
        "overdue_count": sum(1 for r in rows if r.get("overdue")),
        "timezone": vocabulary.timezone_label(timezone, lang) if timezone else "",
        **extra,
    }
    subject = env.get_template(f"{name}_subject.{lang}.txt").render(context)
    text = env.get_template(f"{name}.{lang}.txt").render(context)
    html = env.get_template(f"{name}.{lang}.html").render(context)
    # A subject is one header line: fold any line breaks from the data into spaces.
    return " ".join(subject.split()), text, html


class _Words:
    """One email's words: a task's codes as labels, its title and reason in ``lang``."""

    def __init__(self, lang: str, wording: Titles | None) -> None:
        self.lang = lang
        # Without a rule set's words, the titles stay as the tasks carry them.
        self.wording = vocabulary.Wording.of(wording) if wording is not None else None
        self.reasons = self.wording or vocabulary.Wording()

    def localise(self, row: dict[str, Any]) -> dict[str, Any]:
        lang = self.lang
        row["status_label"] = vocabulary.label("task_status", row["status"], lang)
        for kind in ("value_class", "churn_band"):
            row[f"{kind}_label"] = vocabulary.label(kind, row[kind], lang) if row[kind] else ""
        if self.wording is not None:
            row["action_title"] = self.wording.action_title(row["action"], lang,
                                                            default=row["action_title"])
        row["reason"] = self.reasons.reason(row["rule_id"], str(row["reason"]), lang,
                                            row["factors"])
        row["risk_text"] = vocabulary.yearly_risk(row["value_at_risk"], lang)
        row["risk_year"] = vocabulary.yearly_amount(row["value_at_risk"])  # the text's line
        row["worth_text"] = vocabulary.worth_line(row["expected_retained_cny_yearly"],
                                                  row["effort_hours"], lang)
        return row


def _utc_naive(value: date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _row(index: int, task: Mapping[str, Any], timezone: str | None = None) -> dict[str, Any]:
    missing = [name for name in TASK_FIELDS if name not in task]
    if missing:
        raise ValueError(f"task #{index} ({task.get('task_id', '?')}) lacks {', '.join(missing)}")
    due_at = task["due_at"]
    if not isinstance(due_at, date):
        raise TypeError(f"task #{index}: due_at must be a datetime, got {type(due_at).__name__}")
    row = {name: task[name] for name in TASK_FIELDS}
    for name, default in OPTIONAL_FIELDS.items():
        value = task.get(name)
        row[name] = default if value is None else value
    row["due"], row["due_date"] = _due_text(due_at, due_at.tzinfo if isinstance(
        due_at, datetime) else None, timezone)
    return row


@functools.lru_cache(maxsize=4096)
def _due_text(due_at: date, tzinfo: Any, timezone: str | None) -> tuple[str, str]:
    """(due, due_date) as shown: a run's tasks share a few deadlines, so each is formatted once
    (``tzinfo`` is part of the key: equal instants in two zones hash equal)."""
    if timezone and isinstance(due_at, datetime) and due_at.tzinfo is not None:
        due_at = due_at.astimezone(ZoneInfo(timezone))
    if isinstance(due_at, datetime):
        return due_at.strftime("%Y-%m-%d %H:%M"), due_at.strftime("%Y-%m-%d")
    return due_at.strftime("%Y-%m-%d"), due_at.strftime("%Y-%m-%d")


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    due_at = row["due_at"]
    task_id = row["task_id"]
    tie_break = (0, task_id, "") if isinstance(task_id, int) else (1, 0, str(task_id))
    return (*urgency(row), _comparable(due_at, getattr(due_at, "tzinfo", None)), tie_break)


@functools.lru_cache(maxsize=4096)
def _comparable(due_at: date, tzinfo: Any) -> datetime:
    """A due time as a naive UTC datetime, so dates, naive and aware times sort together."""
    if not isinstance(due_at, datetime):
        return datetime(due_at.year, due_at.month, due_at.day)
    if due_at.tzinfo is not None:
        return due_at.astimezone(UTC).replace(tzinfo=None)
    return due_at


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
