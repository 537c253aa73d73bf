"""Build the run summary that ops read in the Prefect UI and on the command line. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kamflow.core import vocabulary


@dataclass
class RunSummary:
    run_id: str
    source: str
    as_of: str
    status: str = "completed"
    message: str = ""
    accounts_in: int = 0
    accounts_quarantined: int = 0
    quarantine_rows: int = 0
    accounts_new: int = 0  # first seen in this snapshot (the account roster)
    accounts_lost: int = 0  # in the roster, gone from this snapshot
    accounts_back: int = 0  # lost before, back in this snapshot
    accounts_missing_unmarked: int = 0  # gone, but too many at once to be marked lost
    quarantine_file: str = ""
    validation_report: str = ""
    # The offline validation report (static HTML, no network needed): en and zh-CN pages.
    offline_report: str = ""
    offline_report_zh: str = ""
    data_docs: str = ""  # file:// URL of the run's Great Expectations Data Docs
    value_churn_picture: str = ""
    value_classes: dict[str, int] = field(default_factory=dict)
    # Each class's share of the accounts and of the monthly revenue (class_shares), so ops see
    # at once whether the class cut-offs fit the portfolio.
    value_class_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    churn_bands: dict[str, int] = field(default_factory=dict)
    # Value at risk (monthly revenue x churn probability, CNY): the total a month and a year,
    # the mean churn probability, and the totals per value class and per churn band
    # (value_at_risk_summary).
    value_at_risk: dict[str, Any] = field(default_factory=dict)
    # What churn_risk came from; with a labelled history, what was learnt and its held-out
    # metrics (scoring.learn.LearntChurn.as_dict, plus the history's directory and labels file).
    churn_risk_from: str = "configured factor weights (conf/scoring.yaml)"
    churn_learning: dict[str, Any] = field(default_factory=dict)
    decisions: int = 0
    decisions_by_action: dict[str, int] = field(default_factory=dict)
    tasks_created: int = 0
    tasks_already_open: int = 0
    tasks_in_cooldown: int = 0
    # capacity (conf/owners.yaml): tasks that became open this run (new ones and released
    # from the queue), those waiting in the queue, and queued ones whose rule stopped firing
    tasks_released: int = 0
    tasks_released_from_queue: int = 0
    tasks_queued: int = 0
    tasks_withdrawn: int = 0
    # decisions not raised: expected effect negative (worklist/worth.py), per action
    tasks_withheld: dict[str, int] = field(default_factory=dict)
    # actions whose believed effect the holdout moved (worklist/worth.py Beliefs.measured):
    # action -> decisions measured; the others ranked by the prior of conf/effects.yaml
    effects_measured: dict[str, int] = field(default_factory=dict)
    # the randomised holdout (rules/holdout.py): today's decisions in their action's control
    # group, by action; of them, those recorded now (status held_out) and those recorded on an
    # earlier day of the experiment period (the account keeps its group)
    decisions_held_out: int = 0
    held_out_by_action: dict[str, int] = field(default_factory=dict)
    tasks_held_out: int = 0
    held_out_before: int = 0
    # per owner (the OWNER_ROWS owners with most queued, then most released): released, queued
    capacity_by_owner: list[dict[str, Any]] = field(default_factory=list)
    emails_queued: int = 0
    emails_sent: int = 0
    emails_failed: int = 0
    emails_dead_lettered: int = 0  # refused permanently too often: no longer retried
    email_backend: str = ""
    ruleset_version: str = ""
    # the business calendar's holiday data runs out within 60 days (BusinessCalendar.data_gap)
    calendar_warning: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    # the home's size, the store's, the free disk space and the projection (issue 28:
    # flows/housekeeping.py SpaceReport); a warning when the disk would fill within 30 days
    space: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def counts(series: pd.Series, order: tuple[str, ...] = ()) -> dict[str, int]:
    found = series.value_counts().to_dict()
    keys = [k for k in order if k in found] + sorted(k for k in found if k not in order)
    return {str(k): int(found[k]) for k in keys}


def class_shares(scored: pd.DataFrame,
                 order: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """Per value class (in ``order``): its share of the accounts and of the summed
    ``avg_monthly_billed`` (0..1; revenue shares are 0 when there is no revenue at all)."""
    if scored.empty:
        return {}
    revenue = scored["avg_monthly_billed"].astype("float64").fillna(0.0).clip(lower=0.0)
    grouped = revenue.groupby(scored["value_class"], observed=True).agg(["size", "sum"])
    total = float(revenue.sum())
    keys = [k for k in order if k in grouped.index] + sorted(
        str(k) for k in grouped.index if k not in order)
    return {str(k): {"accounts": float(grouped.loc[k, "size"]) / len(scored),
                     "revenue": float(grouped.loc[k, "sum"]) / total if total > 0 else 0.0}
            for k in keys}


def value_at_risk_summary(scored: pd.DataFrame, classes: tuple[str, ...] = (),
                          bands: tuple[str, ...] = ()) -> dict[str, Any]:
    """Total value at risk (CNY a month, and x 12 a year), the mean churn probability, and the
    totals per value class and per churn band (in ``classes`` / ``bands`` order). Empty when
    the scored frame has no value at risk (scored before it existed)."""
    if scored.empty or "value_at_risk" not in scored:
        return {}
    at_risk = scored["value_at_risk"].astype("float64").fillna(0.0)

    def by(column: str, order: tuple[str, ...]) -> dict[str, dict[str, float]]:
        sums = at_risk.groupby(scored[column], observed=True).sum()
        keys = [k for k in order if k in sums.index] + sorted(
            str(k) for k in sums.index if k not in order)
        return {str(k): {"monthly_cny": round(float(sums[k]), 2),
                         "yearly_cny": round(12 * float(sums[k]), 2)} for k in keys}

    total = float(at_risk.sum())
    return {"monthly_cny": round(total, 2), "yearly_cny": round(12 * total, 2),
            "mean_churn_probability": round(float(scored["churn_probability"].mean()), 4),
            "by_value_class": by("value_class", classes),
            "by_churn_band": by("churn_band", bands)}


def value_at_risk_table(scored: pd.DataFrame) -> list[dict[str, Any]]:
    """Yearly value at risk (CNY) per value class (rows) and churn band (columns), with each
    row's monthly and yearly total, for a table artifact."""
    from kamflow.scoring import CHURN_BANDS, VALUE_CLASSES

    if scored.empty or "value_at_risk" not in scored:
        return []
    table = pd.crosstab(scored["value_class"], scored["churn_band"],
                        values=scored["value_at_risk"].astype("float64"), aggfunc="sum").reindex(
        index=list(VALUE_CLASSES), columns=list(CHURN_BANDS)).fillna(0.0)
    return [{"value class": named("value_class", value_class),
             **{f"{named('churn_band', band)}, CNY/year":
                f"{12 * float(table.loc[value_class, band]):,.0f}" for band in CHURN_BANDS},
             "total CNY/month": f"{float(table.loc[value_class].sum()):,.0f}",
             "total CNY/year": f"{12 * float(table.loc[value_class].sum()):,.0f}"}
            for value_class in VALUE_CLASSES]


