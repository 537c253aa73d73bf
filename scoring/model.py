"""A binary classification model of churn, trained on accounts whose outcome is known.

The operators' method: learn from past churners which signals matter. The model is a logistic
regression (scikit-learn) over each configured factor's warning level and raw signal, so it sees
what the rules see, without the expert's ramps and weights. Pure: frames in, probabilities out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.score import churn_levels, churn_signals


def churn_features(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """Per account: the warning level of each factor, then each distinct signal's raw value
    (missing counts as 0, as a missing signal raises no warning)."""
    signals = churn_signals(view)
    raw = np.column_stack([signals[f.signal] for f in config.factors])
    return _features(raw, churn_levels(raw, config), config)


def _features(signals: np.ndarray, levels: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """The features from each factor's signal and level (accounts × factors each)."""
    return np.hstack([levels, np.nan_to_num(signals[:, _first_of_each_signal(config)], nan=0.0,
                                            posinf=0.0, neginf=0.0)])


def _first_of_each_signal(config: ScoringConfig) -> list[int]:
    """The first factor reading each distinct signal: one value column per signal."""
    used = list(dict.fromkeys(f.signal for f in config.factors))
    return [next(i for i, f in enumerate(config.factors) if f.signal == s) for s in used]


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn model; ``risk`` gives a 0..100 churn probability per account."""

    pipeline: Any

    def risk(self, view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
        return 100.0 * self.pipeline.predict_proba(churn_features(view, config))[:, 1]

    def rate(self, signals: np.ndarray, levels: np.ndarray,
             config: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
        """From each factor's signal and warning level (accounts × factors, as
        ``score_accounts`` has them): the churn probability 0..100, and what each factor's
        warning adds to the log-odds against the same account with that warning silent
        (level 0, signal back at ``start``). Exact for a linear model; 0 for a silent factor,
        so only raised warnings are ever reasons."""
        features = _features(signals, levels, config)
        risk = 100.0 * self.pipeline.predict_proba(features)[:, 1]
        scaler, logistic = self.pipeline[0], self.pipeline[-1]
        slope = logistic.coef_[0] / scaler.scale_  # log-odds per unit of each raw feature
        used = list(dict.fromkeys(f.signal for f in config.factors))
        contributions = np.empty(levels.shape)
        for i, factor in enumerate(config.factors):
            column = len(config.factors) + used.index(factor.signal)
            value = features[:, column]
            silent = np.where(levels[:, i] > 0, factor.start, value)
            contributions[:, i] = slope[i] * levels[:, i] + slope[column] * (value - silent)
        return risk, contributions

    def coefficients(self, config: ScoringConfig) -> dict[str, float]:
        """The model's coefficient per feature, on standardised features (so comparable):
        log-odds per standard deviation of ``<factor> level`` or ``<signal> value``."""
        names = [f"{f.name} level" for f in config.factors] + [
            f"{s} value" for s in dict.fromkeys(f.signal for f in config.factors)]
        coef = self.pipeline[-1].coef_[0]
        return {name: round(float(c), 4) for name, c in zip(names, coef, strict=True)}


def fit_churn_model(view: pd.DataFrame, churned: np.ndarray, config: ScoringConfig,
                    seed: int = 7) -> ChurnModel:
    """Logistic regression on standardised features (so no signal dominates by its unit).
    Needs both churners and stayers among the accounts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(churned).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError("the labelled history needs both churned and retained accounts")
    pipeline = make_pipeline(StandardScaler(),
                             LogisticRegression(max_iter=1000, random_state=seed))
    pipeline.fit(churn_features(view, config), labels)
    return ChurnModel(pipeline)
