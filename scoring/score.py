"""Score the customer view: value class, lifecycle stage, churn risk and its top factors.

Vectorised over the whole snapshot (no per-account Python). Returns a new frame; the input view
is never modified, so a retried task sees the same input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kamflow.core.vocabulary import codes
from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.weights import entropy_weights

if TYPE_CHECKING:  # scoring.model builds on this module's signals and levels
    from kamflow.scoring.model import ChurnModel

# The codes scoring writes, in the vocabulary's order (kamflow/core/vocabulary.py holds
# their zh and en labels).
VALUE_CLASSES = codes("value_class")
CHURN_BANDS = codes("churn_band")
LIFECYCLE_STAGES = codes("lifecycle_stage")
TOP_FACTORS = 3


RANKED = ("avg_monthly_billed", "revenue_trend", "products_held", "tenure_months",
          "payment_record", "cost_to_serve", "new_services", "employees")


@dataclass(frozen=True)
class Population:
    """What value ranks are measured against: each ranked indicator's sorted values over the
    whole snapshot, and the value weights in force (entropy weights are computed over the whole
    snapshot too). Scoring a chunk against the whole population gives exactly the scores of
    scoring everything at once, so a partitioned run equals a single-process one."""

    sorted_values: Mapping[str, np.ndarray]
    current_weights: Mapping[str, float] = field(default_factory=dict)
    potential_weights: Mapping[str, float] = field(default_factory=dict)
    # Under a learnt model: the churn_risk from which an account is in each band's top share
    # of the whole snapshot (learnt_bands), so partitions rank against everyone.
    rank_cutoffs: Mapping[str, float] = field(default_factory=dict)
    # The current and potential value scores the classes are cut at, over the whole snapshot
    # (a top-share cut depends on everyone's scores).
    class_cutoffs: Mapping[str, float] = field(default_factory=dict)


def fit_population(view: pd.DataFrame, config: ScoringConfig,
                   model: ChurnModel | None = None) -> Population:
    raw = _raw_indicators(view, config)
    population = _fit(raw, config)
    current, potential = _value_scores(raw, config, population, len(view))
    population = replace(population, class_cutoffs=class_cutoffs(
        current.round(1), potential.round(1), config))
    if model is None:
        return population
    risk = model.risk(view, config).round(1)
    return replace(population, rank_cutoffs=rank_cutoffs(risk, config))


def _fit(raw: dict[str, np.ndarray], config: ScoringConfig) -> Population:
    return Population({name: np.sort(values[~np.isnan(values)]) for name, values in raw.items()
                       if name in RANKED},
                      _group_weights(raw, config.current_weights, config.value_weights),
                      _group_weights(raw, config.potential_weights, config.value_weights))


def _group_weights(raw: dict[str, np.ndarray], configured: Mapping[str, float],
                   method: str) -> dict[str, float]:
    """The weights of one value group: as configured, or by the entropy weight method over the
    raw indicators the configuration weighs (weight > 0)."""
    if method != "entropy":
        return dict(configured)
    names = [name for name, weight in configured.items() if weight > 0]
    weights = entropy_weights(np.column_stack([raw[name] for name in names]))
    return dict(zip(names, weights.tolist(), strict=True))


def score_accounts(view: pd.DataFrame, config: ScoringConfig,
                   population: Population | None = None,
                   model: ChurnModel | None = None) -> pd.DataFrame:
    """Score ``view``; value ranks are against ``population`` (default: ``view`` itself).
    With ``model`` (learnt from a labelled history) churn_risk is its churn probability in %,
    and the top factors are the warnings that raise its odds most; otherwise churn_risk weighs
    the factors' warning levels by their configured weights."""
    scored = view.copy()
    raw = _raw_indicators(view, config)
    population = population or _fit(raw, config)
    current, potential = _value_scores(raw, config, population, len(view))
    # Classes (like bands below) are cut on the rounded scores the operator sees, so a shown
    # current_value of 50.0 is never "low" against a cut-off of 50.
    scored["current_value"] = current.round(1)
    scored["potential_value"] = potential.round(1)
    cutoffs = population.class_cutoffs or class_cutoffs(
        scored["current_value"].to_numpy(), scored["potential_value"].to_numpy(), config)
    scored["value_class"] = _value_class(scored["current_value"].to_numpy(),
                                         scored["potential_value"].to_numpy(),
                                         raw["avg_monthly_billed"], cutoffs, config)
    scored["lifecycle_stage"] = _lifecycle(view, config)
    signals = _factor_signals(view, config)
    levels = churn_levels(signals, config)
    if model is None:
        weights = np.array([f.weight for f in config.factors])
        contributions = levels * weights / weights.sum()
        risk = 100.0 * contributions.sum(axis=1)
    else:
        risk, contributions = model.rate(signals, levels, config)
    scored["churn_risk"] = risk.round(1)
    _value_at_risk(scored, raw["avg_monthly_billed"], risk, config, model)
    scored["churn_band"] = (_band(scored["churn_risk"].to_numpy(), config) if model is None
                            else learnt_band(scored["churn_risk"].to_numpy(), model.base_rate,
                                             config, population.rank_cutoffs or None))
    names = np.array([f.name for f in config.factors] + [""], dtype=object)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :TOP_FACTORS]
    top = np.take_along_axis(contributions, order, axis=1)
    # The explanation: each top factor with the signal value behind it and its warning level
    # (rules/decide.py turns them into "revenue_decline: revenue -38% (level 0.95)").
    top_signal = np.take_along_axis(signals, order, axis=1)
    top_level = np.take_along_axis(levels, order, axis=1)
    # Categorical over a fixed category list: cheap on a million rows, and partitions concat
    # back to the same dtype.
    signal_names = list(dict.fromkeys([f.signal for f in config.factors]))
    signal_codes = np.array([signal_names.index(f.signal) for f in config.factors]
                            + [len(signal_names)])
    signal_categories = [*signal_names, ""]
    for rank in range(min(TOP_FACTORS, len(config.factors))):
        # A factor that contributes nothing is not a reason, nor is one behind a risk shown as 0.
        named = (top[:, rank] > 0) & (scored["churn_risk"].to_numpy() > 0)
        index = np.where(named, order[:, rank], len(config.factors))
        scored[f"churn_factor_{rank + 1}"] = names[index]
        scored[f"churn_factor_{rank + 1}_signal"] = pd.Categorical.from_codes(
            signal_codes[index], signal_categories)
        scored[f"churn_factor_{rank + 1}_value"] = np.where(named, top_signal[:, rank], np.nan)
        scored[f"churn_factor_{rank + 1}_level"] = np.where(
            named, top_level[:, rank], np.nan).round(2)
    return scored


