"""Binary classification models of churn, trained on accounts whose outcome is known.

The operators' method: learn from past churners which signals matter. Two models see what the
rules see (each configured factor's warning level and raw signal), without the expert's ramps
and weights: a logistic regression on standardised features, and scikit-learn's
HistGradientBoostingClassifier (interactions and thresholds the linear model cannot draw).
``fit_churn_model`` chooses between them for each history by stratified k-fold cross-validated
AUC (fixed seeds; the simpler model unless the other is clearly better) and calibrates the
chosen one's probabilities (Platt scaling on its out-of-fold scores, the equivalent of
scikit-learn's ``CalibratedClassifierCV(method="sigmoid", ensemble=False)``), so that value at
risk in CNY = revenue × probability means something. Pure: frames in, probabilities out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.metrics import roc_auc
from kamflow.scoring.score import churn_levels, churn_signals

MODEL_KINDS = ("logistic_regression", "gradient_boosting")
# Gradient boosting is chosen over the logistic regression only when its cross-validated AUC is
# higher by more than this: the linear model is cheaper, exact to explain and steadier.
CLEARLY_BETTER = 0.005
DEFAULT_FOLDS = 5


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


P = ParamSpec("P")
R = TypeVar("R")


def one_thread(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with the numeric libraries on one thread: gradient boosting's OpenMP
    threads fight over a shared or busy machine (a 16k-account fit took 2.9 s on two busy cores
    with threads and 0.2 s without); the many small fits of a cross-validation gain nothing."""
    from functools import wraps

    @wraps(function)
    def limited(*args: P.args, **kwargs: P.kwargs) -> R:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return function(*args, **kwargs)

    return limited


def make_estimator(kind: str, seed: int) -> Any:
    """An unfitted scikit-learn estimator of ``kind`` (one of MODEL_KINDS), seeded."""
    if kind == "logistic_regression":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000,
                                                                  random_state=seed))
    if kind == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # Shallow, slow-learning trees with early stopping: churn signals are noisy.
        return HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=True, validation_fraction=0.15,
            n_iter_no_change=20, random_state=seed)
    raise ValueError(f"unknown churn model {kind!r}; known: {', '.join(MODEL_KINDS)}")


def stratified_folds(churned: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray,
                                                                             np.ndarray]]:
    """Repeatable stratified k-fold (training, measured) positions: every account is measured
    exactly once, by a fold that did not train on it. Fewer folds when an outcome is rarer."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(churned).astype(int)
    fewest = int(min(labels.sum(), len(labels) - labels.sum()))
    k = min(folds, fewest)
    if k < 2:
        raise ValueError("cross-validation needs at least two churned and two retained accounts")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


@dataclass(frozen=True)
class CrossValidation:
    """One model kind's k-fold cross-validated AUC on the accounts it was chosen on."""

    kind: str
    auc_mean: float
    auc_sd: float
    fold_aucs: tuple[float, ...]


@one_thread
def cross_validate(features: np.ndarray, churned: np.ndarray, kind: str, folds: int,
                   seed: int) -> tuple[CrossValidation, np.ndarray]:
    """k-fold AUC of ``kind`` and its out-of-fold scores (log-odds, each from a fold that did
    not see the account)."""
    labels = np.asarray(churned).astype(int)
    scores = np.empty(len(labels))
    aucs = []
    for train, test in stratified_folds(labels, folds, seed):
        estimator = make_estimator(kind, seed).fit(features[train], labels[train])
        scores[test] = estimator.decision_function(features[test])
        aucs.append(roc_auc(scores[test], labels[test]))
    return CrossValidation(kind, float(np.mean(aucs)), float(np.std(aucs)),
                           tuple(round(a, 4) for a in aucs)), scores


def choose_kind(results: dict[str, CrossValidation]) -> str:
    """The logistic regression unless gradient boosting is clearly better by CV AUC."""
    if "logistic_regression" not in results:
        return next(iter(results))
    best = "logistic_regression"
    for kind, result in results.items():
        if result.auc_mean > results[best].auc_mean + CLEARLY_BETTER:
            best = kind
    return best


