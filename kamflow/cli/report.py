"""``kamflow report``: churn against the ceiling, and where accounts and revenue are lost.

Reads the account roster and the tasks from the task store (no Prefect, nothing written) and
prints the department's measures (worklist/measures.py): per calendar month, the trailing 12
months and the period from --since, each against the ceilings of conf/department.yaml, and the
period broken down by region, industry, value class and manager.
"""

import datetime as dt
import json
from typing import Annotated, Any

import typer

from kamflow.cli.app import Verbose, app, command, date, settings

BY = ("region", "industry", "class", "manager")
FORMATS = ("table", "csv", "json")


@command(app, "report", help="churn against the ceiling, by region, industry, class, manager",
         description="Print the department's churn measures from the account roster: account "
                     "churn rate (accounts lost ÷ accounts at the start) and revenue churn "
                     "(monthly revenue of the accounts lost), per month, over the trailing 12 "
                     "months and since --since, each against the yearly ceilings of "
                     "conf/department.yaml taken pro rata; then, since --since, per region, "
                     "industry, value class or manager: accounts, monthly revenue, churn, tasks "
                     "raised, the shares handled on time and overdue, the median hours to "
                     "acknowledge; partial churn (retained accounts whose revenue fell by more "
                     "than partial_churn.revenue_fall), value at risk and revenue retained.")
def report(since: Annotated[dt.date | None, typer.Option(
               "--since", parser=date, metavar="YYYY-MM-DD",
               help="start of the period broken down, in the business time zone (default: 12 "
                    "months ago, or the roster's first snapshot if later)")] = None,
           by: Annotated[str | None, typer.Option(
               "--by", metavar="region|industry|class|manager",
               help="one breakdown only (default: all four)")] = None,
           format_: Annotated[str, typer.Option(
               "--format", metavar="table|csv|json", help="output format")] = "table",
           effects: Annotated[bool, typer.Option(
               "--effects", help="the measured effect of each action instead: churn within "
                                 "the horizon (conf/experiment.yaml) of the accounts whose task "
                                 "was released against the held-out ones, per action, value "
                                 "class and reason, with a confidence interval, revenue kept "
                                 "per 100 tasks and per manager-hour, and how many decisions "
                                 "and months each action needs before its effect is known; "
                                 "--since limits the decisions read")] = False,
           verbose: Verbose = False) -> int:
    from zoneinfo import ZoneInfo

    from kamflow import config
    from kamflow.core.errors import KamflowError
    from kamflow.worklist import TaskStore
    from kamflow.worklist.measures import department_report

    if by is not None and by not in BY:
        raise KamflowError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    if format_ not in FORMATS:
        raise KamflowError(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}")
    home = settings()
    ceilings = config.load_department(home.conf_dir / "department.yaml")
    if effects:
        return _effects(home, ceilings, since, format_)
    zone = ZoneInfo(config.load_calendar(home.conf_dir / "calendar.yaml").timezone)
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(since, dt.time(), zone) if since else None
    archive = config.load_housekeeping(home).archive  # archived tasks count too
    with TaskStore(home.database_url, archive=archive) as store:
        roster = store.roster_rows()
        tasks = store.task_rows(min(start or now, now) - dt.timedelta(days=400))
        revenue = store.revenue_rows()
    found = department_report(roster, tasks, now, start, (by,) if by else BY, ceilings,
                              revenue)
    if format_ == "json":
        print(json.dumps(found.as_dict(), ensure_ascii=False, indent=2, default=str))
    elif format_ == "csv":
        print(_csv(found), end="")
    else:
        print(_tables(found, len(roster)))
    return 0