def churn_probability(risk: np.ndarray, config: ScoringConfig,
                      model: ChurnModel | None = None) -> np.ndarray:
    """The yearly churn probability 0..1 behind a churn risk: a learnt model's risk is its
    calibrated probability in %; the configured risk score goes through the logistic map of
    ``churn.calibration`` (scoring.calibration refits it from a labelled history)."""
    if model is not None:
        return np.clip(np.asarray(risk, dtype="float64") / 100.0, 0.0, 1.0)
    return config.calibration.probability(risk)


def _value_at_risk(scored: pd.DataFrame, monthly_billed: np.ndarray, risk: np.ndarray,
                   config: ScoringConfig, model: ChurnModel | None) -> None:
    """monthly_revenue (CNY/month, the average monthly bill), churn_probability (0..1, yearly)
    and value_at_risk = monthly_revenue x churn_probability (CNY/month; x 12 a year). From the
    unrounded risk: a learnt model's 0.04 % is not 0."""
    revenue = np.nan_to_num(np.asarray(monthly_billed, dtype="float64"), nan=0.0)
    probability = churn_probability(risk, config, model)
    scored["monthly_revenue"] = revenue.round(2)
    scored["churn_probability"] = probability.round(6)
    scored["value_at_risk"] = (revenue * probability).round(2)


