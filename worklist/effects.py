"""The measured effect of each action: decisions joined to the account's fate, released against
held out. Pure: no database (the store reads the rows, worklist/kpis.py ``decision_rows``).

A decision is a task (released to its owner) or a held-out decision (status ``held_out``: the
randomised control group, no task, no email). Each is joined to what the later snapshots show
within a horizon after its business date (``created_at``, the run's snapshot date once runs key
on it): the account stayed, left (the roster's ``lost_at``, and when) or lost most of its
revenue (partial churn, as ``kamflow report`` defines it: monthly revenue at the horizon's end
below ``1 - revenue_fall`` of that at the decision, from the revenue history). A decision whose
horizon has not ended by the last snapshot, and whose account has not left, is ``pending`` and
counts in neither group yet (counting it as "stayed" would shrink both churn shares).

The headline is intent to treat: churn within the horizon of the accounts whose task was
released against those held out, per action, overall and by value class and by reason (the rule
that fired). The treated arm is every decision not held out, queued and withdrawn ones too
(intent to treat): capacity releases the best-ranked decisions first, so counting only the
released would compare a chosen subset with a random control group. ``effect_pp`` = held-out
churn − treated churn, in percentage points: positive
keeps customers. The interval is statsmodels' two-sample interval for a difference of
proportions (Newcombe's hybrid score by default: it holds with few events, unlike Wald). Done
against not done among the released is shown too, labelled biased: the accounts a manager
reaches are not like the ones they do not.

Regions and periods are pooled (one difference over all decisions of an action): the holdout is
a hash per account, action and period, so each stratum is randomised alike and pooling
estimates the same average effect with the narrowest interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kamflow.core import vocabulary

__all__ = ["DEFAULT_EFFORT_HOURS", "FATES", "HELD_OUT", "EffectsConfig", "MeasuredEffects",
           "decision_fates", "effects_report", "json_rows", "measure", "needed_decisions",
           "power_statement", "reported_vs_fate", "size_experiment", "sizing_statement",
           "verdict", "volume_rows"]

HELD_OUT = "held_out"  # the holdout's status (a decision stored without a task)
FATES = ("stayed", "left", "partial", "pending")
DAYS_PER_MONTH = 365.25 / 12
# Hours of a manager's time per task, until tasks record their minutes (the outcomes' minutes
# replace these where recorded). Assumptions, from the domain notes' description of each action.
DEFAULT_EFFORT_HOURS = {"care_call": 0.5, "renewal_talk": 1.0, "tailored_offer": 1.5,
                        "experience_offer": 1.0, "manager_visit": 3.0, "vip_service": 2.0,
                        "account_plan_review": 2.0, "payment_reminder": 0.25,
                        "new_service_pitch": 1.0, "sla_review": 1.0,
                        "complaint_follow_up": 1.0, "escalate_to_key_account": 2.0}


@dataclass(frozen=True)
class EffectsConfig:
    """conf/experiment.yaml (docs/configuration.md)."""

    horizon_days: int = 90  # a decision's fate: what the snapshots show this long after it
    confidence: float = 0.95  # of the interval on each effect
    ci_width_pp: float = 2.0  # an effect is known once its interval is this narrow (±1 point)
    method: str = "newcomb"  # statsmodels confint_proportions_2indep: newcomb or score
    # the holdout share assumed for an action with no held-out decision yet (power statement)
    holdout_share: float = 0.05
    effort_hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EFFORT_HOURS))
    default_effort_hours: float = 1.0  # an action not in effort_hours
    revenue_fall: float = 0.5  # partial churn (conf/department.yaml partial_churn.revenue_fall)
    # Sizing the holdout (``size_experiment``): an effect should be known within this many
    # months of the first decision, the horizon included; a known effect's share drops to the
    # maintenance level (never zero: drift must stay visible); no share above max_share.
    within_months: float = 12.0
    maintenance_share: float = 0.02
    max_share: float = 0.2
    # yearly churn assumed of an action's accounts while none of its decisions has a known fate
    baseline_churn_yearly: float = 0.03

    def hours(self, action: str) -> float:
        return float(self.effort_hours.get(action, self.default_effort_hours))


@dataclass(frozen=True)
class MeasuredEffects:
    now: pd.Timestamp  # the last snapshot the fates are read from
    config: EffectsConfig
    rows: list[dict[str, Any]]  # effects_report
    kept_left: list[dict[str, Any]]  # reported_vs_fate
    decisions: int  # of the period (every status)
    pending: int  # of which the horizon is not over yet: not counted


def measure(decisions: pd.DataFrame, roster: pd.DataFrame, revenue: pd.DataFrame | None,
            now: Any, config: EffectsConfig | None = None,
            volume: pd.DataFrame | None = None) -> MeasuredEffects:
    """The effects report of ``decisions`` (KpiStore.decision_rows) against the roster and the
    revenue history as the snapshots up to ``now`` show them. ``volume`` (KpiStore
    decision_volume) counts every decision of the period when ``decisions`` holds only those
    whose horizon is over (the store reads no more: 90 days of a national department's
    decisions are 5M rows, nearly all still pending)."""
    config = config or EffectsConfig()
    fates = decision_fates(decisions, roster, revenue, _utc(now), config.horizon_days,
                           config.revenue_fall)
    volume = volume_rows(fates) if volume is None else volume
    total = int(volume["decisions"].sum()) if len(volume) else 0
    matured = int(fates["matured"].sum()) if len(fates) else 0
    return MeasuredEffects(_utc(now), config, effects_report(fates, now, config, volume),
                           reported_vs_fate(fates), total, total - matured)


def decision_fates(decisions: pd.DataFrame, roster: pd.DataFrame,
                   revenue: pd.DataFrame | None, now: pd.Timestamp,
                   horizon_days: int = 90, revenue_fall: float = 0.5) -> pd.DataFrame:
    """Each decision (``account_id``, ``created_at``: its business date, UTC; any other
    columns are kept) with its fate within ``horizon_days`` as the snapshots up to ``now``
    show it: ``fate`` (stayed, left, partial, pending; a categorical), ``matured`` (its
    horizon is over: only those count), ``lost_at`` (when it left, within the horizon),
    ``monthly_revenue`` at the decision and ``revenue_lost_yearly`` (CNY a year: all of it
    for an account that left, the fall for partial churn, else 0). The account's
    ``value_class`` and ``region`` come from the roster (as last seen) unless the decision
    carries them. Vectorised: the account ids are hashed once (roster, decisions and revenue
    history together), the revenue history searched once for every time asked."""
    now_ns = _utc(now).value
    out = decisions.reset_index(drop=True)
    out["created_at"] = pd.to_datetime(out["created_at"], utc=True)
    roster = roster.drop_duplicates("account_id", keep="last").reset_index(drop=True)
    has_revenue = revenue is not None and not revenue.empty
    parts = [roster["account_id"], out["account_id"]]
    if revenue is not None and has_revenue:
        parts.append(revenue["account_id"])
    codes, _ = pd.factorize(pd.concat([p.astype("str") for p in parts], ignore_index=True))
    size = len(roster)  # the roster's ids are unique and first: roster row i has code i
    at = codes[size:size + len(out)]
    at = np.where(at < size, at, -1)  # -1: not on the roster
    found = at >= 0
    decided = _ns(out["created_at"])
    end = decided + horizon_days * 86_400 * 10**9
    lost = _take(_ns(roster["lost_at"]), at, _NAT)
    for column in ("value_class", "region"):
        if column in roster:
            known = pd.Series(roster[column].to_numpy(dtype=object)[np.where(found, at, 0)],
                              index=out.index).where(found)
            out[column] = out[column].where(out[column].notna(), known) \
                if column in out else known
    left = (lost != _NAT) & (lost > decided) & (lost <= end) & (lost <= now_ns)
    matured = end <= now_ns
    last_seen = _take(roster["monthly_revenue"].astype("float64").to_numpy()
                      if "monthly_revenue" in roster else np.full(size, np.nan), at, np.nan)
    if revenue is not None and has_revenue:
        history = codes[size + len(out):]
        both = _revenue_at(history, _ns(revenue["at"]),
                           revenue["monthly_revenue"].astype("float64").to_numpy(),
                           np.concatenate([at, at]), np.concatenate([decided, end]))
        then, later = both[:len(out)], both[len(out):]
    else:
        then = later = np.full(len(out), np.nan)
    then = np.where(np.isnan(then), last_seen, then)
    later = np.where(np.isnan(later), last_seen, later)
    with np.errstate(invalid="ignore"):
        partial = ~left & matured & (then > 0) & (later < (1 - revenue_fall) * then)
    fate = np.select([left, partial, ~matured], [1, 2, 3], 0)  # FATES' positions
    out["fate"] = pd.Categorical.from_codes(fate, FATES)
    # counted once the horizon is over: a recent decision whose account left already is
    # "left", but its arm's stayed ones are still pending, so it would count churn too high
    out["matured"] = matured
    out["lost_at"] = pd.to_datetime(np.where(left, lost, _NAT), utc=True)
    out["monthly_revenue"] = then
    out["revenue_lost_yearly"] = 12 * np.where(left, np.nan_to_num(then),
                                               np.where(partial, np.nan_to_num(then - later),
                                                        0.0))
    return out


_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def _ns(times: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds (NaT as _NAT), without a Timestamp per value."""
    values = pd.to_datetime(times, utc=True)
    return values.dt.tz_convert(None).to_numpy("datetime64[ns]").view("int64")


