"""Typed scoring configuration, checked key by key (see conf/scoring.yaml)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kamflow.core.errors import ConfigError
from kamflow.intake.schema import INDUSTRIES

CURRENT_INDICATORS = ("avg_monthly_billed", "revenue_trend", "products_held", "tenure_months",
                      "payment_record", "cost_to_serve")
POTENTIAL_INDICATORS = ("new_services", "employees", "strategic_industry")
# Signals a churn factor may read: columns of the customer view, plus derived ones.
CHURN_SIGNALS = ("revenue_decline", "complaints_90d", "sla_breaches_90d", "outage_hours_90d",
                 "days_to_contract_end", "arrears_ratio", "days_since_contact",
                 "relationship_months", "commitment_months", "competitor_complaints",
                 "revenue_volatility")
# How value weights are set: the numbers in the file (expert judgement, Delphi) or the entropy
# weight method over the snapshot's indicators.
VALUE_WEIGHT_METHODS = ("expert", "entropy")
# What the daily run learns from a labelled history when it is given one (`kamflow run
# --history`): nothing (the configured factor weights stay), factor weights by information gain,
# or a model whose calibrated churn probability becomes churn_risk: a logistic regression,
# gradient boosting, or whichever of the two has the better cross-validated AUC (best_model).
LEARN_METHODS = ("none", "information_gain", "logistic_regression", "gradient_boosting",
                 "best_model")


# How a value dimension splits its accounts into upper and lower: at a score 0..100, at the
# score of the last account in a top share of the snapshot, or (current value only) at an
# average monthly bill in CNY.
CLASS_CUTS = {"cutoff": "score", "top_share": "top_share", "min_monthly_cny": "monthly_cny"}


@dataclass(frozen=True)
class ClassCut:
    """Where one value dimension (current or potential) is cut: ``by`` one of "score",
    "top_share" or "monthly_cny", at ``value``."""

    by: str
    value: float


@dataclass(frozen=True)
class ChurnFactor:
    name: str
    signal: str
    weight: float
    start: float
    full: float


@dataclass(frozen=True)
class LearntBands:
    """Bands under a learnt model (its churn_risk is a calibrated probability): a band is
    reached at ``multiple`` × the history's churn rate (at most the fixed cut-off), or by being
    in the ``top_share`` riskiest accounts of the snapshot, whichever comes first."""

    medium_multiple: float = 2.0
    high_multiple: float = 4.0
    critical_multiple: float = 10.0
    medium_top_share: float = 0.10
    high_top_share: float = 0.03
    critical_top_share: float = 0.01


@dataclass(frozen=True)
class BacktestConfig:
    """How `kamflow backtest` measures a churn ranking against known outcomes."""

    top_k: tuple[float, ...] = (0.01, 0.05, 0.10)  # shares of the riskiest accounts
    holdout_share: float = 0.3  # accounts kept out of training, to measure every method on
    seed: int = 7               # the split is random but repeatable
    folds: int = 5              # k of the stratified k-fold cross-validation


@dataclass(frozen=True)
class ScoringConfig:
    current_weights: Mapping[str, float]
    potential_weights: Mapping[str, float]
    strategic_industry: Mapping[str, float]
    current_cut: ClassCut
    potential_cut: ClassCut
    identification_months: float
    development_months: float
    growth_trend: float
    decline_trend: float
    factors: tuple[ChurnFactor, ...]
    band_medium: float
    band_high: float
    band_critical: float
    value_weights: str = "expert"  # one of VALUE_WEIGHT_METHODS
    learn: str = "best_model"  # one of LEARN_METHODS
    learnt_bands: LearntBands = field(default_factory=LearntBands)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)

    def with_factor_weights(self, weights: Mapping[str, float]) -> ScoringConfig:
        """The same configuration with the churn factors weighted by ``weights`` (by factor
        name), e.g. weights learnt from labelled history."""
        factors = tuple(replace(f, weight=float(weights[f.name])) for f in self.factors)
        if sum(f.weight for f in factors) <= 0:
            raise ConfigError("the churn factor weights are all zero")
        return replace(self, factors=factors)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "scoring config") -> ScoringConfig:
        c = _Checker(source)
        if not isinstance(doc, Mapping):
            raise c.error("(top level)", "must be a mapping of sections")
        unknown = sorted(set(doc) - {"value", "lifecycle", "churn", "backtest"}, key=str)
        if unknown:
            raise c.error(str(unknown[0]),
                          "unknown key; allowed: value, lifecycle, churn, backtest")
        value = c.section(doc, "value", ("current", "potential", "strategic_industry", "classes"),
                          optional=("weights",))
        value_weights = value.get("weights", "expert")
        if value_weights not in VALUE_WEIGHT_METHODS:
            raise c.error("value.weights", f"must be one of {', '.join(VALUE_WEIGHT_METHODS)}, "
                          f"not {value_weights!r}")
        current = c.weights(value, "value.current", CURRENT_INDICATORS)
        potential = c.weights(value, "value.potential", POTENTIAL_INDICATORS)
        strategic_spec = c.mapping(value, "value.strategic_industry")
        unknown = sorted(set(strategic_spec) - set(INDUSTRIES), key=str)
        if unknown:
            # A misspelt industry would silently score 0 for strategic importance.
            raise c.error(f"value.strategic_industry.{unknown[0]}",
                          f"unknown industry; known: {', '.join(INDUSTRIES)}")
        strategic = {k: c.number(strategic_spec, f"value.strategic_industry.{k}", k, 0, 1)
                     for k in strategic_spec}
        classes = c.section(value, "classes", (), prefix="value.",
                            optional=tuple(f"{d}_{k}" for d in ("current", "potential")
                                           for k in CLASS_CUTS))
        life = c.section(doc, "lifecycle", ("identification_months", "development_months",
                                            "growth_trend", "decline_trend"))
        churn = c.section(doc, "churn", ("factors", "bands"), optional=("learn", "learnt_bands"))
        learn = churn.get("learn", "best_model")
        if learn not in LEARN_METHODS:
            raise c.error("churn.learn", f"must be one of {', '.join(LEARN_METHODS)}, "
                          f"not {learn!r}")
        factors = []
        for name, spec in c.mapping(churn, "churn.factors").items():
            key = f"churn.factors.{name}"
            spec = c.section({name: spec}, name, ("signal", "weight", "start", "full"),
                             prefix="churn.factors.")
            if spec["signal"] not in CHURN_SIGNALS:
                raise c.error(f"{key}.signal", f"unknown signal {spec['signal']!r}; known: "
                              + ", ".join(CHURN_SIGNALS))
            start = c.number(spec, f"{key}.start", "start")
            full = c.number(spec, f"{key}.full", "full")
            if start == full:
                raise c.error(key, "start and full must differ")
            factors.append(ChurnFactor(name, spec["signal"],
                                       c.number(spec, f"{key}.weight", "weight", 0), start, full))
        if not factors or sum(f.weight for f in factors) <= 0:
            raise c.error("churn.factors", "at least one factor with a positive weight is needed")
        bands = c.section(churn, "bands", ("medium", "high", "critical"), prefix="churn.")
        medium, high, critical = (c.number(bands, f"churn.bands.{b}", b, 0, 100)
                                  for b in ("medium", "high", "critical"))
        if not medium < high < critical:
            raise c.error("churn.bands", "cut-offs must rise: medium < high < critical")
        return cls(
            current_weights=current, potential_weights=potential, strategic_industry=strategic,
            current_cut=_class_cut(classes, "current", c),
            potential_cut=_class_cut(classes, "potential", c),
            identification_months=c.number(life, "lifecycle.identification_months",
                                           "identification_months", 0),
            development_months=c.number(life, "lifecycle.development_months",
                                        "development_months", 0),
            growth_trend=c.number(life, "lifecycle.growth_trend", "growth_trend"),
            decline_trend=c.number(life, "lifecycle.decline_trend", "decline_trend"),
            factors=tuple(factors), band_medium=medium, band_high=high, band_critical=critical,
            value_weights=value_weights, learn=learn, backtest=_backtest(doc, c),
            learnt_bands=_learnt_bands(churn, c),
        )


def _class_cut(classes: Mapping[str, Any], dimension: str, c: _Checker) -> ClassCut:
    """Exactly one of ``<dimension>_cutoff`` (a score 0..100), ``<dimension>_top_share``
    (0..1 of the accounts) or ``current_min_monthly_cny`` (CNY, current value only)."""
    given = [k for k in CLASS_CUTS if f"{dimension}_{k}" in classes]
    choices = ", ".join(f"{dimension}_{k}" for k in CLASS_CUTS
                        if dimension == "current" or k != "min_monthly_cny")
    if len(given) != 1 or (dimension == "potential" and given[0] == "min_monthly_cny"):
        raise c.error(f"value.classes.{dimension}_*", f"give exactly one of {choices}")
    key = f"{dimension}_{given[0]}"
    high = {"cutoff": 100.0, "top_share": 1.0, "min_monthly_cny": None}[given[0]]
    return ClassCut(CLASS_CUTS[given[0]],
                    c.number(classes, f"value.classes.{key}", key, 0, high))


def _learnt_bands(churn: Mapping[str, Any], c: _Checker) -> LearntBands:
    """The optional ``churn.learnt_bands`` section: per band a ``rate_multiple`` (> 0) and a
    ``top_share`` (0..1), both rising from medium to critical (shares falling)."""
    default = LearntBands()
    if "learnt_bands" not in churn:
        return default
    spec = c.section(churn, "learnt_bands", (), optional=("medium", "high", "critical"),
                     prefix="churn.")
    values: dict[str, float] = {}
    for band in ("medium", "high", "critical"):
        key = f"churn.learnt_bands.{band}"
        part = c.section(spec, band, (), optional=("rate_multiple", "top_share"),
                         prefix="churn.learnt_bands.") if band in spec else {}
        multiple = part.get("rate_multiple", getattr(default, f"{band}_multiple"))
        share = part.get("top_share", getattr(default, f"{band}_top_share"))
        values[f"{band}_multiple"] = c.number({"m": multiple}, f"{key}.rate_multiple", "m", 0)
        values[f"{band}_top_share"] = c.number({"s": share}, f"{key}.top_share", "s", 0, 1)
    if not values["medium_multiple"] < values["high_multiple"] < values["critical_multiple"]:
        raise c.error("churn.learnt_bands", "rate multiples must rise: medium < high < critical")
    if not (values["medium_top_share"] >= values["high_top_share"]
            >= values["critical_top_share"]):
        raise c.error("churn.learnt_bands", "top shares must not rise: medium >= high >= "
                      "critical")
    return LearntBands(**values)


def _backtest(doc: Mapping[str, Any], c: _Checker) -> BacktestConfig:
    """The optional ``backtest`` section; absent keys keep their defaults."""
    if "backtest" not in doc:
        return BacktestConfig()
    spec = c.section(doc, "backtest", (), optional=("top_k", "holdout_share", "seed", "folds"))
    default = BacktestConfig()
    top_k = spec.get("top_k", list(default.top_k))
    if not isinstance(top_k, list) or not top_k:
        raise c.error("backtest.top_k", "must be a list of shares such as [0.01, 0.05, 0.10]")
    shares = tuple(c.number({"k": k}, f"backtest.top_k[{i}]", "k", 0, 1)
                   for i, k in enumerate(top_k))
    if 0 in shares:
        raise c.error("backtest.top_k", "a share must be above 0")
    holdout = c.number(spec, "backtest.holdout_share", "holdout_share", 0.05, 0.95) \
        if "holdout_share" in spec else default.holdout_share
    seed = spec.get("seed", default.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise c.error("backtest.seed", f"must be a whole number, not {seed!r}")
    folds = spec.get("folds", default.folds)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 20:
        raise c.error("backtest.folds", f"must be a whole number from 2 to 20, not {folds!r}")
    return BacktestConfig(shares, holdout, seed, folds)


class _Checker:
    """Small helpers that name the file and the key in every complaint."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: key {key!r}: {problem}")

    def mapping(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = parent.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a mapping of names to values")
        return value

    def section(self, parent: Any, key: str, allowed: tuple[str, ...],
                prefix: str = "", optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
        if not isinstance(parent, Mapping) or not isinstance(parent.get(key), Mapping):
            raise self.error(prefix + key, "is missing or not a mapping")
        section = parent[key]
        unknown = sorted(set(section) - set(allowed) - set(optional), key=str)
        if unknown:
            raise self.error(f"{prefix}{key}.{unknown[0]}",
                             f"unknown key; allowed: {', '.join((*allowed, *optional))}")
        missing = [k for k in allowed if k not in section]
        if missing:
            raise self.error(f"{prefix}{key}.{missing[0]}", "is required")
        return section

    def number(self, parent: Mapping[str, Any], key: str, field: str,
               low: float | None = None, high: float | None = None) -> float:
        value = parent.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise self.error(key, f"must be a number, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"{value} is outside {low}..{high}")
        return float(value)

    def weights(self, parent: Mapping[str, Any], key: str,
                allowed: tuple[str, ...]) -> dict[str, float]:
        section = self.mapping(parent, key)
        unknown = sorted(set(section) - set(allowed))
        if unknown:
            raise self.error(f"{key}.{unknown[0]}",
                             f"unknown indicator; allowed: {', '.join(allowed)}")
        weights = {k: self.number(section, f"{key}.{k}", k, 0) for k in section}
        if sum(weights.values()) <= 0:
            raise self.error(key, "needs at least one positive weight")
        return weights