def _rank(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Percentile rank 0..1 within the population (ties share their average rank, as pandas'
    ``rank(pct=True)``): robust to heavy tails and outliers. Missing values rank 0."""
    n = len(population)
    if n <= 1:
        return np.full(len(values), 0.5)
    # Binary search with the queries in order walks the population once, cache-friendly:
    # several times faster than searching in account order on a million accounts.
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    below = np.searchsorted(population, ordered, side="left")
    at_or_below = np.searchsorted(population, ordered, side="right")
    ranks = np.empty(len(values))
    ranks[order] = (below + at_or_below + 1) / 2.0 / n
    return np.where(np.isnan(values), 0.0, ranks)


def _raw_indicators(view: pd.DataFrame, config: ScoringConfig) -> dict[str, np.ndarray]:
    """Each indicator oriented so that higher is more valuable (before ranking)."""
    revenue = view["avg_monthly_billed"].to_numpy(dtype="float64")
    cost_share = np.where(revenue > 0, view["cost_to_serve"].to_numpy(dtype="float64")
                          / np.maximum(revenue, 1e-9), np.inf)
    strategic = view["industry"].map(dict(config.strategic_industry)).fillna(0.0)
    return {
        "avg_monthly_billed": revenue,
        "revenue_trend": view["revenue_trend"].to_numpy(dtype="float64"),
        "products_held": view["products_held"].to_numpy(dtype="float64"),
        "tenure_months": view["tenure_months"].to_numpy(dtype="float64"),
        "payment_record": -view["arrears_ratio"].to_numpy(dtype="float64"),
        "cost_to_serve": -cost_share,
        "new_services": view["new_services"].to_numpy(dtype="float64"),
        "employees": view["employees"].to_numpy(dtype="float64"),
        "strategic_industry": strategic.to_numpy(dtype="float64"),
    }


def _indicators(raw: dict[str, np.ndarray], population: Population) -> dict[str, np.ndarray]:
    return {name: _rank(values, population.sorted_values[name]) if name in RANKED else values
            for name, values in raw.items()}


def _weighted(indicators: dict[str, np.ndarray], weights: dict[str, float], n: int) -> np.ndarray:
    total = sum(weights.values())
    score = np.zeros(n)
    for name, weight in weights.items():
        score += weight * indicators[name]
    return 100.0 * score / total


def _value_scores(raw: dict[str, np.ndarray], config: ScoringConfig, population: Population,
                  n: int) -> tuple[np.ndarray, np.ndarray]:
    indicators = _indicators(raw, population)
    return (_weighted(indicators, dict(population.current_weights or config.current_weights), n),
            _weighted(indicators, dict(population.potential_weights or config.potential_weights),
                      n))


def class_cutoffs(current: np.ndarray, potential: np.ndarray,
                  config: ScoringConfig) -> dict[str, float]:
    """The score each value dimension is cut at: the configured score, or for a top share the
    score of the last account in that share (ties at the cut all in; none in for a share below
    one account). A CNY cut on the monthly bill needs no score cut-off."""
    cutoffs = {}
    for name, cut, scores in (("current", config.current_cut, current),
                              ("potential", config.potential_cut, potential)):
        if cut.by == "score":
            cutoffs[name] = cut.value
        elif cut.by == "top_share":
            top = int(np.floor(cut.value * len(scores) + 1e-9))
            cutoffs[name] = (float(np.partition(scores, len(scores) - top)[len(scores) - top])
                             if top > 0 else np.inf)
    return cutoffs


def _value_class(current: np.ndarray, potential: np.ndarray, monthly_billed: np.ndarray,
                 cutoffs: Mapping[str, float], config: ScoringConfig) -> np.ndarray:
    high_current = (monthly_billed >= config.current_cut.value
                    if config.current_cut.by == "monthly_cny" else current >= cutoffs["current"])
    high_potential = potential >= cutoffs["potential"]
    return np.select(
        [high_current & high_potential, high_current, high_potential],
        ["high", "secondary", "potential"], default="low").astype(object)


def _lifecycle(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    tenure = view["tenure_months"].to_numpy()
    trend = view["revenue_trend"].to_numpy()
    return np.select(
        [trend <= config.decline_trend,
         tenure < config.identification_months,
         (tenure < config.development_months) & (trend > config.growth_trend)],
        ["decline", "identification", "development"], default="stable").astype(object)


# Signals a view may lack (built before they existed, or by hand): missing, so their factors
# stay silent (a NaN signal raises no warning).
OPTIONAL_SIGNALS = ("relationship_months", "commitment_months", "competitor_complaints",
                    "revenue_volatility")


def churn_signals(view: pd.DataFrame) -> dict[str, np.ndarray]:
    """The raw signal behind each churn factor (revenue decline is the negated trend)."""
    signals = {name: view[name].to_numpy(dtype="float64") for name in (
        "complaints_90d", "sla_breaches_90d", "outage_hours_90d", "days_to_contract_end",
        "arrears_ratio", "days_since_contact")}
    signals["revenue_decline"] = -view["revenue_trend"].to_numpy(dtype="float64")
    for name in OPTIONAL_SIGNALS:
        signals[name] = (view[name].to_numpy(dtype="float64") if name in view
                         else np.full(len(view), np.nan))
    return signals


def _factor_signals(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """The signal behind each configured factor: accounts × factors."""
    signals = churn_signals(view)
    return np.column_stack([signals[f.signal] for f in config.factors])


def churn_levels(signals: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """Warning level 0..1 per account and factor: a linear ramp from `start` to `full`."""
    levels = np.empty(signals.shape)
    for i, factor in enumerate(config.factors):
        ramp = (signals[:, i] - factor.start) / (factor.full - factor.start)
        levels[:, i] = np.clip(np.nan_to_num(ramp, nan=0.0), 0.0, 1.0)
    return levels


def factor_levels(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """Each account's warning level per configured factor (accounts × factors), e.g. to weigh
    the factors by information gain against known outcomes."""
    return churn_levels(_factor_signals(view, config), config)


def _band(risk: np.ndarray, config: ScoringConfig) -> np.ndarray:
    return np.select(
        [risk >= config.band_critical, risk >= config.band_high, risk >= config.band_medium],
        ["critical", "high", "medium"], default="low").astype(object)


def rank_cutoffs(risk: np.ndarray, config: ScoringConfig) -> dict[str, float]:
    """Per band, the churn_risk of the last account in its ``top_share`` of ``risk`` (floor of
    share × accounts; absent when that is no account)."""
    bands = config.learnt_bands
    order = np.sort(risk)[::-1]
    cutoffs = {}
    for band, share in (("critical", bands.critical_top_share), ("high", bands.high_top_share),
                        ("medium", bands.medium_top_share)):
        top = int(np.floor(share * len(risk) + 1e-9))
        if top > 0:
            cutoffs[band] = float(order[top - 1])
    return cutoffs


def learnt_band(risk: np.ndarray, base_rate: float, config: ScoringConfig,
                cutoffs: Mapping[str, float] | None = None) -> np.ndarray:
    """Bands for a calibrated churn probability (``risk`` in %): a band from ``multiple`` × the
    base churn rate (capped at the fixed cut-off, so a high base rate keeps the fixed bands), or
    for the ``top_share`` riskiest accounts (ties at the cut all in; ranked within ``risk``
    unless the whole snapshot's ``cutoffs`` are given), so a portfolio with 1 % churn still
    yields a worklist."""
    bands = config.learnt_bands
    cutoffs = rank_cutoffs(risk, config) if cutoffs is None else cutoffs

    def reached(band: str, multiple: float, fixed: float) -> np.ndarray:
        cutoff = min(multiple * base_rate * 100.0, fixed, cutoffs.get(band, np.inf))
        return risk >= cutoff

    return np.select(
        [reached("critical", bands.critical_multiple, config.band_critical),
         reached("high", bands.high_multiple, config.band_high),
         reached("medium", bands.medium_multiple, config.band_medium)],
        ["critical", "high", "medium"], default="low").astype(object)
