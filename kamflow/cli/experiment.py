"""``kamflow experiment``: how large each action's control group should be, and what it costs.

Reads the decisions and their fates from the task store, as ``kamflow report --effects`` does
(worklist/effects.py ``effects_report``), and sizes the holdout by a power calculation
(``size_experiment``): the share each action needs for its effect to be known within the
configured width and time (conf/experiment.yaml ``sizing``), the maintenance share once it is
known, and what a quarter's control group gives up in expected net revenue. Nothing is written:
the share is the operator's to set (rules/actions.yaml ``holdout:``).
"""

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kamflow.cli.app import Verbose, app, command, date, settings

FORMATS = ("table", "json")


@command(app, "experiment", help="size each action's control group: share, months, cost",
         description="Size the randomised holdout from the task store: for each action under "
                     "way, its decisions a month, the holdout share it has, the share that makes "
                     "its effect known within ±ci_width_pp/2 points within sizing.within_months "
                     "of its first decision (a power calculation at its churn; "
                     "conf/experiment.yaml), or the maintenance share once its effect is known "
                     "(never zero, so drift stays visible), and what a quarter's control group "
                     "gives up in expected net revenue a year (the measured effect once known, "
                     "else the appraisal's). Recommends; the share is set in rules/actions.yaml "
                     "(holdout:). Nothing is written.")
def experiment(since: Annotated[dt.date | None, typer.Option(
                   "--since", parser=date, metavar="YYYY-MM-DD",
                   help="the first decision read (default: a year before the horizon)")] = None,
               format_: Annotated[str, typer.Option(
                   "--format", metavar="table|json", help="output format")] = "table",
               rules: Annotated[Path | None, typer.Option(
                   "--rules", metavar="DIR",
                   help="rule set whose actions.yaml holds the shares (default: the rules/ "
                        "shipped with kamflow)")] = None,
               lang: Annotated[str, typer.Option(
                   "--lang", metavar="en|zh", help="language of the sentences")] = "en",
               verbose: Verbose = False) -> int:
    from zoneinfo import ZoneInfo

    from kamflow import config
    from kamflow.core.errors import KamflowError
    from kamflow.flows.plan import PlanConfig
    from kamflow.rules import RULES_DIR
    from kamflow.rules.holdout import may_hold_out
    from kamflow.worklist import TaskStore
    from kamflow.worklist.effects import size_experiment

    if format_ not in FORMATS:
        raise KamflowError(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}")
    if lang not in ("en", "zh"):
        raise KamflowError(f"--lang must be en or zh, not {lang!r}")
    home = settings()
    ruleset = PlanConfig.load(home.conf_dir, rules or RULES_DIR).ruleset
    assert ruleset is not None  # a rules directory was given
    configured = {name: spec.holdout for name, spec in ruleset.actions.items()
                  if may_hold_out(name, spec.owner, spec.email)}
    ceilings = config.load_department(home.conf_dir / "department.yaml")
    settings_ = config.load_experiment(home.conf_dir / "experiment.yaml", ceilings)
    zone = ZoneInfo(config.load_calendar(home.conf_dir / "calendar.yaml").timezone)
    with TaskStore(home.database_url) as store:
        found = store.measured_effects(
            settings_, dt.datetime.combine(since, dt.time(), zone) if since else None)
    plan = size_experiment(found.rows, settings_, configured)
    if format_ == "json":
        print(json.dumps(_json(plan, settings_), ensure_ascii=False, indent=2))
    else:
        print(sizing_table(plan, settings_, lang))
    return 0


def _json(plan: list[dict[str, Any]], settings_: Any) -> dict[str, Any]:
    return {"sizing": {"ci_width_pp": settings_.ci_width_pp,
                       "confidence": settings_.confidence,
                       "horizon_days": settings_.horizon_days,
                       "within_months": settings_.within_months,
                       "maintenance_share": settings_.maintenance_share,
                       "max_share": settings_.max_share},
            "actions": plan}


def sizing_table(plan: list[dict[str, Any]], settings_: Any, lang: str = "en") -> str:
    """The sizing as plain columns, then one sentence per action in the reader's language."""
    from kamflow.cli.report import _table
    from kamflow.core.vocabulary import effect_words
    from kamflow.worklist.effects import sizing_statement

    intro = effect_words("sizing_intro", lang, within=f"{settings_.within_months:g}",
                         half=f"{settings_.ci_width_pp / 2:g}",
                         maintenance=f"{100 * settings_.maintenance_share:.1f} %")
    out = [effect_words("sizing_title", lang), "", intro, ""]
    if not plan:
        return "\n".join([*out, effect_words("sizing_none", lang)])

    def share(value: Any) -> str:
        return "" if value is None else f"{100 * value:.1f} %"

    def money(value: Any) -> str:
        return "?" if value is None else f"{value:,.0f}"

    out += _table(["action", "decisions a month", "share set", "share seen", "recommended",
                   "status",
                   "months to known", "held out a quarter", "net kept per decision (CNY/yr)",
                   "cost a quarter (CNY/yr)"],
                  [[p["action"], f"{p['decisions_per_month']:,.0f}",
                    share(p["share_configured"]), share(p["share_measured"]),
                    share(p["recommended_share"]), p["status"],
                    "" if p["months_to_known"] is None else f"{p['months_to_known']:,.1f}",
                    f"{p['held_out_per_quarter']:,.0f}",
                    money(p["net_kept_per_decision_cny_yearly"]),
                    money(p["cost_per_quarter_cny_yearly"])] for p in plan])
    out.append("")
    out += [sizing_statement(p, settings_, lang) for p in plan]
    total = sum(p["cost_per_quarter_cny_yearly"] or 0.0 for p in plan)
    out += ["", effect_words("sizing_total", lang, cost=f"{total:,.0f}")]
    return "\n".join(out)
