"""Renders the "your new retention tasks" digest an account manager receives.

Templates live in `notifications/templates/<name>.<language>.<txt|html>` (Jinja2; flat, so the
`templates/*` package-data glob ships them all). HTML templates are autoescaped,
so customer data (account names, reasons) cannot inject markup; the plain-text part and the
subject carry the data as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = ["SUPPORTED_LANGUAGES", "TASK_FIELDS", "normalise_language", "render_task_digest"]

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
    owner_name: str, tasks: Sequence[Mapping[str, Any]], language: str = "en"
) -> tuple[str, str, str]:
    """Return `(subject, text, html)` of the email telling `owner_name` about `tasks`.

    Each task needs the keys in `TASK_FIELDS`; `due_at` is a datetime (or date). Tasks are listed by
    priority (1 = most urgent), then due time, then task id; the subject names their count and the
    first of them. Raises `ValueError` for an empty list or a task with missing keys.
    """
    if not tasks:
        raise ValueError("render_task_digest needs at least one task")
    rows = sorted((_row(i, task) for i, task in enumerate(tasks)), key=_sort_key)
    lang = normalise_language(language)
    env = _environment()
    context = {"owner_name": owner_name, "tasks": rows, "first": rows[0], "count": len(rows)}
    subject = env.get_template(f"task_digest_subject.{lang}.txt").render(context)
    text = env.get_template(f"task_digest.{lang}.txt").render(context)
    html = env.get_template(f"task_digest.{lang}.html").render(context)
    # A subject is one header line: fold any line breaks from the data into spaces.
    return " ".join(subject.split()), text, html


def _row(index: int, task: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in TASK_FIELDS if name not in task]
    if missing:
        raise ValueError(f"task #{index} ({task.get('task_id', '?')}) lacks {', '.join(missing)}")
    due_at = task["due_at"]
    if not isinstance(due_at, date):
        raise TypeError(f"task #{index}: due_at must be a datetime, got {type(due_at).__name__}")
    row = {name: task[name] for name in TASK_FIELDS}
    if isinstance(due_at, datetime):
        row["due"] = due_at.strftime("%Y-%m-%d %H:%M")
    else:
        row["due"] = due_at.strftime("%Y-%m-%d")
    row["due_date"] = due_at.strftime("%Y-%m-%d")
    return row


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    due_at = row["due_at"]
    if not isinstance(due_at, datetime):
        due_at = datetime(due_at.year, due_at.month, due_at.day)
    if due_at.tzinfo is not None:  # compare aware times in UTC, as naive ones
        due_at = due_at.astimezone(UTC).replace(tzinfo=None)
    task_id = row["task_id"]
    tie_break = (0, task_id, "") if isinstance(task_id, int) else (1, 0, str(task_id))
    return (int(row["priority"]), due_at, tie_break)


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
