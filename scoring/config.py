"""Typed scoring configuration, checked key by key by strict pydantic models (see
conf/scoring.yaml). Pure: the caller reads the file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import AfterValidator, Field, ValidationError, model_validator

from kamflow.core.configmodel import ConfigModel, config_error
from kamflow.core.errors import ConfigError
from kamflow.intake.schema import INDUSTRIES

CurrentIndicator = Literal["avg_monthly_billed", "revenue_trend", "products_held",
                           "tenure_months", "payment_record", "cost_to_serve"]
PotentialIndicator = Literal["new_services", "employees", "strategic_industry"]
# Signals a churn factor may read: columns of the customer view, plus derived ones.
ChurnSignal = Literal["revenue_decline", "complaints_90d", "sla_breaches_90d",
                      "outage_hours_90d", "days_to_contract_end", "arrears_ratio",
                      "days_since_contact", "relationship_months", "commitment_months",
                      "competitor_complaints", "revenue_volatility"]
CURRENT_INDICATORS: tuple[str, ...] = get_args(CurrentIndicator)
POTENTIAL_INDICATORS: tuple[str, ...] = get_args(PotentialIndicator)
CHURN_SIGNALS: tuple[str, ...] = get_args(ChurnSignal)
# How value weights are set: the numbers in the file (expert judgement, Delphi) or the entropy
# weight method over the snapshot's indicators.
ValueWeightMethod = Literal["expert", "entropy"]
VALUE_WEIGHT_METHODS: tuple[str, ...] = get_args(ValueWeightMethod)
# What the daily run learns from a labelled history when it is given one (`kamflow run
# --history`): nothing (the configured factor weights stay), factor weights by information gain,
# or a model whose calibrated churn probability becomes churn_risk: a logistic regression,
# gradient boosting, or whichever of the two has the better cross-validated AUC (best_model).
LearnMethod = Literal["none", "information_gain", "logistic_regression", "gradient_boosting",
                      "best_model"]
LEARN_METHODS: tuple[str, ...] = get_args(LearnMethod)


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
class Calibration:
    """The configured churn risk (0..100) as a yearly churn probability: the logistic map
    p = 1 / (1 + exp(-(a + b * risk / 100))). Rising in the risk for ``b`` > 0; ``b`` = 0 (a
    refit from a history the risk score tells nothing about) gives every account the same
    probability. Used when the run has no learnt churn model (whose churn_risk is already a
    calibrated probability)."""

    a: float = -5.3  # log-odds at risk 0: 0.5 %
    b: float = 7.0   # log-odds per 100 risk points: risk 50 -> 14 %, risk 70 -> 40 %

    def probability(self, risk: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a + self.b * np.asarray(risk, dtype="float64")
                                     / 100.0)))


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
    calibration: Calibration = field(default_factory=Calibration)

    def with_factor_weights(self, weights: Mapping[str, float]) -> ScoringConfig:
        """The same configuration with the churn factors weighted by ``weights`` (by factor
        name), e.g. weights learnt from labelled history."""
        factors = tuple(replace(f, weight=float(weights[f.name])) for f in self.factors)
        if sum(f.weight for f in factors) <= 0:
            raise ConfigError("the churn factor weights are all zero")
        return replace(self, factors=factors)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "scoring config") -> ScoringConfig:
        """The configuration in ``doc`` (conf/scoring.yaml read as a mapping), every key checked;
        a problem is a ConfigError naming ``source`` and the key."""
        try:
            spec = _ScoringFile.model_validate(doc)
        except ValidationError as exc:
            raise config_error(source, exc, _ScoringFile) from None
        value, life, churn = spec.value, spec.lifecycle, spec.churn
        return cls(
            current_weights=dict(value.current.items()),
            potential_weights=dict(value.potential.items()),
            strategic_industry=dict(value.strategic_industry),
            current_cut=value.classes.cut("current"),
            potential_cut=value.classes.cut("potential"),
            identification_months=life.identification_months,
            development_months=life.development_months,
            growth_trend=life.growth_trend, decline_trend=life.decline_trend,
            factors=tuple(ChurnFactor(name, f.signal, f.weight, f.start, f.full)
                          for name, f in churn.factors.items()),
            band_medium=churn.bands.medium, band_high=churn.bands.high,
            band_critical=churn.bands.critical,
            value_weights=value.weights, learn=churn.learn,
            learnt_bands=LearntBands(**churn.learnt_bands.values()),
            calibration=Calibration(churn.calibration.a, churn.calibration.b),
            backtest=BacktestConfig(tuple(spec.backtest.top_k), spec.backtest.holdout_share,
                                    spec.backtest.seed, spec.backtest.folds),
        )


# --------------------------------------------------------------------------- the file's shape
# Strict models of conf/scoring.yaml (the parsing layer; ScoringConfig above is what scoring
# uses). Rules between keys (rising bands, start != full, a positive weight somewhere) are
# validators of the section they span, so the error names that section.

Number = float  # strict: an int is a number, "0.15", true, NaN and inf are not
Share = Annotated[float, Field(ge=0, le=1)]
Score = Annotated[float, Field(ge=0, le=100)]
Weight = Annotated[float, Field(ge=0)]


def _positive_weight(weights: dict[Any, float]) -> dict[Any, float]:
    if sum(weights.values()) <= 0:
        raise ValueError("needs at least one positive weight")
    return weights


def _known_industry(name: str) -> str:
    # A misspelt industry would silently score 0 for strategic importance.
    if name not in INDUSTRIES:
        raise ValueError(f"unknown industry {name!r}; known: {', '.join(INDUSTRIES)}")
    return name


class _Classes(ConfigModel):
    """Per value dimension exactly one cut: ``<dimension>_cutoff`` (a score 0..100),
    ``<dimension>_top_share`` (0..1 of the accounts) or ``current_min_monthly_cny`` (CNY,
    current value only)."""

    current_cutoff: Score | None = None
    current_top_share: Share | None = None
    current_min_monthly_cny: Weight | None = None
    potential_cutoff: Score | None = None
    potential_top_share: Share | None = None

    def given(self, dimension: str) -> list[str]:
        return [k for k in CLASS_CUTS if getattr(self, f"{dimension}_{k}", None) is not None]

    def cut(self, dimension: str) -> ClassCut:
        kind = self.given(dimension)[0]
        return ClassCut(CLASS_CUTS[kind], float(getattr(self, f"{dimension}_{kind}")))

    @model_validator(mode="after")
    def _one_cut_each(self) -> _Classes:
        for dimension in ("current", "potential"):
            if len(self.given(dimension)) != 1:
                choices = ", ".join(f"{dimension}_{k}" for k in CLASS_CUTS
                                    if hasattr(self, f"{dimension}_{k}"))
                raise ValueError(f"give exactly one of {choices} for the {dimension} value")
        return self


class _Value(ConfigModel):
    weights: ValueWeightMethod = "expert"
    current: Annotated[dict[CurrentIndicator, Weight], AfterValidator(_positive_weight)]
    potential: Annotated[dict[PotentialIndicator, Weight], AfterValidator(_positive_weight)]
    strategic_industry: dict[Annotated[str, AfterValidator(_known_industry)], Share]
    classes: _Classes


class _Lifecycle(ConfigModel):
    identification_months: Weight
    development_months: Weight
    growth_trend: Number
    decline_trend: Number


class _Factor(ConfigModel):
    signal: ChurnSignal
    weight: Weight
    start: Number
    full: Number

    @model_validator(mode="after")
    def _ramps(self) -> _Factor:
        if self.start == self.full:
            raise ValueError("start and full must differ")
        return self


def _some_factor_weighs(factors: dict[str, _Factor]) -> dict[str, _Factor]:
    if sum(f.weight for f in factors.values()) <= 0:
        raise ValueError("at least one factor with a positive weight is needed")
    return factors


class _Bands(ConfigModel):
    medium: Score
    high: Score
    critical: Score

    @model_validator(mode="after")
    def _rising(self) -> _Bands:
        if not self.medium < self.high < self.critical:
            raise ValueError("cut-offs must rise: medium < high < critical")
        return self


class _LearntBand(ConfigModel):
    rate_multiple: Weight | None = None  # None: LearntBands' default for that band
    top_share: Share | None = None


class _LearntBands(ConfigModel):
    """Per band a ``rate_multiple`` and a ``top_share``, multiples rising from medium to
    critical and shares falling; an absent band or key keeps LearntBands' default."""

    medium: _LearntBand = _LearntBand()
    high: _LearntBand = _LearntBand()
    critical: _LearntBand = _LearntBand()

    def values(self) -> dict[str, float]:
        default, out = LearntBands(), {}
        for band in ("medium", "high", "critical"):
            part: _LearntBand = getattr(self, band)
            out[f"{band}_multiple"] = (part.rate_multiple if part.rate_multiple is not None
                                       else getattr(default, f"{band}_multiple"))
            out[f"{band}_top_share"] = (part.top_share if part.top_share is not None
                                        else getattr(default, f"{band}_top_share"))
        return out

    @model_validator(mode="after")
    def _ordered(self) -> _LearntBands:
        v = self.values()
        if not v["medium_multiple"] < v["high_multiple"] < v["critical_multiple"]:
            raise ValueError("rate multiples must rise: medium < high < critical")
        if not v["medium_top_share"] >= v["high_top_share"] >= v["critical_top_share"]:
            raise ValueError("top shares must not rise: medium >= high >= critical")
        return self


