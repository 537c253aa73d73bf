"""Backtest: how well each way of rating churn risk finds the accounts that did churn.

Three methods, measured on the same held-out accounts (a repeatable random split, see
``backtest.holdout_share`` and ``backtest.seed`` in conf/scoring.yaml):

* ``expert_weights``: churn_risk exactly as the daily run computes it (configured weights);
* ``information_gain_weights``: the same factors and ramps, each factor weighted by the
  information gain of its warning level about churn, learnt on the training accounts;
* ``logistic_regression``: the binary classification model trained on the training accounts.

Pure: the customer view and the outcomes in, numbers out (the CLI reads and writes files).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.metrics import TopK, roc_auc, top_k
from kamflow.scoring.model import fit_churn_model
from kamflow.scoring.score import factor_levels
from kamflow.scoring.weights import information_gain_weights

METHODS = ("expert_weights", "information_gain_weights", "logistic_regression")


@dataclass(frozen=True)
class MethodResult:
    method: str
    auc: float
    top_k: tuple[TopK, ...]
    factor_weights: dict[str, float] | None = None  # for the weighted methods


@dataclass(frozen=True)
class BacktestResult:
    accounts: int          # accounts with a known outcome
    churned: int
    test_accounts: int     # held out: every method is measured on these
    test_churned: int
    methods: tuple[MethodResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_accounts(n: int, holdout_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out positions: a repeatable random split."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, int(round(holdout_share * n)))
    return np.sort(order[held:]), np.sort(order[:held])


def split_by_outcome(churned: np.ndarray, holdout_share: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out positions, split within each outcome: with two or more churners
    (and stayers) both parts have some, so the learning has churners to learn from and the
    held-out measure has churners to find, however rare churn is."""
    churned = np.asarray(churned).astype(bool)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for outcome in (True, False):
        positions = rng.permutation(np.flatnonzero(churned == outcome))
        n = len(positions)
        held = min(max(int(round(holdout_share * n)), 1), n - 1) if n >= 2 else 0
        test.append(positions[:held])
        train.append(positions[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def run_backtest(view: pd.DataFrame, churned: np.ndarray,
                 config: ScoringConfig) -> BacktestResult:
    """Measure every method on the held-out accounts of ``view`` (``churned``: 0/1 per row)."""
    churned = np.asarray(churned).astype(bool)
    if len(churned) != len(view):
        raise ValueError("one outcome per account is needed")
    settings = config.backtest
    train, test = split_accounts(len(view), settings.holdout_share, settings.seed)
    levels = factor_levels(view, config)
    names = [f.name for f in config.factors]
    expert = np.array([f.weight for f in config.factors])
    results = [measure("expert_weights", weighted_risk(levels[test], expert), churned[test],
                       settings.top_k, dict(zip(names, expert.tolist(), strict=True)))]
    gain = information_gain_weights(levels[train], churned[train])
    if gain.sum() > 0:
        results.append(measure("information_gain_weights", weighted_risk(levels[test], gain),
                               churned[test], settings.top_k,
                               dict(zip(names, gain.tolist(), strict=True))))
    if len(np.unique(churned[train])) == 2:
        model = fit_churn_model(view.iloc[train], churned[train], config, settings.seed)
        results.append(measure("logistic_regression", model.risk(view.iloc[test], config),
                               churned[test], settings.top_k))
    return BacktestResult(len(view), int(churned.sum()), len(test), int(churned[test].sum()),
                          tuple(results))


def weighted_risk(levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """churn_risk as the daily run computes it from factor levels and weights (unrounded)."""
    return 100.0 * levels @ weights / weights.sum()


def measure(method: str, risk: np.ndarray, churned: np.ndarray, shares: tuple[float, ...],
            weights: dict[str, float] | None = None) -> MethodResult:
    """AUC and top-k precision, recall and lift of one ranking of the held-out accounts."""
    return MethodResult(method, roc_auc(risk, churned),
                        tuple(top_k(risk, churned, share) for share in shares), weights)
