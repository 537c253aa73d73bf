"""The weekly management email to the head of the key-account department, in their language.

``render_weekly_report`` turns the week's figures (flows/weekly_report.py builds them from the
department's measures) into ``(subject, text, html)``. Every number is formatted once, here, and
the plain-text and HTML templates (``weekly_report.<lang>.txt|html``) place the same strings, so
both parts carry the same figures. The HTML shows the charts by ``cid:`` (inline images of the
email); their alt text and captions say what they show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kamflow.core import vocabulary
from kamflow.notifications.render import _environment, normalise_language

__all__ = ["CHART_CIDS", "render_weekly_report"]

# The inline charts the HTML shows: churn against the ceiling, value at risk (over the runs).
CHART_CIDS = {"churn": "churn-trend@kamflow", "value_at_risk": "value-at-risk@kamflow"}
BREAKDOWNS = ("region", "industry", "class")


def render_weekly_report(figures: Mapping[str, Any], language: str = "zh-CN",
                         recipient_name: str = "") -> tuple[str, str, str]:
    """``(subject, text, html)`` of the weekly report for ``figures``:

    ``week`` (e.g. ``2026-W49``), ``as_of`` and ``managers_since`` (dates as text); ``month``,
    ``year`` and ``week_period``: department measures of a period (worklist/measures.py: churn
    rate and ceiling, accounts lost, revenue lost and churn, partial churn, value at risk,
    accounts, monthly revenue); ``worst``: per breakdown (region, industry, class) its worst
    groups' measures with ``name`` (a code for industry and class); ``managers``: per manager
    ``name``, ``email`` and measures (on time, overdue, median hours to acknowledge, churn
    rate, revenue retained); ``runs``: how many runs the charts cover; optionally
    ``effects``: the effects section (title, intro, none, and per action its name, released,
    held out, verdict and power statement)."""
    lang = normalise_language(language)
    zh = lang == "zh-CN"
    context = {
        "name": recipient_name,
        "week": figures["week"], "as_of": figures["as_of"],
        "managers_since": figures["managers_since"], "runs": figures.get("runs", 0),
        "month": _period(figures["month"]), "year": _period(figures["year"]),
        "week_period": _period(figures["week_period"]),
        "worst": [{"title": vocabulary.label("report_dimension", dimension, lang),
                   "rows": [{**_period(row), "name": _group_name(dimension, row["name"], lang)}
                            for row in figures["worst"].get(dimension, ())]}
                  for dimension in BREAKDOWNS],
        "managers": [{**_period(row), "name": row["name"] or row["email"],
                      "email": row["email"]} for row in figures["managers"]],
        "cids": CHART_CIDS,
        "captions": {kind: chart_caption(kind, lang, figures.get("runs", 0))
                     for kind in CHART_CIDS},
        "unit": "元" if zh else "CNY",
        # each action's measured effect (flows/effects.py weekly_effects), in words already
        "effects": figures.get("effects"),
    }
    env = _environment()
    subject = env.get_template(f"weekly_report_subject.{lang}.txt").render(context)
    text = env.get_template(f"weekly_report.{lang}.txt").render(context)
    html = env.get_template(f"weekly_report.{lang}.html").render(context)
    return " ".join(subject.split()), text, html


def _group_name(dimension: str, code: str, lang: str) -> str:
    kind = {"industry": "industry", "class": "value_class"}.get(dimension)
    if kind is None:
        return str(code)
    try:
        return vocabulary.label(kind, str(code), lang)
    except vocabulary.UnknownLabel:
        return str(code)


def _period(row: Mapping[str, Any]) -> dict[str, str | bool]:
    """A period's or group's measures as shown (the same strings in both parts)."""
    def percent(key: str, digits: int = 3) -> str:
        value = row.get(key)
        return "" if value is None else f"{100 * float(value):.{digits}f} %"

    def money(key: str) -> str:
        value = row.get(key)
        return "" if value is None else f"{float(value):,.0f}"

    def count(key: str) -> str:
        value = row.get(key)
        return "" if value is None else f"{int(value):,}"

    hours = row.get("median hours to acknowledge")
    start, end = str(row.get("from", ""))[:10], str(row.get("to", ""))[:10]
    # a roster younger than the period: its figures and ceiling cover the days it has
    short = bool(start and end) and (dt.date.fromisoformat(end)
                                     - dt.date.fromisoformat(start)).days < 360
    return {
        "since": start, "short": short,
        "churn_rate": percent("churn rate"), "churn_ceiling": percent("churn ceiling"),
        "over": bool(row.get("over ceiling")),
        "accounts_lost": count("accounts lost"), "accounts_at_start": count("accounts at start"),
        "accounts": count("accounts"), "monthly_revenue": money("monthly revenue"),
        "revenue_lost": money("revenue lost"), "revenue_churn": percent("revenue churn rate"),
        "revenue_ceiling": percent("revenue churn ceiling"),
        "revenue_over": bool(row.get("revenue over ceiling")),
        "partial_accounts": count("partial churn accounts"),
        "partial_rate": percent("partial churn rate"),
        "partial_revenue_lost": money("partial churn revenue lost"),
        "value_at_risk": money("value at risk"),
        "revenue_retained": percent("revenue retained", 1),
        "tasks_raised": count("tasks raised"),
        "on_time": percent("on time share", 1), "overdue": percent("overdue share", 1),
        "median_hours": "" if hours is None else f"{float(hours):.1f}",
    }


def chart_caption(kind: str, lang: str, runs: int) -> str:
    """What a chart shows, as its alt text and caption."""
    zh = normalise_language(lang) == "zh-CN"
    if kind == "churn":
        return (f"近 {runs} 次运行的客户流失率（近 12 个月，蓝线）与流失上限（红色虚线）" if zh
                else f"Account churn, trailing 12 months (blue), against the ceiling (red, "
                     f"dashed), over the last {runs} runs")
    return (f"近 {runs} 次运行的风险价值（元/月）" if zh
            else f"Value at risk (CNY a month) over the last {runs} runs")
