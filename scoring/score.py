"""Score the customer view: value class, lifecycle stage, churn risk and its top factors.

Vectorised over the whole snapshot (no per-account Python). Returns a new frame; the input view
is never modified, so a retried task sees the same input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoring.config import ScoringConfig

VALUE_CLASSES = ("high", "secondary", "potential", "low")
CHURN_BANDS = ("low", "medium", "high", "critical")
LIFECYCLE_STAGES = ("identification", "development", "stable", "decline")
TOP_FACTORS = 3


RANKED = ("avg_monthly_billed", "revenue_trend", "products_held", "tenure_months",
          "payment_record", "cost_to_serve", "new_services", "employees")


@dataclass(frozen=True)
class Population:
    """What value ranks are measured against: each ranked indicator's sorted values over the
    whole snapshot. Scoring a chunk against the whole population gives exactly the ranks of
    scoring everything at once, so a partitioned run equals a single-process one."""

    sorted_values: Mapping[str, np.ndarray]


def fit_population(view: pd.DataFrame, config: ScoringConfig) -> Population:
    raw = _raw_indicators(view, config)
    return Population({name: np.sort(values[~np.isnan(values)]) for name, values in raw.items()
                       if name in RANKED})


def score_accounts(view: pd.DataFrame, config: ScoringConfig,
                   population: Population | None = None) -> pd.DataFrame:
    """Score ``view``; value ranks are against ``population`` (default: ``view`` itself)."""
    scored = view.copy()
    population = population or fit_population(view, config)
    current, potential = _value_scores(view, config, population)
    # Classes (like bands below) are cut on the rounded scores the operator sees, so a shown
    # current_value of 50.0 is never "low" against a cut-off of 50.
    scored["current_value"] = current.round(1)
    scored["potential_value"] = potential.round(1)
    scored["value_class"] = _value_class(scored["current_value"].to_numpy(),
                                         scored["potential_value"].to_numpy(), config)
    scored["lifecycle_stage"] = _lifecycle(view, config)
    levels = _churn_levels(view, config)
    weights = np.array([f.weight for f in config.factors])
    contributions = levels * weights / weights.sum()
    risk = 100.0 * contributions.sum(axis=1)
    scored["churn_risk"] = risk.round(1)
    scored["churn_band"] = _band(scored["churn_risk"].to_numpy(), config)
    names = np.array([f.name for f in config.factors] + [""], dtype=object)
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :TOP_FACTORS]
    top = np.take_along_axis(contributions, order, axis=1)
    for rank in range(min(TOP_FACTORS, len(config.factors))):
        # A factor that contributes nothing is not a reason.
        index = np.where(top[:, rank] > 0, order[:, rank], len(config.factors))
        scored[f"churn_factor_{rank + 1}"] = names[index]
    return scored


def _rank(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Percentile rank 0..1 within the population (ties share their average rank, as pandas'
    ``rank(pct=True)``): robust to heavy tails and outliers. Missing values rank 0."""
    n = len(population)
    if n <= 1:
        return np.full(len(values), 0.5)
    below = np.searchsorted(population, values, side="left")
    at_or_below = np.searchsorted(population, values, side="right")
    ranks = (below + at_or_below + 1) / 2.0 / n
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


def _indicators(view: pd.DataFrame, config: ScoringConfig,
                population: Population) -> dict[str, np.ndarray]:
    raw = _raw_indicators(view, config)
    return {name: _rank(values, population.sorted_values[name]) if name in RANKED else values
            for name, values in raw.items()}


def _weighted(indicators: dict[str, np.ndarray], weights: dict[str, float], n: int) -> np.ndarray:
    total = sum(weights.values())
    score = np.zeros(n)
    for name, weight in weights.items():
        score += weight * indicators[name]
    return 100.0 * score / total


def _value_scores(view: pd.DataFrame, config: ScoringConfig,
                  population: Population) -> tuple[np.ndarray, np.ndarray]:
    indicators = _indicators(view, config, population)
    n = len(view)
    return (_weighted(indicators, dict(config.current_weights), n),
            _weighted(indicators, dict(config.potential_weights), n))


def _value_class(current: np.ndarray, potential: np.ndarray, config: ScoringConfig) -> np.ndarray:
    high_current = current >= config.current_cutoff
    high_potential = potential >= config.potential_cutoff
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


def churn_signals(view: pd.DataFrame) -> dict[str, np.ndarray]:
    """The raw signal behind each churn factor (revenue decline is the negated trend)."""
    signals = {name: view[name].to_numpy(dtype="float64") for name in (
        "complaints_90d", "sla_breaches_90d", "outage_hours_90d", "days_to_contract_end",
        "arrears_ratio", "days_since_contact")}
    signals["revenue_decline"] = -view["revenue_trend"].to_numpy(dtype="float64")
    return signals


def _churn_levels(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """Warning level 0..1 per account and factor: a linear ramp from `start` to `full`."""
    signals = churn_signals(view)
    levels = np.empty((len(view), len(config.factors)))
    for i, factor in enumerate(config.factors):
        ramp = (signals[factor.signal] - factor.start) / (factor.full - factor.start)
        levels[:, i] = np.clip(np.nan_to_num(ramp, nan=0.0), 0.0, 1.0)
    return levels


def _band(risk: np.ndarray, config: ScoringConfig) -> np.ndarray:
    return np.select(
        [risk >= config.band_critical, risk >= config.band_high, risk >= config.band_medium],
        ["critical", "high", "medium"], default="low").astype(object)
