"""Churn explanations an account manager can read: each top factor with the value behind it.

``score_accounts`` stores, for churn_factor_1..3, the factor's signal (``_signal``), its value
(``_value``) and its warning level 0..1 (``_level``); this turns them into text such as
``revenue_decline: revenue -38% (level 0.95)``. Pure; called only for the accounts a rule acts
on, so formatting costs nothing on the accounts nobody will read about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kamflow.core.vocabulary import SIGNAL_WORDS
from kamflow.intake.signals import Signal

FACTOR_COLUMNS = ("churn_factor_1", "churn_factor_2", "churn_factor_3")


def shown_value(signal: str, values: np.ndarray) -> np.ndarray:
    """The number an account manager sees for a signal: percents and days rounded whole."""
    if signal == "revenue_decline":
        return np.round(-values * 100.0) + 0.0   # the revenue change in %: -38
    if signal == "arrears_ratio":
        return np.round(values * 100.0) + 0.0
    if signal in ("outage_hours_90d", "days_to_contract_end", "days_since_contact",
                  "relationship_months", "commitment_months"):
        return np.round(values) + 0.0            # + 0.0: never print "-0"
    if signal == "revenue_volatility":
        return np.round(values * 100.0) + 0.0    # the bill's swing in %
    return values


def describe_signal(signal: str, value: float) -> str:
    """The signal's value in the words of the account manager."""
    return _words(signal, float(shown_value(signal, np.array([value], dtype="float64"))[0]))


def _words(signal: str, shown: float) -> str:
    # The stored, ops-facing text; kamflow.core.vocabulary.parse_factors reads it back so
    # emails can word the factors in their reader's language (a test keeps the two in step).
    if signal == "revenue_decline":
        return f"revenue {shown:+.0f}%"
    if signal == "complaints_90d":
        return f"{shown:g} complaints in 90 days"
    if signal == "sla_breaches_90d":
        return f"{shown:g} SLA breaches in 90 days"
    if signal == "outage_hours_90d":
        return f"{shown:.0f} outage hours in 90 days"
    if signal == "days_to_contract_end":
        return (f"contract ends in {shown:.0f} days" if shown >= 0
                else f"contract ended {-shown:.0f} days ago")
    if signal == "arrears_ratio":
        return f"arrears {shown:.0f}% of billed"
    if signal == "days_since_contact":
        return f"no contact for {shown:.0f} days"
    if signal == "relationship_months":
        return f"customer for {shown:.0f} months"
    if signal == "commitment_months":
        return ("no commitment (month-to-month or out of contract)" if shown <= 0
                else f"committed for {shown:.0f} more months")
    if signal == "competitor_complaints":
        return f"{shown:g} billing, price or coverage complaints in a year"
    if signal == "revenue_volatility":
        return f"monthly bill swings {shown:.0f}%"
    return f"{signal} {shown:g}"


def signal_words(signal: Signal, value: float, lang: str = "en") -> str:
    """An operator signal's value under its label in ``lang``: ``contract type =
    month-to-month`` / ``合约类型为按月`` (a categorical ``value`` is its level's position)."""
    zh = lang.lower().startswith("zh")
    if signal.type == "categorical":
        position = int(value)
        level = signal.levels[position] if 0 <= position < len(signal.levels) else str(value)
        shown = signal.level_label(level, lang)
    elif signal.type == "boolean":
        shown = ("是" if value else "否") if zh else ("yes" if value else "no")
    else:
        shown = f"{value:g}"
    return f"{signal.label(lang)}为{shown}" if zh else f"{signal.label(lang)} = {shown}"


def factor_text(scored: pd.DataFrame) -> np.ndarray:
    """Per account: its top churn factors, comma-separated; with values and levels when the
    frame carries them (a frame without them gives the bare names). An operator signal among
    them (under a learnt model) is worded with its labels from the mapping, in English and
    Chinese (``contract type = month-to-month | 合约类型为按月``): emails pick their reader's
    language from it (kamflow.core.vocabulary.parse_factors)."""
    columns = [c for c in FACTOR_COLUMNS if c in scored]
    if not columns:
        return np.full(len(scored), "", dtype=object)
    detailed = all(f"{c}_{part}" in scored for c in columns for part in ("signal", "value",
                                                                         "level"))
    operator = {s.column: s for s in scored.attrs.get("operator_signals", ())}
    pieces = []
    for column in columns:
        names = scored[column].fillna("").to_numpy(dtype=object)
        if detailed:
            names = _detailed(names, scored[f"{column}_signal"].to_numpy(dtype=object),
                              scored[f"{column}_value"].to_numpy(dtype="float64"),
                              scored[f"{column}_level"].to_numpy(dtype="float64"),
                              operator)
        pieces.append(names)
    text = pieces[0]
    for piece in pieces[1:]:
        text = np.where(piece == "", text, text + ", " + piece)
    return text


def _detailed(names: np.ndarray, signals: np.ndarray, values: np.ndarray,
              levels: np.ndarray, operator: dict[str, Signal] | None = None) -> np.ndarray:
    """Names with their values and levels. Many accounts share what they show (3 complaints,
    level 0.75), so each distinct combination is formatted once: fast on a million accounts."""
    signals = np.where(pd.isna(signals), "", signals).astype(object)
    shown = np.full(len(values), np.nan)
    for signal in pd.unique(signals):
        chosen = signals == signal
        shown[chosen] = shown_value(str(signal), values[chosen])
    # One integer key per distinct (name, signal, shown, level); NaN gets a code of its own.
    parts = [pd.factorize(column, use_na_sentinel=False)
             for column in (names, signals, shown, levels)]
    key = np.zeros(len(names), dtype="int64")
    for codes, uniques in parts:
        key = key * max(len(uniques), 1) + codes
    codes, distinct = pd.factorize(key)
    texts = []
    for combined in distinct:
        picked = []
        for _, uniques in reversed(parts):
            combined, code = divmod(int(combined), max(len(uniques), 1))
            picked.append(uniques[code])
        level, number, signal, name = picked
        texts.append(_detail(name, signal, number, level, operator or {}))
    return np.array(texts, dtype=object)[codes] if texts else names


def _detail(name: str, signal: str, shown: float, level: float,
            operator: dict[str, Signal]) -> str:
    if not name or not signal or pd.isna(shown):
        return name
    words = (f"{signal_words(operator[signal], shown, 'en')}{SIGNAL_WORDS}"
             f"{signal_words(operator[signal], shown, 'zh')}" if signal in operator
             else _words(signal, shown))
    return f"{name}: {words} (level {level:.2f})"