def class_shares_text(shares: Mapping[str, Mapping[str, float]], lang: str = "en") -> str:
    """One line: ``high value 9.8 % of accounts, 41.0 % of revenue; ...``."""
    def name(code: str) -> str:
        try:
            return vocabulary.label("value_class", code, lang)
        except vocabulary.UnknownLabel:
            return code
    return "; ".join(f"{name(k)} {100 * v['accounts']:.1f} % of accounts, "
                     f"{100 * v['revenue']:.1f} % of revenue" for k, v in shares.items())


def run_headline(summary: RunSummary) -> dict[str, Any]:
    """What a run's own summary adds to its headline figures (``run_figures``)."""
    top = sum(summary.value_class_shares.get(c, {}).get("accounts", 0.0)
              for c in ("high", "secondary"))
    return {"accounts_lost": summary.accounts_lost, "top_value_share": top,
            "tasks_created": summary.tasks_created}


def trend_table(figures: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs' headline figures (oldest first) as ops read them in the trend artifact."""
    def percent(share: float) -> str:
        return f"{100 * share:.3f} %"
    return [{"run": f["run_id"], "at (UTC)": f"{f['at']:%Y-%m-%d %H:%M}",
             "accounts": f["accounts"], "lost this run": f["accounts_lost"],
             "churn, 12 months": percent(f["churn_rate_12m"]),
             "ceiling (pro rata)": percent(f["churn_ceiling_12m"]),
             "vs ceiling": "OVER" if f["churn_rate_12m"] > f["churn_ceiling_12m"] else "within",
             "revenue churn, 12 months": percent(f["revenue_churn_rate_12m"]),
             "revenue lost, 12 months (CNY/month)": f"{f['revenue_lost_12m']:,.0f}",
             "high + secondary value": f"{100 * f['top_value_share']:.1f} %",
             "tasks raised": f["tasks_created"]} for f in figures]


BREAKDOWN_ROWS = 20  # groups per breakdown in the run's department artifact (worst first)


def department_markdown(found: Any, charts: Mapping[str, str], runs: int) -> str:
    """The run page's department view: the trailing 12 months' churn, revenue churn, partial
    churn and value at risk against the ceiling, the trend charts (``charts``: image URLs,
    keys ``churn`` and ``value_at_risk``) over the last ``runs`` runs, and the breakdowns of
    ``found`` (worklist.measures.DepartmentReport), worst churn first."""
    def percent(share: float) -> str:
        return f"{100 * share:.3f} %"

    year = next(p for p in found.periods if p["period"] == "trailing 12 months")
    verdict = "OVER" if year["over ceiling"] else "within"
    lines = [
        "# Key-account churn against the ceiling", "",
        f"Trailing 12 months: account churn **{percent(year['churn rate'])}** against a "
        f"ceiling of {percent(year['churn ceiling'])} (**{verdict}**); "
        f"{year['accounts lost']:,} of {year['accounts at start']:,} accounts lost. Revenue "
        f"churn {percent(year['revenue churn rate'])} ({year['revenue lost']:,.0f} CNY/month). "
        f"Partial churn: {year['partial churn accounts']:,} retained accounts "
        f"({percent(year['partial churn rate'])}) lost most of their revenue. Value at risk: "
        f"{year['value at risk']:,.0f} CNY/month.", "",
        f"## Churn rate against the ceiling, last {runs} runs", "",
        f"![Account churn, trailing 12 months (blue), against the ceiling (red, dashed)]"
        f"({charts['churn']})", "",
        f"## Value at risk (CNY/month), last {runs} runs", "",
        f"![Value at risk, CNY a month]({charts['value_at_risk']})", ""]
    for dimension, groups in found.breakdowns.items():
        rows = sorted(groups, key=lambda g: (-g["churn rate"], -g["revenue lost"],
                                             str(g[dimension])))
        shown = rows[:BREAKDOWN_ROWS]
        more = f" (the {len(shown)} worst of {len(rows)})" if len(rows) > len(shown) else ""
        lines += [f"## By {dimension}, trailing 12 months{more}", "",
                  f"| {dimension} | accounts | churn rate | vs ceiling | lost | revenue lost "
                  "(CNY/month) | partial churn | value at risk (CNY/month) | revenue retained | "
                  "tasks raised | on time | overdue | median h to ack |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g in shown:
            name = str(g[dimension]).replace("|", "/")
            if dimension == "manager" and g.get("manager name"):
                name = f"{g['manager name']} ({name})".replace("|", "/")
            hours = g["median hours to acknowledge"]
            lines.append(
                f"| {name} | {g['accounts']:,} | {percent(g['churn rate'])} | "
                f"{'OVER' if g['over ceiling'] else 'within'} | {g['accounts lost']:,} | "
                f"{g['revenue lost']:,.0f} | {g['partial churn accounts']:,} | "
                f"{g['value at risk']:,.0f} | {100 * g['revenue retained']:.1f} % | "
                f"{g['tasks raised']:,} | {100 * g['on time share']:.1f} % | "
                f"{100 * g['overdue share']:.1f} % | "
                f"{'' if hours is None else f'{hours:.1f}'} |")
        lines.append("")
    return "\n".join(lines)


def action_table(decisions: pd.DataFrame, created: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per (rule, action): how many accounts it was decided for."""
    if decisions.empty:
        return []
    grouped = decisions.groupby(["action", "owner_role", "rule_id"], sort=True)
    return [{"action": action, "owner": owner, "rule": rule, "accounts": len(group),
             "new tasks (action total)": int(created.get(action, 0)),
             # the revenue the rule's work protects (absent before value at risk existed)
             **({"value at risk, CNY/month": f"{group['value_at_risk'].sum():,.0f}"}
                if "value_at_risk" in group else {}),
             # why it fired, for one account: the matched conditions with that account's values
             "example": f"{group['account_id'].iloc[0]}: {group['why'].iloc[0]}"}
            for (action, owner, rule), group in grouped]


def named(kind: str, code: str) -> str:
    """A code as ops read it in an artifact: both labels, e.g. ``high value (高价值)``; a code
    the vocabulary lacks is shown as it is."""
    try:
        return f"{vocabulary.label(kind, code, 'en')} ({vocabulary.label(kind, code, 'zh')})"
    except vocabulary.UnknownLabel:
        return code


OWNER_ROWS = 20  # owners listed in the summary's capacity table


def capacity_rows(released: Mapping[str, int], queued: Mapping[str, int],
                  limit: int = OWNER_ROWS) -> list[dict[str, Any]]:
    """Per owner: tasks released to them this run and tasks waiting in their queue, the
    ``limit`` owners with most queued first (then most released)."""
    owners = set(released) | set(queued)
    counts = sorted((-int(queued.get(o, 0)), -int(released.get(o, 0)), o) for o in owners)
    return [{"owner": o, "released": -r, "queued": -q} for q, r, o in counts[:limit]]


def _capacity_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return []
    return ["| owner | released this run | queued |", "|---|---:|---:|",
            *(f"| {r['owner']} | {r['released']:,} | {r['queued']:,} |" for r in rows), ""]


def markdown(summary: RunSummary) -> str:
    def table(title: str, values: Mapping[str, int], kind: str = "") -> str:
        if not values:
            return f"**{title}:** none\n"
        rows = "\n".join(f"| {named(kind, k) if kind else k} | {v:,} |"
                          for k, v in values.items())
        return f"| {title} | accounts |\n|---|---:|\n{rows}\n"

    lines = [
        f"# kamflow retention run: {summary.status}",
        "",
        f"Snapshot `{summary.source}` as of **{summary.as_of}**, "
        f"rule set `{summary.ruleset_version}`.",
        "",
    ]
    if summary.message:
        lines += [f"> {summary.message}", ""]
    if summary.calendar_warning:
        lines += [f"> **Warning:** {summary.calendar_warning}", ""]
    lines += [
        "| stage | count |", "|---|---:|",
        f"| accounts in | {summary.accounts_in:,} |",
        f"| accounts quarantined | {summary.accounts_quarantined:,} |",
        f"| rows in quarantine | {summary.quarantine_rows:,} |",
        f"| accounts new to the roster | {summary.accounts_new:,} |",
        f"| accounts lost (gone from the snapshot) | {summary.accounts_lost:,} |",
        *([f"| accounts missing, not marked lost (partial export?) | "
           f"{summary.accounts_missing_unmarked:,} |"] if summary.accounts_missing_unmarked
          else []),
        f"| decisions | {summary.decisions:,} |",
        f"| tasks created | {summary.tasks_created:,} |",
        f"| tasks already open (not raised again) | {summary.tasks_already_open:,} |",
        f"| tasks in cooldown | {summary.tasks_in_cooldown:,} |",
        f"| tasks released to their owners (capacity) | {summary.tasks_released:,} |",
        f"| of which released from the queue | {summary.tasks_released_from_queue:,} |",
        f"| tasks queued (owners' capacity used up) | {summary.tasks_queued:,} |",
        f"| queued tasks withdrawn (rule no longer fires) | {summary.tasks_withdrawn:,} |",
        *([f"| decisions withheld (expected effect negative: "
           f"{', '.join(f'{a} {n:,}' for a, n in summary.tasks_withheld.items())}) | "
           f"{sum(summary.tasks_withheld.values()):,} |"] if summary.tasks_withheld else []),
        f"| effects ranked by (conf/effects.yaml prior, or moved by the holdout) | "
        f"{_effects_from(summary.effects_measured)} |",
        f"| decisions held out (control group; no task, no email) | "
        f"{summary.decisions_held_out:,} |",
        f"| of which recorded now (status held_out) | {summary.tasks_held_out:,} |",
        f"| emails queued | {summary.emails_queued:,} |",
        f"| emails sent ({summary.email_backend}) | {summary.emails_sent:,} |",
        f"| emails failed (kept for the next run) | {summary.emails_failed:,} |",
        *([f"| emails dead-lettered (not retried; ops alerted) | "
           f"{summary.emails_dead_lettered:,} |"] if summary.emails_dead_lettered else []),
        "",
        _class_table(summary) if summary.value_class_shares
        else table("value class", summary.value_classes, "value_class"),
        table("churn band", summary.churn_bands, "churn_band"),
        *_value_at_risk(summary.value_at_risk),
        f"**Churn risk:** {summary.churn_risk_from}.",
        "",
        *_learning(summary.churn_learning),
        table("action", summary.decisions_by_action),
        *([table("held out (control group)", summary.held_out_by_action)]
          if summary.held_out_by_action else []),
        *_capacity_table(summary.capacity_by_owner),
        # The offline report first: it opens on a closed network. The Data Docs (CDN styling
        # and scripts) are reached from it, so here their URL is text, not a link.
        f"Validation report (offline HTML): `{summary.offline_report or 'none'}`"
        + (f" ([open]({_file_url(summary.offline_report)}) · [中文]"
           f"({_file_url(summary.offline_report_zh)}))  " if summary.offline_report else "  "),
        f"Data Docs (needs internet access; linked from the report above): "
        f"`{summary.data_docs or 'none'}`  ",
        f"Quarantine: `{summary.quarantine_file or 'none'}`  ",
        f"Validation results (JSON): `{summary.validation_report or 'none'}`  ",
        f"Value class × churn band picture: `{summary.value_churn_picture or 'none'}`"
        + (f" ([open]({_file_url(summary.value_churn_picture)}))"
           if summary.value_churn_picture else ""),
    ]
    if summary.space:
        lines += ["", *_space(summary.space)]
    if summary.seconds:
        lines += ["", "Seconds per stage: " + ", ".join(
            f"{k} {v:.2f}" for k, v in summary.seconds.items())]
    return "\n".join(lines) + "\n"


def _space(space: Mapping[str, Any]) -> list[str]:
    """The home's and the store's size and the free disk space (and a warning)."""
    def mb(count: float) -> str:
        return f"{count / 1024 / 1024:,.1f} MB"

    growth = space.get("growth_per_day")
    line = (f"Disk: home {mb(space['home_bytes'])} (task store {mb(space['store_bytes'])}), "
            f"free {mb(space['free_bytes'])}"
            + (f", growing {mb(growth)} a day" if growth is not None else ""))
    days = space.get("days_left")
    line += f", full in about {days:,.0f} days" if days is not None else ""
    return [line + "  ", *([f"**Warning:** {space['warning']}"] if space.get("warning") else [])]


def _learning(learning: Mapping[str, Any]) -> list[str]:
    """What was learnt from the labelled history: held-out metrics of the learnt churn risk
    beside the configured weights, then the learnt weights or the model's coefficients."""
    if not learning:
        return []
    learnt, configured = learning["learnt"], learning["configured"]
    lines = [f"Learnt from `{learning['history']}` (outcomes: `{learning['labels']}`), measured "
             f"on {learning['held_out_accounts']:,} held-out accounts "
             f"({learning['held_out_churned']:,} churned):", "",
             "| held out | learnt | configured weights |", "|---|---:|---:|",
             f"| AUC | {learnt['auc']:.3f} | {configured['auc']:.3f} |"]
    for mine, theirs in zip(learnt["top_k"], configured["top_k"], strict=True):
        lines.append(f"| top {mine['share'] * 100:g} % ({mine['accounts']:,} accounts): "
                     f"precision / recall / lift | {_top(mine)} | {_top(theirs)} |")
    learnt_values = learning.get("factor_weights") or learning.get("coefficients") or {}
    title = "| factor | learnt weight |" if learning.get("factor_weights") else \
        "| feature | model coefficient (per standard deviation) |"
    lines += ["", title, "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in learnt_values.items()]
    return [*lines, ""]


def _value_at_risk(figures: Mapping[str, Any]) -> list[str]:
    """Value at risk: the total, then per value class and per churn band (CNY a month and a
    year)."""
    if not figures:
        return []
    lines = [f"**Value at risk** (monthly revenue × churn probability): "
             f"{figures['monthly_cny']:,.0f} CNY a month, {figures['yearly_cny']:,.0f} CNY a "
             f"year; mean churn probability {100 * figures['mean_churn_probability']:.2f} % a "
             "year.", ""]
    for title, kind, key in (("value class", "value_class", "by_value_class"),
                             ("churn band", "churn_band", "by_churn_band")):
        lines += [f"| {title} | value at risk, CNY/month | CNY/year |", "|---|---:|---:|"]
        lines += [f"| {named(kind, k)} | {v['monthly_cny']:,.0f} | {v['yearly_cny']:,.0f} |"
                  for k, v in figures[key].items()]
        lines.append("")
    return lines


def _top(k: Mapping[str, Any]) -> str:
    return f"{k['precision']:.2f} / {k['recall']:.2f} / {k['lift']:.1f}"


def _class_table(summary: RunSummary) -> str:
    """Accounts per value class with their share of accounts and of monthly revenue."""
    rows = "\n".join(
        f"| {named('value_class', k)} | {summary.value_classes.get(k, 0):,} | "
        f"{100 * v['accounts']:.1f} % | {100 * v['revenue']:.1f} % |"
        for k, v in summary.value_class_shares.items())
    return ("| value class | accounts | share of accounts | share of monthly revenue |\n"
            f"|---|---:|---:|---:|\n{rows}\n")


def _effects_from(measured: dict[str, int]) -> str:
    if not measured:
        return "priors (no action measured yet)"
    return "measured: " + ", ".join(f"{a} n={n:,}" for a, n in sorted(measured.items())) \
        + "; the rest priors"


def _file_url(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().as_uri()


def class_band_table(scored: pd.DataFrame) -> list[dict[str, Any]]:
    """Accounts per value class (rows) and churn band (columns), for a table artifact; classes
    and bands by their names in both languages."""
    from kamflow.scoring import CHURN_BANDS, VALUE_CLASSES

    table = pd.crosstab(scored["value_class"], scored["churn_band"]).reindex(
        index=list(VALUE_CLASSES), columns=list(CHURN_BANDS), fill_value=0)
    return [{"value class": named("value_class", value_class),
             **{named("churn_band", band): int(table.loc[value_class, band])
                for band in CHURN_BANDS}}
            for value_class in VALUE_CLASSES]
