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

from scoring.config import ScoringConfig
from scoring.score import churn_levels, churn_signals


def churn_features(view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
    """Per account: the warning level of each factor, then each distinct signal's raw value
    (missing counts as 0, as a missing signal raises no warning)."""
    signals = churn_signals(view)
    used = list(dict.fromkeys(f.signal for f in config.factors))
    raw = np.column_stack([signals[f.signal] for f in config.factors])
    levels = churn_levels(raw, config)
    values = np.nan_to_num(np.column_stack([signals[s] for s in used]), nan=0.0,
                           posinf=0.0, neginf=0.0)
    return np.hstack([levels, values])


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn model; ``risk`` gives a 0..100 churn probability per account."""

    pipeline: Any

    def risk(self, view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
        return 100.0 * self.pipeline.predict_proba(churn_features(view, config))[:, 1]


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
