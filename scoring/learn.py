"""Learn churn risk from a labelled history for the daily run, and measure what was learnt.

A labelled history is a past snapshot of the accounts with, for each, whether it churned since.
``churn.learn`` in conf/scoring.yaml says what the daily run learns from it:

* ``information_gain``: each factor weighted by the information gain of its warning level about
  churn (the ramps stay; churn_risk is the weighted sum, as with configured weights);
* ``logistic_regression``, ``gradient_boosting`` or ``best_model`` (the one of the two with the
  better k-fold cross-validated AUC on the training part): the binary classification model
  (scoring.model); churn_risk is its calibrated churn probability in %.

Whatever the method, the calibration of the weighted churn risk score to a yearly churn
probability (``churn.calibration``: p = 1/(1+exp(-(a + b·risk/100)))) is refitted on the same
training part by Platt scaling (a logistic regression of the outcome on the score), so value at
risk rests on the history's churn rate even when only factor weights are learnt.

Learning uses the training part of a split made within each outcome (``backtest.holdout_share``,
``backtest.seed``); the held-out part measures it with the backtest's metrics, next to the
configured weights on the same accounts. The run then scores with exactly what was measured (no
refit on every account), so the metrics shown are those of the scoring in use. Pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from kamflow.scoring.backtest import MethodResult, measure, split_by_outcome, weighted_risk
from kamflow.scoring.config import Calibration, ScoringConfig
from kamflow.scoring.model import MODEL_KINDS, ChurnModel, fit_churn_model
from kamflow.scoring.score import factor_levels
from kamflow.scoring.weights import information_gain_weights

# Fewer labelled accounts (or churners) than this teach noise, and a held-out part that small
# measures nothing: the run refuses the history rather than score with it.
MIN_ACCOUNTS = 100
MIN_PER_OUTCOME = 10
# churn.learn -> the model kinds cross-validated (and chosen between) on the training part
MODEL_METHODS = {"logistic_regression": ("logistic_regression",),
                 "gradient_boosting": ("gradient_boosting",), "best_model": MODEL_KINDS}


class UnusableHistory(ValueError):
    """The labelled history cannot teach churn risk (too small, one outcome, nothing telling)."""


@dataclass(frozen=True)
class LearntChurn:
    """What a labelled history taught, and how it did on the accounts held out of learning."""

    method: str                 # information_gain or one of MODEL_METHODS
    accounts: int               # labelled accounts in the history
    churned: int
    train_accounts: int
    held_out_accounts: int
    held_out_churned: int
    learnt: MethodResult        # the learnt churn risk, measured on the held-out accounts
    configured: MethodResult    # the configured weights on the same accounts, for comparison
    coefficients: dict[str, float] | None = None  # logistic_regression: per feature
    model: ChurnModel | None = None
    # the weighted churn risk score's calibration, refitted on the training part (Platt)
    calibration: Calibration | None = None

    @property
    def factor_weights(self) -> dict[str, float] | None:
        """information_gain: the learnt weight of each factor (summing to 1)."""
        return self.learnt.factor_weights

    def scoring(self, config: ScoringConfig) -> ScoringConfig:
        """The scoring configuration to score with: the learnt factor weights in place of the
        configured ones, and the calibration refitted on the history (the model, if any, is
        passed to ``score_accounts`` beside it; its own probabilities then rule)."""
        if self.calibration is not None:
            config = replace(config, calibration=self.calibration)
        if self.factor_weights is None:
            return config
        return config.with_factor_weights(self.factor_weights)

    @property
    def model_selection(self) -> list[dict[str, Any]] | None:
        """Each model kind's k-fold cross-validated AUC on the training part, and which won."""
        if self.model is None:
            return None
        return [{**asdict(result), "chosen": result.kind == self.model.kind}
                for result in self.model.selection]

    def describe(self) -> str:
        """One line for the log and the summary."""
        what = ("churn weights (information gain)" if self.method == "information_gain"
                else f"churn model ({self.model.kind.replace('_', ' ')})" if self.model
                else "churn model")
        return (f"{what} learnt from {self.accounts:,} labelled accounts ({self.churned:,} "
                f"churned), held-out AUC {self.learnt.auc:.3f} on {self.held_out_accounts:,} "
                f"accounts (configured weights: {self.configured.auc:.3f})")

    def as_dict(self) -> dict[str, Any]:
        """Everything but the fitted model, for the run summary (JSON)."""
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        record["learnt"], record["configured"] = asdict(self.learnt), asdict(self.configured)
        record["calibration"] = asdict(self.calibration) if self.calibration else None
        record["factor_weights"] = self.factor_weights
        record["model_selection"] = self.model_selection
        if self.model is not None:
            record["model_kind"], record["base_rate"] = self.model.kind, self.model.base_rate
        record["description"] = self.describe()
        return record


