"""Scoring: value class, lifecycle stage and churn risk for every account. Pure: no I/O.

Follows DOMAIN.md: current and potential value from weighted, normalised indicators (expert or
entropy weights) give the four value classes; churn factors with per-factor warning ramps give a
0..100 churn risk, a band and the top factors with their values; value at risk is the monthly
revenue × the yearly churn probability (a learnt model's, or the calibrated churn risk's).
``scoring.backtest`` measures churn risk (and weights learnt by information gain, and a logistic
regression) against known outcomes; ``scoring.learn`` learns either from a labelled history for
the daily run.
"""

from kamflow.scoring.config import BacktestConfig, ChurnFactor, ScoringConfig
from kamflow.scoring.metrics import TopK, roc_auc, top_k
from kamflow.scoring.score import (
           CHURN_BANDS,
           VALUE_CLASSES,
           Population,
           fit_population,
           score_accounts,
)
from kamflow.scoring.weights import entropy_weights, information_gain

__all__ = ["CHURN_BANDS", "VALUE_CLASSES", "BacktestConfig", "ChurnFactor", "Population",
           "ScoringConfig", "TopK", "entropy_weights", "fit_population", "information_gain",
           "roc_auc", "score_accounts", "top_k"]