def _take(values: np.ndarray, at: np.ndarray, missing: Any) -> np.ndarray:
    """``values[at]``, ``missing`` where ``at`` is -1 (not found)."""
    if len(values) == 0:
        return np.full(len(at), missing)
    return np.where(at >= 0, values[np.where(at >= 0, at, 0)], missing)


def _revenue_at(accounts: np.ndarray, times: np.ndarray, amounts: np.ndarray,
                at: np.ndarray, when: np.ndarray) -> np.ndarray:
    """The monthly revenue of each account code ``at`` at time ``when`` (ns) in the revenue
    history (``accounts``, ``times``, ``amounts``): its last row at or before then (NaN where
    none). The history sorted once by (account, second), the questions sorted likewise and
    answered by one binary search (sorted questions keep it in cache)."""
    if len(at) == 0 or len(times) == 0:  # no decision, or no history to look in
        return np.full(len(at), np.nan)
    base = min(int(times.min()), int(when.min()))
    key = accounts.astype(np.int64) * (1 << 32) + (times - base) // 10**9
    order = np.argsort(key, kind="stable")
    key, amounts, owner = key[order], amounts[order], accounts[order]
    query = at.astype(np.int64) * (1 << 32) + (when - base) // 10**9
    asked = np.argsort(query)
    last = np.empty(len(query), dtype=np.int64)
    last[asked] = np.searchsorted(key, query[asked], side="right") - 1
    safe = np.clip(last, 0, None)
    hit = (at >= 0) & (last >= 0) & (owner[safe] == at)
    return np.where(hit, amounts[safe], np.nan)