def history_problem(churned: np.ndarray, minimum: int = MIN_ACCOUNTS,
                    per_outcome: int = MIN_PER_OUTCOME) -> str | None:
    """Why these outcomes cannot be learnt from or measured on, or None. The caller names the
    file and column they came from."""
    churned = np.asarray(churned).astype(bool)
    n, positives = len(churned), int(churned.sum())
    if n == 0:
        return ("no labelled account id matches an accepted account of the snapshot: check "
                "that the id column holds the same ids as the snapshot's account_id (the "
                "id-column option) and that both come from the same system")
    if n < minimum:
        return (f"only {n:,} accepted accounts have a known outcome (matched by account id); "
                f"at least {minimum:,} are needed")
    if positives in (0, n):
        outcome = "churned" if positives else "retained"
        return (f"every labelled account has the same outcome ({outcome}): churned and "
                "retained accounts are needed")
    fewest = min(positives, n - positives)
    if fewest < per_outcome:
        which = "churned" if positives < n - positives else "were retained"
        return (f"only {fewest:,} labelled accounts {which}; at least {per_outcome:,} of each "
                "outcome are needed")
    return None


def learn_churn(history: pd.DataFrame, churned: np.ndarray, config: ScoringConfig,
                method: str | None = None) -> LearntChurn:
    """Learn ``method`` (default ``config.learn``) on part of the labelled ``history`` (a
    customer view; ``churned`` 0/1 per row) and measure it on the rest."""
    method = method or config.learn
    if method != "information_gain" and method not in MODEL_METHODS:
        raise ValueError(f"nothing to learn with churn.learn: {method}")
    churned = np.asarray(churned).astype(bool)
    if len(churned) != len(history):
        raise ValueError("one outcome per account is needed")
    problem = history_problem(churned)
    if problem:
        raise UnusableHistory(problem)
    settings = config.backtest
    train, test = split_by_outcome(churned, settings.holdout_share, settings.seed)
    levels = factor_levels(history, config)
    names = [f.name for f in config.factors]
    expert = np.array([f.weight for f in config.factors])
    configured = measure("configured_weights", weighted_risk(levels[test], expert),
                         churned[test], settings.top_k, dict(zip(names, expert.tolist(),
                                                                 strict=True)))
    model, coefficients, weights = None, None, expert
    if method == "information_gain":
        gain = information_gain_weights(levels[train], churned[train])
        if gain.sum() <= 0:
            raise UnusableHistory("no churn factor's warning level tells anything about churn "
                                  "in this history (every information gain is 0)")
        learnt = measure(method, weighted_risk(levels[test], gain), churned[test],
                         settings.top_k, dict(zip(names, gain.tolist(), strict=True)))
        weights = gain
    else:
        model = fit_churn_model(history.iloc[train], churned[train], config, settings.seed,
                                MODEL_METHODS[method], settings.folds)
        learnt = measure(method, model.risk(history.iloc[test], config), churned[test],
                         settings.top_k)
        coefficients = model.coefficients(config)
    calibration = fit_calibration(weighted_risk(levels[train], weights), churned[train])
    return LearntChurn(method, len(history), int(churned.sum()), len(train), len(test),
                       int(churned[test].sum()), learnt, configured, coefficients, model,
                       calibration)


def fit_calibration(risk: np.ndarray, churned: np.ndarray) -> Calibration:
    """Platt scaling of a churn risk score (0..100): the logistic regression of the outcome on
    risk / 100, giving ``churn.calibration``'s a and b. A score that does not rise with churn
    in this history (b <= 0) calibrates to the history's churn rate for every account (b = 0)
    rather than to a probability that falls as the risk rises."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(churned).astype(int)
    if len(np.unique(labels)) < 2:
        raise UnusableHistory("calibration needs both churned and retained accounts")
    score = np.asarray(risk, dtype="float64")[:, None] / 100.0
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(score, labels)
    a, b = float(fit.intercept_[0]), float(fit.coef_[0, 0])
    if b <= 0:
        rate = float(labels.mean())
        return Calibration(round(float(np.log(rate / (1 - rate))), 4), 0.0)
    return Calibration(round(a, 4), round(b, 4))