def _effects(home: Any, ceilings: Any, since: dt.date | None, format_: str) -> int:
    """``--effects``: the decisions joined to their fate, released against held out."""
    from zoneinfo import ZoneInfo

    from kamflow import config
    from kamflow.worklist import TaskStore
    from kamflow.worklist.effects import json_rows

    settings_ = config.load_experiment(home.conf_dir / "experiment.yaml", ceilings)
    zone = ZoneInfo(config.load_calendar(home.conf_dir / "calendar.yaml").timezone)
    with TaskStore(home.database_url) as store:  # fates as the last snapshot shows them
        found = store.measured_effects(
            settings_, dt.datetime.combine(since, dt.time(), zone) if since else None)
    if format_ == "json":
        print(json.dumps(json_rows(found.rows), ensure_ascii=False, indent=2))
    elif format_ == "csv":
        import pandas as pd

        from kamflow.core.spreadsheet import safe_frame

        # for the spreadsheet, like the department report's CSV (the JSON stays exact)
        print(safe_frame(pd.DataFrame(found.rows)).to_csv(index=False), end="")
    else:
        print(effects_table(found))
    return 0


def effects_table(found: Any, lang: str = "en") -> str:
    """The effects report as plain columns, one block per action, then the power statements
    and what the managers reported against the fates."""
    from kamflow.core.vocabulary import effect_words
    from kamflow.worklist.effects import power_statement, verdict

    settings_ = found.config
    out = [effect_words("title", lang), "",
           effect_words("intro", lang, horizon=settings_.horizon_days,
                        confidence=f"{100 * settings_.confidence:g} %"),
           f"Decisions: {found.decisions:,} (horizon not over yet, not counted: "
           f"{found.pending:,});"
           f" fates as of the last snapshot, {found.now:%Y-%m-%d %H:%M} UTC.", ""]
    if not found.rows:
        return "\n".join([*out, effect_words("none", lang, horizon=settings_.horizon_days)])

    def share(value: Any) -> str:
        return "" if value is None else f"{100 * value:.2f} %"

    def money(value: Any) -> str:
        return "" if value is None else f"{value:,.0f}"

    for action in dict.fromkeys(r["action"] for r in found.rows):
        rows = [r for r in found.rows if r["action"] == action]
        out += [f"{action}:"]
        out += _table(["segment", "released", "held out", "churn released", "churn held out",
                       "effect (points)", "CI low", "CI high", "partial released",
                       "partial held out", "kept CNY/yr per 100 tasks", "kept CNY/yr per hour",
                       "churn done*", "churn not done*"],
                      [[r["segment"], f"{r['treated']:,}", f"{r['held_out']:,}",
                        share(r["churn_treated"]), share(r["churn_held_out"]),
                        "" if r["effect_pp"] is None else f"{r['effect_pp']:+.2f}",
                        "" if r["ci_low_pp"] is None else f"{r['ci_low_pp']:+.2f}",
                        "" if r["ci_high_pp"] is None else f"{r['ci_high_pp']:+.2f}",
                        share(r["partial_treated"]), share(r["partial_held_out"]),
                        money(r["revenue_kept_per_100_tasks"]), money(r["revenue_kept_per_hour"]),
                        share(r["churn_done"]), share(r["churn_not_done"])] for r in rows])
        out += [f"  {r['segment']}: {verdict(r, settings_, lang)}" for r in rows]
        out.append("")
    hours = sorted({_hours(r) for r in found.rows if r["segment"] == "all"})
    out += ["* " + effect_words("biased", lang), "", f"Manager-hours: {', '.join(hours)}.", ""]
    out += [power_statement(r, settings_, lang) for r in found.rows if r["segment"] == "all"]
    for k in found.kept_left:
        out.append(effect_words("kept_left", lang, action=k["action"],
                                kept=f"{k['reported_kept']:,}", left=f"{k['left_anyway']:,}",
                                share=f"{100 * k['left_anyway_share']:.1f} %"))
    return "\n".join(out)


def _hours(row: dict[str, Any]) -> str:
    return f"{row['action']} {row['hours_per_task']:.2f} h a task ({row['hours_from']})"