class _Calibration(ConfigModel):
    """The logistic map of the configured churn risk to a yearly churn probability; ``b`` > 0
    so that the probability rises with the risk."""

    a: Number = Calibration().a
    b: Annotated[float, Field(gt=0)] = Calibration().b


class _Churn(ConfigModel):
    factors: Annotated[dict[str, _Factor], AfterValidator(_some_factor_weighs)]
    bands: _Bands
    learn: LearnMethod = "best_model"
    learnt_bands: _LearntBands = _LearntBands()
    calibration: _Calibration = _Calibration()


def _shares_above_zero(shares: list[float]) -> list[float]:
    if not shares:
        raise ValueError("must be a list of shares such as [0.01, 0.05, 0.10]")
    if 0 in shares:
        raise ValueError("a share must be above 0")
    return shares


class _Backtest(ConfigModel):
    top_k: Annotated[list[Share], AfterValidator(_shares_above_zero)] = \
        list(BacktestConfig().top_k)
    holdout_share: Annotated[float, Field(ge=0.05, le=0.95)] = BacktestConfig().holdout_share
    seed: int = BacktestConfig().seed
    folds: Annotated[int, Field(ge=2, le=20)] = BacktestConfig().folds


class _ScoringFile(ConfigModel):
    value: _Value
    lifecycle: _Lifecycle
    churn: _Churn
    backtest: _Backtest = _Backtest()