@dataclass(frozen=True)
class ChurnModel:
    """A fitted, calibrated churn model; ``risk`` gives a 0..100 churn probability."""

    kind: str
    estimator: Any
    platt: tuple[float, float]  # calibrated log-odds = slope × model score + intercept
    base_rate: float            # churn share of the accounts it learnt from
    selection: tuple[CrossValidation, ...] = field(default=())

    @property
    def pipeline(self) -> Any:  # the name earlier releases used
        return self.estimator

    def _probability(self, scores: np.ndarray) -> np.ndarray:
        slope, intercept = self.platt
        return 1.0 / (1.0 + np.exp(-(slope * scores + intercept)))

    @one_thread
    def risk(self, view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
        features = churn_features(view, config)
        return 100.0 * self._probability(self.estimator.decision_function(features))

    @one_thread
    def rate(self, signals: np.ndarray, levels: np.ndarray,
             config: ScoringConfig) -> tuple[np.ndarray, np.ndarray]:
        """From each factor's signal and warning level (accounts × factors, as
        ``score_accounts`` has them): the churn probability 0..100, and what each factor's
        warning adds to the calibrated log-odds against the same account with that warning
        silent (level 0, signal back at ``start``). 0 for a silent factor, so only raised
        warnings are ever reasons. Exact for the logistic regression; for gradient boosting
        the difference of two predictions, computed only where the warning is raised."""
        features = _features(signals, levels, config)
        scores = self.estimator.decision_function(features)
        risk = 100.0 * self._probability(scores)
        slope = self.platt[0]
        used = list(dict.fromkeys(f.signal for f in config.factors))
        contributions = np.zeros(levels.shape)
        linear = self._linear_slopes()
        for i, factor in enumerate(config.factors):
            column = len(config.factors) + used.index(factor.signal)
            raised = levels[:, i] > 0
            if not raised.any():
                continue
            value = features[raised, column]
            if linear is not None:
                contributions[raised, i] = slope * (linear[i] * levels[raised, i]
                                                    + linear[column] * (value - factor.start))
                continue
            silent = features[raised].copy()
            silent[:, i] = 0.0
            silent[:, column] = factor.start
            contributions[raised, i] = slope * (scores[raised]
                                                - self.estimator.decision_function(silent))
        return risk, contributions

    def _linear_slopes(self) -> np.ndarray | None:
        """Log-odds per unit of each raw feature, for the logistic regression; else None."""
        if self.kind != "logistic_regression":
            return None
        scaler, logistic = self.estimator[0], self.estimator[-1]
        return logistic.coef_[0] / scaler.scale_

    def coefficients(self, config: ScoringConfig) -> dict[str, float] | None:
        """The logistic regression's coefficient per feature, on standardised features (so
        comparable): log-odds per standard deviation of ``<factor> level`` or ``<signal>
        value``. None for gradient boosting (it has no coefficients)."""
        if self.kind != "logistic_regression":
            return None
        names = [f"{f.name} level" for f in config.factors] + [
            f"{s} value" for s in dict.fromkeys(f.signal for f in config.factors)]
        coef = self.estimator[-1].coef_[0]
        return {name: round(float(c), 4) for name, c in zip(names, coef, strict=True)}


@one_thread
def fit_churn_model(view: pd.DataFrame, churned: np.ndarray, config: ScoringConfig,
                    seed: int = 7, kinds: tuple[str, ...] = MODEL_KINDS,
                    folds: int = DEFAULT_FOLDS) -> ChurnModel:
    """Cross-validate each of ``kinds`` on these accounts, keep the better (``choose_kind``),
    calibrate it on its out-of-fold scores and refit it on every account given. Needs both
    churners and stayers; nothing outside ``view`` is seen, so a caller that measures on
    other accounts measures without leakage."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(churned).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError("the labelled history needs both churned and retained accounts")
    features = churn_features(view, config)
    results, scores = {}, {}
    for kind in kinds:
        results[kind], scores[kind] = cross_validate(features, labels, kind, folds, seed)
    kind = choose_kind(results)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(scores[kind][:, None], labels)
    estimator = make_estimator(kind, seed).fit(features, labels)
    return ChurnModel(kind, estimator, (float(platt.coef_[0, 0]), float(platt.intercept_[0])),
                      float(labels.mean()), tuple(results.values()))