def effects_report(fates: pd.DataFrame, now: pd.Timestamp,
                   config: EffectsConfig | None = None,
                   volume: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """One row per (action, segment): segment ``all``, ``class:<value class>`` and
    ``reason:<rule id>``. Decisions assigned the task (``treated``: every status but held out,
    queued and withdrawn ones too: intent to treat) against ``held_out`` ones, whose fate is
    known (not pending): counts, churn
    within the horizon in each, ``effect_pp`` with its interval, whether it is ``known``
    (interval no wider than ``ci_width_pp``), the decisions ``needed`` for that and how many
    more; partial churn in each group; revenue kept per 100 tasks and per manager-hour; done
    against not done (biased); for the ``all`` rows, the power statement's volume, share and
    months, from ``volume`` (volume_rows; default: that of ``fates``, which then must hold
    every decision, pending ones too). Counted with one bincount per measure over integer
    group codes."""
    config = config or EffectsConfig()
    now = _utc(now)
    volume_of = _volume(volume_rows(fates) if volume is None else volume, now, config)
    rows = [] if fates.empty else _measured_rows(fates, volume_of, config)
    seen = {r["action"] for r in rows}
    rows += [_effect_row(a, "all", None, v, config) for a, v in volume_of.items() if a not in seen]
    return sorted(rows, key=lambda r: (r["action"], _segment_order(r["segment"])))


def _measured_rows(fates: pd.DataFrame, volume: Mapping[str, Mapping[str, float]],
                   config: EffectsConfig) -> list[dict[str, Any]]:
    codes, names = pd.factorize(fates["status"].astype("str"))  # a few codes, not M strings
    names = np.asarray(names, dtype=object)
    kind = np.where(names == HELD_OUT, 1, 0)  # intent to treat: queued, withdrawn are treated
    arm, done = kind[codes], (names == "done")[codes]
    fate_of = pd.Categorical(fates["fate"], categories=FATES).codes
    fate = np.asarray(FATES, dtype=object)[fate_of]
    matured = fates["matured"].to_numpy(dtype=bool) if "matured" in fates else fate != "pending"
    counted = matured & (arm >= 0)
    actions, action_names = pd.factorize(fates["action"].astype("str"))
    left = fate_of == FATES.index("left")
    minutes = (fates["minutes"].astype("float64").to_numpy() if "minutes" in fates
               else np.full(len(fates), np.nan))
    measures = {"n": np.ones(len(fates)), "left": left,
                "partial": fate_of == FATES.index("partial"),
                "revenue_lost": np.nan_to_num(fates["revenue_lost_yearly"].astype("float64")
                                              .to_numpy()),
                "done": done, "done_left": done & left, "undone": ~done,
                "undone_left": ~done & left, "timed": ~np.isnan(minutes),
                "minutes": np.nan_to_num(minutes)}
    segments: list[tuple[str, np.ndarray, Any]] = [("all", np.zeros(len(fates), np.int64),
                                                     ["all"])]
    for column, prefix in (("value_class", "class:"), ("rule_id", "reason:")):
        if column in fates:
            codes, names = pd.factorize(fates[column], use_na_sentinel=False)
            labels = [prefix + ("(unknown)" if pd.isna(n) else str(n)) for n in names]
        else:
            codes, labels = np.zeros(len(fates), np.int64), [prefix + "(unknown)"]
        segments.append((prefix, codes, labels))
    rows: list[dict[str, Any]] = []
    by_action: dict[int, list[dict[str, Any]]] = {a: [] for a in range(len(action_names))}
    for _, codes, names in segments:
        size = len(names)
        key = (actions * size + codes)[counted] * 2 + arm[counted]
        length = 2 * size * len(action_names)
        sums = {name: np.bincount(key, weights=np.asarray(m, dtype="float64")[counted],
                                  minlength=length).reshape(-1, 2)
                for name, m in measures.items()}
        present = sums["n"].sum(axis=1) > 0
        for group in np.flatnonzero(present):
            action, segment = divmod(int(group), size)
            got = {f"{name}_{arm_name}": float(s[group, i]) for name, s in sums.items()
                   for i, arm_name in enumerate(("treated", "held_out"))}
            by_action[action].append(_effect_row(
                str(action_names[action]), names[segment], got,
                volume.get(str(action_names[action])), config))
    for action in sorted(by_action, key=lambda a: str(action_names[a])):
        found = sorted(by_action[action], key=lambda r: _segment_order(r["segment"]))
        if not found or found[0]["segment"] != "all":  # decided, nothing known yet
            found.insert(0, _effect_row(str(action_names[action]), "all", None,
                                        volume.get(str(action_names[action])), config))
        rows += found
    return rows


def _segment_order(segment: str) -> tuple[int, str]:
    return (0 if segment == "all" else 1 if segment.startswith("class:") else 2, segment)


def volume_rows(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per action and status: ``decisions`` and the ``first_at`` of them (what the store's
    decision_volume reads in SQL), for the power statement's volume and holdout share, and the
    sum and count of their appraised net revenue kept a year (``worth_sum``, ``worth_n``), for
    what holding one out costs."""
    if decisions.empty:
        return pd.DataFrame(columns=["action", "status", "decisions", "first_at", "worth_sum",
                                     "worth_n"])
    worth = (decisions["expected_retained_cny_yearly"].astype("float64")
             if "expected_retained_cny_yearly" in decisions
             else pd.Series(np.nan, index=decisions.index))
    return (decisions.assign(action=decisions["action"].astype(str),
                             status=decisions["status"].astype(str), worth=worth)
            .groupby(["action", "status"], as_index=False)
            .agg(decisions=("created_at", "size"), first_at=("created_at", "min"),
                 worth_sum=("worth", "sum"), worth_n=("worth", "count")))


def _volume(volume: pd.DataFrame, now: pd.Timestamp,
            config: EffectsConfig) -> dict[str, dict[str, float]]:
    """Per action: decisions a month (every status, pending ones too, over the days since its
    first decision), the share held out (the configured one while none is) and the
    mean appraised net revenue kept a year per decision (None before tasks carried it)."""
    out = {}
    for action, rows in volume.groupby("action"):
        total = int(rows["decisions"].sum())
        held = int(rows.loc[rows["status"] == HELD_OUT, "decisions"].sum())
        first = _utc(pd.to_datetime(rows["first_at"], utc=True).min())
        days = max((now - first).total_seconds() / 86_400, 1.0)
        worth_n = float(rows["worth_n"].sum()) if "worth_n" in rows else 0.0
        out[str(action)] = {"per_month": total / days * DAYS_PER_MONTH,
                            "share": held / total if held else config.holdout_share,
                            "measured_share": bool(held), "decisions": total,
                            "worth_per_decision": float(rows["worth_sum"].sum()) / worth_n
                            if worth_n else None}
    return out


def needed_decisions(churn: float, holdout_share: float, width_pp: float,
                     confidence: float = 0.95) -> int:
    """Decisions (released and held out together, at ``holdout_share`` held out) for an
    interval on the difference of churn no wider than ``width_pp`` points, at a churn of
    about ``churn`` in each group: the sample at which a difference of half that width is
    detected with power 0.5 (statsmodels NormalIndPower, Cohen's h), i.e. the interval's
    half-width."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    half = width_pp / 200  # the interval's half-width, as a share
    low = min(max(churn - half / 2, 0.0), 1 - half)  # a difference of ``half`` around churn
    effect = float(proportion_effectsize(low + half, low))
    ratio = (1 - holdout_share) / holdout_share  # released per held out
    held = NormalIndPower().solve_power(effect_size=effect, nobs1=None, alpha=1 - confidence,
                                        power=0.5, ratio=ratio, alternative="two-sided")
    return int(math.ceil(float(np.asarray(held).item()) * (1 + ratio)))


def _effect_row(action: str, segment: str, got: Mapping[str, float] | None,
                volume: Mapping[str, float] | None, config: EffectsConfig) -> dict[str, Any]:
    from statsmodels.stats.proportion import confint_proportions_2indep

    def value(name: str) -> float:
        return 0.0 if got is None else float(got.get(name, 0.0))

    treated, held = int(value("n_treated")), int(value("n_held_out"))
    left_t, left_h = int(value("left_treated")), int(value("left_held_out"))
    churn_t = left_t / treated if treated else None
    churn_h = left_h / held if held else None
    effect = low = high = None
    if churn_t is not None and churn_h is not None:
        effect = 100 * (churn_h - churn_t)
        ci = confint_proportions_2indep(left_h, held, left_t, treated, method=config.method,
                                        compare="diff", alpha=1 - config.confidence)
        low, high = 100 * float(ci[0]), 100 * float(ci[1])
    known = low is not None and high is not None and high - low <= config.ci_width_pp + 1e-12
    share = (held / (held + treated) if treated and held
             else (volume or {}).get("share", config.holdout_share))
    pooled = (left_t + left_h) / (treated + held) if treated + held else 0.0
    needed = needed_decisions(pooled, min(max(share, 1e-4), 0.5), config.ci_width_pp,
                              config.confidence)
    timed = value("timed_treated")
    hours = (value("minutes_treated") / 60 / timed if timed else config.hours(action))
    kept_per_task = (value("revenue_lost_held_out") / held - value("revenue_lost_treated")
                     / treated) if treated and held else None
    done, undone = value("done_treated"), value("undone_treated")
    row: dict[str, Any] = {
        "action": action, "segment": segment, "treated": treated, "held_out": held,
        "churn_treated": churn_t, "churn_held_out": churn_h, "effect_pp": effect,
        "ci_low_pp": low, "ci_high_pp": high, "known": bool(known),
        "needed": needed, "more_needed": max(needed - treated - held, 0),
        "partial_treated": value("partial_treated") / treated if treated else None,
        "partial_held_out": value("partial_held_out") / held if held else None,
        "revenue_kept_per_100_tasks": None if kept_per_task is None else 100 * kept_per_task,
        "hours_per_task": hours, "hours_from": "recorded minutes" if timed else "configured",
        "revenue_kept_per_hour": None if kept_per_task is None or not hours
        else kept_per_task / hours,
        "churn_done": value("done_left_treated") / done if done else None,
        "churn_not_done": value("undone_left_treated") / undone if undone else None,
    }
    if segment == "all" and volume:
        per_month = volume["per_month"]
        months = needed / per_month if per_month else math.inf
        row.update({"decisions_per_month": per_month, "holdout_share": volume["share"],
                    "holdout_share_measured": volume["measured_share"],
                    "months_needed": months + config.horizon_days / DAYS_PER_MONTH,
                    "worth_per_decision": volume.get("worth_per_decision")})
    return row


JSON_KEYS = ("action", "segment", "treated", "held_out", "churn_treated", "churn_held_out",
             "effect_pp", "ci_low_pp", "ci_high_pp", "known")


def json_rows(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{"effects": [...]}`` with exactly the documented keys of each row (tools read it)."""
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return {"effects": [{k: clean(row[k]) for k in JSON_KEYS} for row in rows]}


def reported_vs_fate(fates: pd.DataFrame, kept_codes: tuple[str, ...] = ("renewed",)
                     ) -> list[dict[str, Any]]:
    """Per action, the released decisions whose manager recorded an outcome in ``kept_codes``
    (column ``outcome``; conf/outcomes.yaml's ``renewed``: renewed or kept) and whose fate is
    known: how many, and how many of those accounts left within the horizon anyway. Empty while
    tasks carry no outcome."""
    if "outcome" not in fates or fates.empty:
        return []
    kept = fates.loc[fates["outcome"].isin(kept_codes) & fates["matured"]]
    if kept.empty:
        return []
    counts = kept.assign(left=kept["fate"].eq("left")).groupby("action")["left"].agg(
        ["size", "sum"])
    return [{"action": str(a), "reported_kept": int(r["size"]), "left_anyway": int(r["sum"]),
             "left_anyway_share": float(r["sum"]) / float(r["size"])}
            for a, r in counts.iterrows()]


def _utc(when: Any) -> pd.Timestamp:
    at = pd.Timestamp(when)
    return at.tz_convert("UTC") if at.tzinfo else at.tz_localize("UTC")


def _points(value: float) -> str:
    return f"{value:+.2f}"


def verdict(row: Mapping[str, Any], config: EffectsConfig, lang: str = "en") -> str:
    """The effect of a row in words: known with its interval, or not enough data yet and the
    decisions still needed."""
    if row["ci_low_pp"] is None:
        return vocabulary.effect_words("no_holdout", lang, more=f"{row['more_needed']:,}")
    values = {"effect": _points(row["effect_pp"]), "low": _points(row["ci_low_pp"]),
              "high": _points(row["ci_high_pp"]), "width": f"{config.ci_width_pp:g}",
              "more": f"{row['more_needed']:,}"}
    return vocabulary.effect_words("known" if row["known"] else "not_enough", lang, **values)


def power_statement(row: Mapping[str, Any], config: EffectsConfig, lang: str = "en") -> str:
    """For an action's ``all`` row: how many decisions and months its effect needs to be known
    within ±half the configured width, at its volume and holdout share."""
    try:
        action = vocabulary.label("action", row["action"], lang)
    except vocabulary.UnknownLabel:
        action = row["action"]
    months = row.get("months_needed", math.inf)
    text = vocabulary.effect_words(
        "power", lang, action=action, per_month=f"{row.get('decisions_per_month', 0):,.0f}",
        share=f"{100 * row.get('holdout_share', config.holdout_share):.1f} %",
        needed=f"{row['needed']:,}", half=f"{config.ci_width_pp / 2:g}",
        months="∞" if not math.isfinite(months) else f"{months:,.1f}",
        horizon=config.horizon_days)
    if not math.isfinite(months) or months > 12:
        text += " " + vocabulary.effect_words("power_year", lang)
    return text


SIZING_STEP = 0.005  # the shares tried: the maintenance level, then every half point


def size_experiment(rows: list[dict[str, Any]], config: EffectsConfig,
                    configured: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Per action under way (its ``all`` row of ``effects_report`` with a volume) that may be
    held out (``configured``: those actions and their share in rules/actions.yaml; None: every
    action, at the share measured or assumed), the holdout share to configure and its cost:

    - ``known``: the interval is already no wider than ``ci_width_pp``: drop to
      ``maintenance_share`` (never zero, so drift stays visible);
    - ``sized``: the smallest share, from the maintenance level up to ``max_share``, at which
      the decisions of ``within_months`` (less the horizon, which every decision waits out)
      make the interval that narrow (``needed_decisions``: a power calculation at the action's
      churn, the measured one or ``baseline_churn_yearly`` over the horizon);
    - ``too_rare``: not even ``max_share`` gets there in time: ``max_share``, and the months it
      takes then (pool regions and periods, or accept a wider interval).

    The cost is the control group's expected net revenue kept a year that is given up: held-out
    decisions a quarter × the net revenue a released decision keeps (the measured one once
    known, else the appraisal's, ``worth_per_decision``; None when neither is there)."""
    horizon_months = config.horizon_days / DAYS_PER_MONTH
    accrual = config.within_months - horizon_months
    base = 1 - (1 - config.baseline_churn_yearly) ** (config.horizon_days / 365.25)
    plan = []
    for row in rows:
        if row["segment"] != "all" or not row.get("decisions_per_month"):
            continue
        if configured is not None and row["action"] not in configured:
            continue  # a promise, the department's or urgent: never held out
        per_month = float(row["decisions_per_month"])
        counted = row["treated"] + row["held_out"]
        churn = ((row["churn_treated"] or 0) * row["treated"]
                 + (row["churn_held_out"] or 0) * row["held_out"]) / counted \
            if counted else base
        churn = churn if churn > 0 else base  # no one left yet: a zero rate sizes nothing

        def needed(share: float, churn: float = churn) -> int:
            return needed_decisions(churn, share, config.ci_width_pp, config.confidence)

        available = per_month * max(accrual, 0.0)
        if row["known"]:
            status, share = "known", config.maintenance_share
        else:
            shares = np.arange(config.maintenance_share, config.max_share + 1e-9, SIZING_STEP)
            fits = [float(s) for s in shares if needed(float(s)) <= available]
            status, share = ("sized", fits[0]) if fits else ("too_rare", config.max_share)
        months = needed(share) / per_month + horizon_months
        measured = row["known"] and row.get("revenue_kept_per_100_tasks") is not None
        per_decision = (row["revenue_kept_per_100_tasks"] / 100 if measured
                        else row.get("worth_per_decision"))
        held_quarter = per_month * 3 * share
        plan.append({
            "action": row["action"], "status": status, "decisions_per_month": per_month,
            "churn_horizon": churn,
            "share_configured": None if configured is None else configured[row["action"]],
            "share_measured": row.get("holdout_share") if row.get("holdout_share_measured")
            else None,
            "recommended_share": share, "needed": needed(share),
            "months_to_known": None if row["known"] else months,
            "held_out_per_quarter": held_quarter,
            "net_kept_per_decision_cny_yearly": per_decision,
            "worth_from": "measured" if measured else
            ("appraised" if per_decision is not None else None),
            "cost_per_quarter_cny_yearly": None if per_decision is None
            else held_quarter * max(per_decision, 0.0)})
    return plan


def sizing_statement(row: Mapping[str, Any], config: EffectsConfig, lang: str = "en") -> str:
    """One action's sizing in words: the share to configure, why, and what it costs."""
    try:
        action = vocabulary.label("action", row["action"], lang)
    except vocabulary.UnknownLabel:
        action = row["action"]
    cost = row["cost_per_quarter_cny_yearly"]
    months = row["months_to_known"]
    return vocabulary.effect_words(
        f"sizing_{row['status']}", lang, action=action,
        share=f"{100 * row['recommended_share']:.1f} %",
        maintenance=f"{100 * config.maintenance_share:.1f} %",
        within=f"{config.within_months:g}", half=f"{config.ci_width_pp / 2:g}",
        months="" if months is None else f"{months:,.1f}",
        held=f"{row['held_out_per_quarter']:,.0f}",
        cost="?" if cost is None else f"{cost:,.0f}")