def _csv(found: Any) -> str:
    """One table: the periods (dimension ``period``), then every breakdown's rows; formula-like
    text (a manager's name starting with ``=``) neutralised for the spreadsheet."""
    import pandas as pd

    from kamflow.core.spreadsheet import safe_frame

    rows = [{"dimension": "period", "group": p["period"],
             **{k: v for k, v in p.items() if k != "period"}} for p in found.periods]
    for dimension, groups in found.breakdowns.items():
        rows += [{"dimension": dimension, "group": g[dimension],
                  **{k: v for k, v in g.items() if k != dimension}} for g in groups]
    return safe_frame(pd.DataFrame(rows)).to_csv(index=False)


def _percent(share: float) -> str:
    return f"{100 * share:.3f} %"


def _verdict(row: dict[str, Any]) -> str:
    return "OVER" if row["over ceiling"] else "within"


def _tables(found: Any, roster_size: int) -> str:
    if not roster_size:
        return ("The account roster is empty: `kamflow run` records every snapshot's accounts, "
                "and churn is measured from the second snapshot on.")
    ceilings = found.ceilings
    out = [f"Churn ceilings (conf/department.yaml): accounts {_percent(ceilings.accounts_per_year)}"
           f" a year, revenue {_percent(ceilings.revenue_per_year)} a year; each period's "
           "ceiling is pro rata for its length.", ""]
    out += [f"Partial churn: a retained account whose monthly revenue fell by more than "
            f"{100 * ceilings.partial_revenue_fall:.0f} % of its revenue at the period's start.",
            ""]
    out += _table(["period", "accounts at start", "lost", "churn rate", "ceiling", "vs ceiling",
                   "revenue lost (CNY)", "revenue churn", "revenue ceiling", "partial churn",
                   "partial rate", "value at risk (CNY)"],
                  [[p["period"], f"{p['accounts at start']:,}", f"{p['accounts lost']:,}",
                    _percent(p["churn rate"]), _percent(p["churn ceiling"]), _verdict(p),
                    f"{p['revenue lost']:,.0f}", _percent(p["revenue churn rate"]),
                    _percent(p["revenue churn ceiling"]), f"{p['partial churn accounts']:,}",
                    _percent(p["partial churn rate"]), f"{p['value at risk']:,.0f}"]
                   for p in found.periods])
    for dimension, groups in found.breakdowns.items():
        out += ["", f"By {dimension}, since {found.since:%Y-%m-%d %H:%M} UTC:"]
        extra = ["manager name"] if dimension == "manager" else []
        out += _table([dimension, *extra, "accounts", "monthly revenue (CNY)", "at start",
                       "lost", "churn rate", "ceiling", "vs ceiling", "revenue lost (CNY)",
                       "revenue churn", "partial churn", "revenue retained",
                       "value at risk (CNY)", "tasks raised", "on time", "overdue",
                       "median h to ack"],
                      [[g[dimension], *(g[e] for e in extra), f"{g['accounts']:,}",
                        f"{g['monthly revenue']:,.0f}", f"{g['accounts at start']:,}",
                        f"{g['accounts lost']:,}", _percent(g["churn rate"]),
                        _percent(g["churn ceiling"]), _verdict(g), f"{g['revenue lost']:,.0f}",
                        _percent(g["revenue churn rate"]), f"{g['partial churn accounts']:,}",
                        f"{100 * g['revenue retained']:.1f} %", f"{g['value at risk']:,.0f}",
                        f"{g['tasks raised']:,}", f"{100 * g['on time share']:.1f} %",
                        f"{100 * g['overdue share']:.1f} %",
                        "" if g["median hours to acknowledge"] is None
                        else f"{g['median hours to acknowledge']:.1f}"]
                       for g in groups])
    return "\n".join(out)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Plain aligned columns: the first left, the others right (wide characters count 2)."""
    import unicodedata

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(width(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join((c + " " * (w - width(c))) if i == 0 else (" " * (w - width(c)) + c)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))
    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])]
