"""Every email template rendered for a set of fixture cases, as the golden files hold them.

The cases reach each branch of the templates: one task and many, with and without links, value
class, value at risk, time zone, rule-set words, overdue and escalated tasks, a queue, a note,
an escalation storm, a weekly report with and without groups and managers; each in en and zh-CN.
``tests/test_email_golden.py`` compares the renderings with ``tests/golden/emails/``; after an
intended change of wording, rewrite them with ``python -m tests.golden_emails`` and read the diff.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kamflow.notifications.render import (
    render_escalations,
    render_open_tasks_digest,
    render_task_assignment,
    render_task_digest,
    render_urgent_tasks,
)
from kamflow.notifications.weekly import render_weekly_report
from kamflow.rules import RULES_DIR, load_ruleset, wording

GOLDEN = Path(__file__).resolve().parent / "golden" / "emails"
LANGUAGES = ("en", "zh-CN")
TZ = "Asia/Shanghai"
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
FACTORS = ("churn_band=critical. Top churn factors: revenue_decline: revenue -38% (level 0.95), "
           "complaints: 4 complaints in 90 days (level 1.00), contract_ending: contract ended "
           "20 days ago (level 1.00)")


def tasks() -> list[dict[str, Any]]:
    """Four tasks that between them carry every optional field, and one that carries none."""
    return [
        {"task_id": 103, "account_id": "KA0000031", "account_name": "杭州市政务服务中心",
         "action": "sla_review", "action_title": "SLA review", "priority": 2,
         "due_at": dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.UTC),
         "reason": "outage_hours 14.5 > 8 in the last 30 days", "rule_id": "sla_breach",
         "ack_url": "https://kamflow.example/t/103/ack?s=abc",
         "done_url": "https://kamflow.example/t/103/done?s=def",
         "value_class": "secondary", "churn_band": "high", "value_at_risk": 12300.0,
         "status": "acknowledged", "escalation_level": 1},
        {"task_id": 101, "account_id": "KA0000012", "account_name": "上海银行",
         "action": "manager_visit", "action_title": "Manager visit", "priority": 1,
         "due_at": dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC),
         "reason": FACTORS, "rule_id": "escalate-valuable-critical",
         "ack_url": "https://kamflow.example/t/101/ack?s=a&b=<c>",
         "value_class": "high", "churn_band": "critical", "value_at_risk": 98765.4,
         "queued_total": 3},
        {"task_id": 102, "account_id": "KA0000020", "account_name": "<script>alert(1)</script> Ltd",
         "action": "payment_reminder", "action_title": "Payment <reminder>", "priority": 2,
         "due_at": dt.datetime(2026, 11, 25, 12, 30),
         "reason": "arrears 3 months > 2 & \"late\"", "rule_id": "arrears",
         "done_url": "https://kamflow.example/t/102/done?s=x",
         "status": "escalated", "escalation_level": 2, "value_at_risk": None},
        {"task_id": "T-9", "account_id": "KA0000099", "account_name": "Ningbo Port\nLogistics",
         "action": "care_call", "action_title": "Care call", "priority": 3,
         "due_at": dt.date(2026, 12, 1),
         "reason": "fired. Top churn factors: complaints: 2 complaints in 90 days (level 0.60)",
         "rule_id": "care-call-valuable-medium-risk",
         "value_class": "potential", "churn_band": "medium", "value_at_risk": 1.0},
    ]


def escalated(storm_total: int = 0) -> list[dict[str, Any]]:
    """The tasks as an sla_watch run hands them on: the deadline passed, a new one, a ladder."""
    out = []
    for i, task in enumerate(tasks()[:3]):
        due = task["due_at"]
        due = due if isinstance(due, dt.datetime) else dt.datetime(due.year, due.month, due.day)
        out.append({**task, "escalation_level": i + 1, "overdue_since": due,
                    "due_at": due + dt.timedelta(days=2),
                    "ladder": [("wang@operator.example", due - dt.timedelta(days=3)),
                               ("李主管", due)][: i + 1],
                    "storm_total": storm_total})
    return out


def figures(full: bool = True) -> dict[str, Any]:
    """A weekly report's figures: a young roster over its ceiling, or an empty department."""
    def period(start: str, churn: float, over: bool) -> dict[str, Any]:
        return {"from": start, "to": "2026-12-06", "churn rate": churn,
                "churn ceiling": 0.045, "over ceiling": over, "accounts lost": 12,
                "accounts at start": 1234, "accounts": 1222, "monthly revenue": 9876543.21,
                "revenue lost": 45678.9, "revenue churn rate": 0.0123,
                "revenue churn ceiling": 0.03, "revenue over ceiling": False,
                "partial churn accounts": 7, "partial churn rate": 0.0057,
                "partial churn revenue lost": 3456.7, "value at risk": 234567.8}

    worst = {"region": [{**period("2026-01-01", 0.08, True), "name": "杭州"}],
             "industry": [{**period("2026-01-01", 0.05, True), "name": "finance"},
                          {**period("2026-01-01", 0.01, False), "name": "no-such-industry"}],
             "class": [{**period("2026-01-01", 0.02, False), "name": "high"}]}
    managers = [{**period("2026-01-01", 0.02, False), "name": "王芳", "email": "wang@op.example",
                 "tasks raised": 1200, "on time share": 0.875, "overdue share": 0.125,
                 "median hours to acknowledge": 3.25, "revenue retained": 0.991},
                {**period("2026-01-01", 0.0, False), "name": "", "email": "li@op.example",
                 "tasks raised": 0, "on time share": None, "overdue share": None,
                 "median hours to acknowledge": None, "revenue retained": None}]
    return {"week": "2026-W49", "as_of": "2026-12-06", "managers_since": "2026-11-30",
            "runs": 6 if full else 0,
            "year": period("2026-06-01" if full else "2025-12-07", 0.051, full),
            "month": period("2026-12-01", 0.004, False),
            "week_period": period("2026-11-30", 0.001, False),
            "worst": worst if full else {}, "managers": managers if full else []}


