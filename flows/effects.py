"""The run's ``effects`` artifact and the weekly email's effects section: each action's measured
effect (worklist/effects.py), released against held out, read from the task store."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kamflow import config
from kamflow.core import vocabulary
from kamflow.core.settings import Settings
from kamflow.worklist import TaskStore
from kamflow.worklist.effects import EffectsConfig, MeasuredEffects, power_statement, verdict
from kamflow.worklist.worth import Beliefs

__all__ = ["effects_markdown", "learnt_beliefs", "publish_effects", "read_effects",
           "weekly_effects"]


def read_effects(store: TaskStore, conf_dir: Any) -> MeasuredEffects:
    """The effects report as configured (conf/experiment.yaml, conf/department.yaml)."""
    ceilings = config.load_department(conf_dir / "department.yaml")
    return store.measured_effects(config.load_experiment(conf_dir / "experiment.yaml", ceilings))


def learnt_beliefs(beliefs: Beliefs | None, found: MeasuredEffects
                   ) -> tuple[Beliefs | None, dict[str, int]]:
    """The beliefs the plan ranks by: conf/effects.yaml's priors moved toward what the holdout
    measured (every action and segment with held-out decisions whose fate is known and some of
    whose accounts left; Beliefs.measured weighs each by its decisions), and per action moved,
    the decisions behind it."""
    if beliefs is None:
        return None, {}
    rows = [r for r in found.rows if r["held_out"] and r["churn_held_out"]]
    learnt = beliefs.measured(rows) if rows else beliefs
    return learnt, {name: belief.measured_n["all"] for name, belief in learnt.actions.items()
                    if "all" in belief.measured_n}


def _points(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f} %"


def _money(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:,.0f}"


def effects_markdown(found: MeasuredEffects, lang: str = "en") -> str:
    """The run page's effects view: per action and segment, released against held out, the
    verdict, then the power statements and the managers' "kept" against the fates."""
    settings = found.config
    lines = [f"# {vocabulary.effect_words('title', lang)}", "",
             vocabulary.effect_words("intro", lang, horizon=settings.horizon_days,
                                     confidence=f"{100 * settings.confidence:g} %"), "",
             f"Decisions: {found.decisions:,}; horizon not over yet (not counted): "
             f"{found.pending:,}. Fates as of {found.now:%Y-%m-%d %H:%M} UTC.", ""]
    if not found.rows:
        return "\n".join([*lines, vocabulary.effect_words(
            "none", lang, horizon=settings.horizon_days), ""])
    lines += ["| action | segment | released | held out | churn released | churn held out | "
              "effect (points) | CI | kept CNY/yr per 100 tasks | per manager-hour | "
              "churn done / not done (biased) | verdict |",
              "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for r in found.rows:
        ci = "" if r["ci_low_pp"] is None else \
            f"{_points(r['ci_low_pp'])} to {_points(r['ci_high_pp'])}"
        lines.append(
            f"| {r['action']} | {r['segment'].replace('|', '/')} | {r['treated']:,} | "
            f"{r['held_out']:,} | {_share(r['churn_treated'])} | {_share(r['churn_held_out'])}"
            f" | {_points(r['effect_pp'])} | {ci} | {_money(r['revenue_kept_per_100_tasks'])} "
            f"| {_money(r['revenue_kept_per_hour'])} | {_share(r['churn_done'])} / "
            f"{_share(r['churn_not_done'])} | {verdict(r, settings, lang)} |")
    lines += ["", vocabulary.effect_words("biased", lang), ""]
    lines += [f"- {power_statement(r, settings, lang)}" for r in found.rows
              if r["segment"] == "all"]
    lines += [f"- {_kept_left(k, lang)}" for k in found.kept_left]
    return "\n".join([*lines, ""])


def _kept_left(row: Mapping[str, Any], lang: str) -> str:
    return vocabulary.effect_words("kept_left", lang, action=row["action"],
                                   kept=f"{row['reported_kept']:,}",
                                   left=f"{row['left_anyway']:,}",
                                   share=f"{100 * row['left_anyway_share']:.1f} %")


def publish_effects(home: Settings) -> None:
    """The ``effects`` markdown artifact of every run."""
    from prefect.artifacts import create_markdown_artifact

    with TaskStore(home.database_url) as store:
        found = read_effects(store, home.conf_dir)
    create_markdown_artifact(effects_markdown(found), key="effects",
                             description="The measured effect of each action: churn within the "
                                         "horizon, released against held out, with its interval "
                                         "and the decisions still needed")


def weekly_effects(found: MeasuredEffects, lang: str) -> dict[str, Any]:
    """The weekly email's effects section in the reader's language: the intro, one line per
    action (its overall effect or "not enough data yet") and its power statement."""
    settings: EffectsConfig = found.config
    actions = []
    for r in found.rows:
        if r["segment"] != "all":
            continue
        try:
            name = vocabulary.label("action", r["action"], lang)
        except vocabulary.UnknownLabel:
            name = r["action"]
        actions.append({"name": name, "released": f"{r['treated']:,}",
                        "held_out": f"{r['held_out']:,}", "verdict": verdict(r, settings, lang),
                        "power": power_statement(r, settings, lang)})
    return {"title": vocabulary.effect_words("title", lang),
            "intro": vocabulary.effect_words("intro", lang, horizon=settings.horizon_days,
                                             confidence=f"{100 * settings.confidence:g} %"),
            "none": vocabulary.effect_words("none", lang, horizon=settings.horizon_days),
            "actions": actions}
