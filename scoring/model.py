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

from kamflow.intake.signals import Signal
from kamflow.scoring.config import ScoringConfig
from kamflow.scoring.metrics import roc_auc
from kamflow.scoring.score import churn_levels, churn_signals

MODEL_KINDS = ("logistic_regression", "gradient_boosting")
# Gradient boosting is chosen over the logistic regression only when its cross-validated AUC is
# higher by more than this: the linear model is cheaper, exact to explain and steadier.
CLEARLY_BETTER = 0.005
DEFAULT_FOLDS = 5


def churn_features(view: pd.DataFrame, config: ScoringConfig,
                   operator: tuple[Signal, ...] = ()) -> np.ndarray:
    """Per account: the warning level of each factor, then each distinct signal's raw value
    (missing counts as 0, as a missing signal raises no warning), then the ``operator``
    signals a mapping declared (numeric as is, boolean 0/1, categorical one-hot over its
    declared levels; the estimators standardise or split them)."""
    signals = churn_signals(view)
    raw = np.column_stack([signals[f.signal] for f in config.factors])
    return np.hstack([_features(raw, churn_levels(raw, config), config),
                      operator_features(view, operator)])


def operator_features(view: pd.DataFrame, operator: tuple[Signal, ...]) -> np.ndarray:
    """The operator signals' model columns (accounts × their ``feature_names``)."""
    if not operator:
        return np.zeros((len(view), 0))
    return np.hstack([signal.features(view) for signal in operator])


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
    # The operator signals it learnt from (a mapping's ``signals:``): scoring a later
    # snapshot builds the same columns from them, whatever that snapshot's mapping says.
    signals: tuple[Signal, ...] = ()
    numeric_ranges: tuple[tuple[str, tuple[float, float]], ...] = ()  # learnt 1 %..99 %

    @property
    def pipeline(self) -> Any:  # the name earlier releases used
        return self.estimator

    def _probability(self, scores: np.ndarray) -> np.ndarray:
        slope, intercept = self.platt
        return 1.0 / (1.0 + np.exp(-(slope * scores + intercept)))

    @one_thread
    def risk(self, view: pd.DataFrame, config: ScoringConfig) -> np.ndarray:
        features = churn_features(view, config, self.signals)
        return 100.0 * self._probability(self.estimator.decision_function(features))

    def signal_values(self, view: pd.DataFrame) -> np.ndarray:
        """Per account and operator signal: its value as a number (numeric as is, boolean
        1/0, categorical the position of its level in the declared levels; NaN: none)."""
        columns = []
        for signal in self.signals:
            if signal.type == "categorical":
                position = {level: i for i, level in enumerate(signal.levels)}
                values = (view[signal.column].astype("str").map(position)
                          if signal.column in view else pd.Series(np.nan, index=view.index))
                columns.append(values.to_numpy(dtype="float64"))
            else:
                columns.append(pd.to_numeric(view[signal.column], errors="coerce")
                               .to_numpy(dtype="float64") if signal.column in view
                               else np.full(len(view), np.nan))
        return np.column_stack(columns) if columns else np.zeros((len(view), 0))

    def _operator_contributions(self, features: np.ndarray, scores: np.ndarray
                                ) -> np.ndarray:
        """What each operator signal adds to the calibrated log-odds against the same account
        with the signal at its safest value (the declared level, yes/no, or the end of the
        learnt range that gives the lowest odds). 0 at the safest value, so only a signal that
        raises the odds is ever a reason."""
        out = np.zeros((len(features), len(self.signals)))
        start = features.shape[1] - sum(len(s.feature_names) for s in self.signals)
        for j, signal in enumerate(self.signals):
            width = len(signal.feature_names)
            columns = slice(start, start + width)
            start += width
            if signal.type == "categorical":
                references = [np.eye(width)[i] for i in range(width)]
            elif signal.type == "boolean":
                references = [np.array([0.0]), np.array([1.0])]
            else:
                low, high = dict(self.numeric_ranges).get(signal.name, (0.0, 0.0))
                references = [np.array([low]), np.array([high])]
            safest = np.full(len(features), np.inf)
            for reference in references:
                moved = features.copy()
                moved[:, columns] = reference
                safest = np.minimum(safest, self.estimator.decision_function(moved))
            out[:, j] = np.clip(self.platt[0] * (scores - safest), 0.0, None)
        return out

    @one_thread
    def rate(self, signals: np.ndarray, levels: np.ndarray,
             config: ScoringConfig,
             view: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """From each factor's signal and warning level (accounts × factors, as
        ``score_accounts`` has them): the churn probability 0..100, and what each factor's
        warning adds to the calibrated log-odds against the same account with that warning
        silent (level 0, signal back at ``start``). 0 for a silent factor, so only raised
        warnings are ever reasons. Exact for the logistic regression; for gradient boosting
        the difference of two predictions, computed only where the warning is raised.
        With operator signals (from ``view``) the contributions gain one column per signal
        after the factors' (``_operator_contributions``)."""
        features = _features(signals, levels, config)
        if self.signals:
            frame = view if view is not None else pd.DataFrame(index=range(len(features)))
            features = np.hstack([features, operator_features(frame, self.signals)])
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
        if self.signals:
            contributions = np.hstack([contributions,
                                       self._operator_contributions(features, scores)])
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
            f"{s} value" for s in dict.fromkeys(f.signal for f in config.factors)] + [
            name for signal in self.signals for name in signal.feature_names]
        coef = self.estimator[-1].coef_[0]
        return {name: round(float(c), 4) for name, c in zip(names, coef, strict=True)}


@one_thread
def fit_churn_model(view: pd.DataFrame, churned: np.ndarray, config: ScoringConfig,
                    seed: int = 7, kinds: tuple[str, ...] = MODEL_KINDS,
                    folds: int = DEFAULT_FOLDS,
                    signals: tuple[Signal, ...] = ()) -> ChurnModel:
    """Cross-validate each of ``kinds`` on these accounts, keep the better (``choose_kind``),
    calibrate it on its out-of-fold scores and refit it on every account given. Needs both
    churners and stayers; nothing outside ``view`` is seen, so a caller that measures on
    other accounts measures without leakage."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(churned).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError("the labelled history needs both churned and retained accounts")
    features = churn_features(view, config, signals)
    results, scores = {}, {}
    for kind in kinds:
        results[kind], scores[kind] = cross_validate(features, labels, kind, folds, seed)
    kind = choose_kind(results)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(scores[kind][:, None], labels)
    estimator = make_estimator(kind, seed).fit(features, labels)
    ranges = tuple((s.name, _range(s.features(view)[:, 0])) for s in signals
                   if s.type == "numeric")
    return ChurnModel(kind, estimator, (float(platt.coef_[0, 0]), float(platt.intercept_[0])),
                      float(labels.mean()), tuple(results.values()), signals, ranges)


def _range(values: np.ndarray) -> tuple[float, float]:
    """A numeric signal's learnt range (1st to 99th percentile): its safest end is a value
    accounts really have, not an outlier's."""
    low, high = np.percentile(values, [1, 99]) if len(values) else (0.0, 0.0)
    return float(low), float(high)
