"""Operator signals: extra per-account columns an operator declares in a mapping file.

A mapping's ``signals:`` section (docs/mapping.md) names columns of the operator's accounts
export that kamflow has no built-in use for (contract type, payment method, support tickets),
each with a type (``numeric``, ``boolean``, or ``categorical`` with its levels) and a zh/en
label. Intake carries each into the accounts table and the customer view as ``signal_<name>``;
validation checks it with expectations made from the declaration; learnt churn models use it
(numeric as is, boolean 0/1, categorical one-hot over the declared levels); rules can test it;
explanations name it by its label in the reader's language.

Parsed strictly (pydantic): an unknown key, a missing label or a level a ``values`` relabelling
does not declare is a ConfigError naming the mapping file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator

from kamflow.core.configmodel import ConfigModel, config_error
from kamflow.core.errors import ConfigError

PREFIX = "signal_"
SIGNAL_TYPES = ("numeric", "boolean", "categorical")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LEVEL = re.compile(r"^[\w][\w.+-]{0,39}$")


class _Words(ConfigModel):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    @field_validator("zh", "en")
    @classmethod
    def _plain(cls, words: str) -> str:
        # A task's stored reason separates factors by ", " and a signal's two languages by
        # " | " (vocabulary.ops_factor_text): words holding them would blur that text, and a
        # task stored as text only could not be read back (kamflow.core.factors.from_reason).
        if "|" in words or ", " in words or "(" in words:
            raise ValueError(f"{words!r}: words may not contain '|', ', ' or '('")
        return words


class _SignalModel(ConfigModel):
    from_: str = Field(alias="from", min_length=1)
    type: Literal["numeric", "boolean", "categorical"]
    label: _Words
    levels: list[str] | dict[str, _Words] | None = None
    values: dict[str | bool | int | float, str | int | float | bool] | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None

    @field_validator("levels", mode="before")
    @classmethod
    def _level_names(cls, levels: Any) -> Any:
        names = list(levels) if isinstance(levels, Mapping | list) else []
        for name in names:
            if not isinstance(name, str) or not _LEVEL.match(name):
                raise ValueError(f"level {name!r} must be a word (letters, digits, _ . + -), "
                                 "e.g. month_to_month")
        if len(set(names)) != len(names):
            raise ValueError("each level may be listed once")
        return levels

    @model_validator(mode="after")
    def _consistent(self) -> _SignalModel:
        if self.type == "categorical":
            if not self.levels or len(self.levels) < 2:
                raise ValueError("a categorical signal needs 'levels': at least two")
            declared = set(self.levels)
            bad = [v for v in (self.values or {}).values() if str(v) not in declared]
            if bad:
                raise ValueError(f"'values' maps to {bad[0]!r}, which is not one of the levels "
                                 f"({', '.join(self.levels)})")
        elif self.levels is not None:
            raise ValueError(f"'levels' is for categorical signals, not {self.type}")
        if self.type != "numeric" and (self.min is not None or self.max is not None):
            raise ValueError("'min' and 'max' are for numeric signals")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' must not be above 'max'")
        return self


@dataclass(frozen=True)
class Signal:
    """One declared operator signal."""

    name: str
    source: str                       # the accounts export's column (or a ``let`` helper)
    type: str                         # numeric | boolean | categorical
    label_zh: str
    label_en: str
    levels: tuple[str, ...] = ()      # categorical: the declared levels, in order
    level_labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # (zh, en)
    values: Mapping[str, Any] | None = None  # relabelling of the export's values
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    key: str = ""                     # where it is declared: signals.contract_type

    @property
    def column(self) -> str:
        """Its column in the accounts table, the customer view and the scored frame."""
        return PREFIX + self.name

    def label(self, lang: str) -> str:
        return self.label_zh if lang.lower().startswith("zh") else self.label_en

    def level_label(self, level: str, lang: str) -> str:
        """A categorical level in words (the level itself where the mapping gives none)."""
        words = self.level_labels.get(level)
        if words is None:
            return level
        return words[0] if lang.lower().startswith("zh") else words[1]

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's columns for it: one, or one per level (``signal_contract_type=one_year``)."""
        if self.type == "categorical":
            return tuple(f"{self.column}={level}" for level in self.levels)
        return (self.column,)

    def features(self, view: pd.DataFrame) -> np.ndarray:
        """Its model columns for ``view`` (accounts × feature_names). Missing: 0 (no level
        set, as the built-in signals count a missing value as no warning)."""
        n = len(view)
        if self.column not in view:
            return np.zeros((n, len(self.feature_names)))
        values = view[self.column]
        if self.type == "categorical":
            text = values.astype("str").to_numpy(dtype=object)
            return np.column_stack([(text == level) for level in self.levels]).astype(float)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        return np.nan_to_num(numbers, nan=0.0, posinf=0.0, neginf=0.0)[:, None]


def parse_signals(raw: Any, source: object) -> tuple[Signal, ...]:
    """The ``signals:`` section of a mapping file (``source`` names the file in errors)."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: key 'signals' must map signal names to declarations, "
                          "e.g. contract_type: {from: Contract, type: categorical, ...}")
    signals = []
    for name, spec in raw.items():
        key = f"signals.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{source}: key '{key}': a signal name is lower-case letters, "
                              "digits and _, starting with a letter (at most 40), e.g. "
                              "contract_type")
        try:
            model = _SignalModel.model_validate(spec if spec is not None else {})
        except ValidationError as exc:
            raise config_error(source, exc, _SignalModel, key) from None
        levels = model.levels or ()
        level_labels = ({k: (w.zh, w.en) for k, w in levels.items()}
                        if isinstance(levels, dict) else {})
        signals.append(Signal(
            name, model.from_, model.type, model.label.zh, model.label.en, tuple(levels),
            level_labels, _relabelling(model.values), model.required, model.min, model.max,
            key))
    return tuple(signals)


def _relabelling(values: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    # A YAML yes/no read as a boolean is the label yes/no; a boolean target is 1/0.
    return {("yes" if k is True else "no" if k is False else str(k)):
            (float(v) if isinstance(v, bool) else v) for k, v in values.items()}


def signal_columns(frame: pd.DataFrame) -> list[str]:
    """The operator-signal columns a frame carries."""
    return [c for c in frame.columns if isinstance(c, str) and c.startswith(PREFIX)]
