"""Backtest: how well each way of rating churn risk finds the accounts that did churn.

Every method is measured by stratified k-fold cross-validation over all the labelled accounts
(``backtest.folds``, ``backtest.seed`` in conf/scoring.yaml): each account is rated by a method
that learnt nothing from it, the AUC is given per fold (mean ± sd), and precision, recall and
lift in the top k % are taken over the pooled out-of-fold ratings.

* ``expert_weights``: churn_risk exactly as the daily run computes it (configured weights);
* ``information_gain_weights``: the same factors and ramps, each factor weighted by the
  information gain of its warning level about churn, learnt on the training folds;
* ``logistic_regression`` and ``gradient_boosting``: the binary classification models
  (scoring.model), trained and calibrated on the training folds only, with a calibration table
  (predicted against observed churn). ``chosen_model`` is the one the daily run's
  ``churn.learn: best_model`` would choose on this history by the same cross-validated AUC.

Pure: the customer view and the outcomes in, numbers out (the CLI reads and writes files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kamflow.intake.signals import Signal
from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.metrics import TopK, roc_auc, top_k
from kamflow.scoring.model import (
    MODEL_KINDS,
    CrossValidation,
    choose_kind,
    fit_churn_model,
    stratified_folds,
)
from kamflow.scoring.score import factor_levels
from kamflow.scoring.weights import information_gain_weights

METHODS = ("expert_weights", "information_gain_weights", *MODEL_KINDS)
CALIBRATION_BINS = 10
INNER_FOLDS = 3  # calibrating a model inside a training fold: fewer folds, same seed


@dataclass(frozen=True)
class CalibrationBin:
    """Accounts with similar predicted churn probability: predicted against observed."""

    accounts: int
    predicted: float  # mean predicted churn probability, 0..1
    observed: float   # share of them that churned


@dataclass(frozen=True)
class MethodResult:
    method: str
    auc: float                   # k-fold: the mean of the folds' AUCs (held out: the AUC)
    top_k: tuple[TopK, ...]
    factor_weights: dict[str, float] | None = None  # for the weighted methods
    auc_sd: float | None = None  # k-fold: the standard deviation of the folds' AUCs
    fold_aucs: tuple[float, ...] = ()
    calibration: tuple[CalibrationBin, ...] = ()   # for the models
    # The lift curve over the pooled out-of-fold ratings: (share of accounts taken, riskiest
    # first; lift = share of the churners among them / the base rate), for the lift chart.
    lift_curve: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class BacktestResult:
    accounts: int          # accounts with a known outcome
    churned: int
    test_accounts: int     # measured out of fold: every labelled account, once
    test_churned: int
    methods: tuple[MethodResult, ...]
    folds: int = 0
    chosen_model: str | None = None  # what churn.learn: best_model picks on this history

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


def run_backtest(view: pd.DataFrame, churned: np.ndarray, config: ScoringConfig,
                 signals: tuple[Signal, ...] = ()) -> BacktestResult:
    """Measure every method by k-fold cross-validation on ``view`` (``churned``: 0/1 per row).
    With fewer than two accounts of an outcome nothing can be cross-validated: the configured
    weights alone are measured, on every account. The models also learn from the operator
    ``signals`` (a mapping's ``signals:``) the view carries; the weighted methods do not."""
    churned = np.asarray(churned).astype(bool)
    if len(churned) != len(view):
        raise ValueError("one outcome per account is needed")
    settings = config.backtest
    levels = factor_levels(view, config)
    names = [f.name for f in config.factors]
    expert = np.array([f.weight for f in config.factors])
    expert_weights = dict(zip(names, expert.tolist(), strict=True))
    expert_risk = weighted_risk(levels, expert)
    try:
        folds = stratified_folds(churned, settings.folds, settings.seed)
    except ValueError:
        only = measure("expert_weights", expert_risk, churned, settings.top_k, expert_weights)
        return BacktestResult(len(view), int(churned.sum()), len(view), int(churned.sum()),
                              (only,))
    results = [cross_measured("expert_weights", folds, churned, settings.top_k,
                              lambda train, test: expert_risk[test], expert_weights)]

    def by_gain(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        gain = information_gain_weights(levels[train], churned[train])
        return weighted_risk(levels[test], gain) if gain.sum() > 0 else np.zeros(len(test))

    gain = information_gain_weights(levels, churned)  # shown: learnt on every account
    results.append(cross_measured("information_gain_weights", folds, churned, settings.top_k,
                                  by_gain, dict(zip(names, gain.tolist(), strict=True))))
    for kind in MODEL_KINDS:
        def by_model(train: np.ndarray, test: np.ndarray, kind: str = kind) -> np.ndarray:
            model = fit_churn_model(view.iloc[train], churned[train], config, settings.seed,
                                    (kind,), INNER_FOLDS, signals)
            return model.risk(view.iloc[test], config)

        results.append(cross_measured(kind, folds, churned, settings.top_k, by_model,
                                      calibrate=True))
    chosen = choose_kind({r.method: CrossValidation(r.method, r.auc, r.auc_sd or 0.0,
                                                    r.fold_aucs)
                          for r in results if r.method in MODEL_KINDS})
    return BacktestResult(len(view), int(churned.sum()), len(view), int(churned.sum()),
                          tuple(results), len(folds), chosen)


def cross_measured(method: str, folds: list[tuple[np.ndarray, np.ndarray]],
                   churned: np.ndarray, shares: tuple[float, ...],
                   rate: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   weights: dict[str, float] | None = None,
                   calibrate: bool = False) -> MethodResult:
    """``rate(train, test)`` gives the risk of the ``test`` accounts learnt from ``train``
    only: the folds' AUCs (mean ± sd), top-k over the pooled out-of-fold risk, and for a
    probability the calibration table."""
    risk = np.empty(len(churned))
    aucs = []
    for train, test in folds:
        risk[test] = rate(train, test)
        aucs.append(roc_auc(risk[test], churned[test]))
    return MethodResult(method, float(np.mean(aucs)),
                        tuple(top_k(risk, churned, share) for share in shares), weights,
                        float(np.std(aucs)), tuple(round(a, 4) for a in aucs),
                        calibration_table(risk / 100.0, churned) if calibrate else (),
                        lift_curve(risk, churned))


LIFT_SHARES = (0.01, 0.02, 0.03, 0.05, 0.075, *(k / 20 for k in range(2, 21)))


def lift_curve(risk: np.ndarray, churned: np.ndarray,
               shares: tuple[float, ...] = LIFT_SHARES) -> tuple[tuple[float, float], ...]:
    """Lift over random in the riskiest ``share`` of accounts, for each share (ties broken by
    position, as top_k does): 1 everywhere for a rating that knows nothing."""
    churned = np.asarray(churned).astype(bool)
    if not len(churned) or not churned.any():
        return ()
    found = np.cumsum(churned[np.argsort(-risk, kind="stable")])
    base = churned.mean()
    points = []
    for share in shares:
        k = max(1, int(round(share * len(churned))))
        points.append((share, round(float(found[k - 1] / k / base), 3)))
    return tuple(points)


def calibration_table(probability: np.ndarray, churned: np.ndarray,
                      bins: int = CALIBRATION_BINS) -> tuple[CalibrationBin, ...]:
    """Accounts in ``bins`` equal groups by predicted probability (lowest first): each group's
    mean prediction beside its observed churn rate. Calibrated: the two agree."""
    order = np.argsort(probability, kind="stable")
    churned = np.asarray(churned).astype(bool)
    return tuple(CalibrationBin(len(part), round(float(probability[part].mean()), 4),
                                round(float(churned[part].mean()), 4))
                 for part in np.array_split(order, min(bins, len(order))) if len(part))


def weighted_risk(levels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """churn_risk as the daily run computes it from factor levels and weights (unrounded)."""
    return 100.0 * levels @ weights / weights.sum()


def measure(method: str, risk: np.ndarray, churned: np.ndarray, shares: tuple[float, ...],
            weights: dict[str, float] | None = None) -> MethodResult:
    """AUC and top-k precision, recall and lift of one ranking of the held-out accounts."""
    return MethodResult(method, roc_auc(risk, churned),
                        tuple(top_k(risk, churned, share) for share in shares), weights)
