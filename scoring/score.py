"""Score the customer view: value class, lifecycle stage, churn risk and its top factors.

Vectorised over the whole snapshot (no per-account Python). Returns a new frame; the input view
is never modified, so a retried task sees the same input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.config import ScoringConfig

VALUE_CLASSES = ("high", "secondary", "potential", "low")
CHURN_BANDS = ("low", "medium", "high", "critical")
LIFECYCLE_STAGES = ("identification", "development", "stable", "decline")
TOP_FACTORS = 3


def score_accounts(view: pd.DataFrame, config: ScoringConfig) -> pd.DataFrame:
    scored = view.copy()
    current, potential = _value_scores(view, config)
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


def _rank(values: pd.Series) -> np.ndarray:
    """Percentile rank 0..1: robust to heavy tails and outliers, ties share a rank."""
    if len(values) <= 1:
        return np.full(len(values), 0.5)
    return values.rank(pct=True, method="average").fillna(0.0).to_numpy()


def _indicators(view: pd.DataFrame, config: ScoringConfig) -> dict[str, np.ndarray]:
    revenue = view["avg_monthly_billed"].to_numpy()
    cost_share = np.where(revenue > 0, view["cost_to_serve"].to_numpy() / np.maximum(revenue, 1e-9),
                          np.inf)
    strategic = view["industry"].map(dict(config.strategic_industry)).fillna(0.0).to_numpy()
    return {
        "avg_monthly_billed": _rank(view["avg_monthly_billed"]),
        "revenue_trend": _rank(view["revenue_trend"]),
        "products_held": _rank(view["products_held"]),
        "tenure_months": _rank(view["tenure_months"]),
        "payment_record": _rank(-view["arrears_ratio"]),
        "cost_to_serve": _rank(pd.Series(-cost_share)),
        "new_services": _rank(view["new_services"]),
        "employees": _rank(view["employees"]),
        "strategic_industry": strategic.astype("float64"),
    }


def _weighted(indicators: dict[str, np.ndarray], weights: dict[str, float], n: int) -> np.ndarray:
    total = sum(weights.values())
    score = np.zeros(n)
    for name, weight in weights.items():
        score += weight * indicators[name]
    return 100.0 * score / total


def _value_scores(view: pd.DataFrame, config: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
    indicators = _indicators(view, config)
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
