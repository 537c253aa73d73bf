"""Scoring: value class, lifecycle stage and churn risk for every account. Pure: no I/O.

Follows DOMAIN.md: current and potential value from weighted, normalised indicators give the four
value classes; churn factors with per-factor warning ramps give a 0..100 churn risk and a band.
"""

from scoring.config import ChurnFactor, ScoringConfig
from scoring.score import CHURN_BANDS, VALUE_CLASSES, Population, fit_population, score_accounts

__all__ = ["CHURN_BANDS", "VALUE_CLASSES", "ChurnFactor", "Population", "ScoringConfig",
           "fit_population", "score_accounts"]