def cases() -> Iterator[tuple[str, Callable[[str], tuple[str, str, str]]]]:
    """(name, render in a language) for every case."""
    words = wording(load_ruleset(RULES_DIR))
    one = tasks()[3:]
    yield "task_digest-many", lambda lang: render_task_digest("Li Wang", tasks(), lang, TZ, words)
    yield "task_digest-one-plain", lambda lang: render_task_digest("王经理", one, lang)
    yield "task_digest-queued-one", lambda lang: render_task_digest(
        "Li", [{**tasks()[0], "queued_total": 1}], lang, TZ, words)
    yield "open_tasks-overdue", lambda lang: render_open_tasks_digest(
        "Li Wang", tasks(), lang, TZ, NOW, words)
    yield "open_tasks-none-overdue", lambda lang: render_open_tasks_digest(
        "王经理", one, lang, None, dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    for kind in ("escalation", "reassignment"):
        for i, task in enumerate(tasks()):
            note = "客户投诉升级 <urgent>" if i % 2 else ""
            yield f"task_assigned-{kind}-{i}", lambda lang, kind=kind, task=task, note=note: (
                render_task_assignment("Zhao Min", task, kind, "wang@operator.example", lang,
                                       TZ if note else None, note, words))
    yield "urgent_tasks-many", lambda lang: render_urgent_tasks("Li Wang", tasks(), lang, TZ, words)
    yield "urgent_tasks-one-plain", lambda lang: render_urgent_tasks("王经理", one, lang)
    yield "task_escalations-many", lambda lang: render_escalations(
        "Zhao Min", escalated(), lang, TZ, words)
    yield "task_escalations-one-plain", lambda lang: render_escalations(
        "赵主管", escalated()[:1], lang)
    yield "task_escalations-storm", lambda lang: render_escalations(
        "Zhao Min", escalated(storm_total=250), lang, TZ, words)
    yield "weekly_report-full", lambda lang: render_weekly_report(figures(), lang, "周部长")
    yield "weekly_report-empty", lambda lang: render_weekly_report(figures(False), lang)


def renderings() -> dict[str, str]:
    """{golden file name: its text} for every case in every language."""
    out = {}
    for name, render in cases():
        for lang in LANGUAGES:
            subject, text, html = render(lang)
            # ".golden": the files are data, not templates or pages of the project
            out[f"{name}.{lang}.subject.golden"] = subject + "\n"
            out[f"{name}.{lang}.txt.golden"] = text
            out[f"{name}.{lang}.html.golden"] = html
    return out


def write() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for old in GOLDEN.iterdir():
        old.unlink()
    found = renderings()
    for name, content in found.items():
        (GOLDEN / name).write_bytes(content.encode("utf-8"))
    return len(found)


if __name__ == "__main__":
    sys.stderr.write(f"wrote {write()} golden files to {GOLDEN}\n")
