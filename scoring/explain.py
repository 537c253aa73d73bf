"""Churn explanations an account manager can read: each top factor with the value behind it.

``score_accounts`` stores, for churn_factor_1..3, the factor's signal (``_signal``), its value
(``_value``) and its warning level 0..1 (``_level``); ``explain_factors`` turns them into the
decisions' factors as data (``kamflow.core.factors.Factor``, as the JSON the task store keeps)
and, worded by the vocabulary from that data, the ops' text of the stored reason
(``revenue_decline: revenue -38% (level 0.95)``). Pure; called only for the accounts a rule acts
on, and each distinct combination of factors is built once, so it costs little on a million.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kamflow.core import factors as factor_data
from kamflow.core.factors import Factor
from kamflow.core.vocabulary import ops_factor_text, ops_phrase
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
    """The signal's value in the words of the ops (``kamflow tasks show``)."""
    return ops_phrase(signal, float(shown_value(signal, np.array([value], dtype="float64"))[0]))


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
    """Per account: its top churn factors as the stored reason lists them, comma-separated
    (``explain_factors``'s text)."""
    return explain_factors(scored)[0]


def explain_factors(scored: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per account: (its top churn factors as the ops' text, the same factors as JSON data).

    With values and levels when the frame carries them; a frame without them gives the bare
    names as text and no factor data (``[]``). An operator signal among them (under a learnt
    model) carries its words from the mapping's labels, in English and Chinese (``contract
    type = month-to-month`` / ``合约类型为按月``): the vocabulary has none of its own for it.
    Each distinct combination of factors is worded and encoded once and spread to its rows."""
    count = len(scored)
    columns = [c for c in FACTOR_COLUMNS if c in scored]
    if not columns:
        return np.full(count, "", dtype=object), np.full(count, "[]", dtype=object)
    detailed = all(f"{c}_{part}" in scored for c in columns for part in ("signal", "value",
                                                                         "level"))
    operator = {s.column: s for s in scored.attrs.get("operator_signals", ())}
    # Per rank: a code per row, and per code (its text, its JSON object or "" for none).
    ranks: list[tuple[np.ndarray, list[tuple[str, str]]]] = []
    for column in columns:
        names = scored[column].fillna("").to_numpy(dtype=object)
        if detailed:
            ranks.append(_distinct(names, scored[f"{column}_signal"].to_numpy(dtype=object),
                                   scored[f"{column}_value"].to_numpy(dtype="float64"),
                                   scored[f"{column}_level"].to_numpy(dtype="float64"),
                                   operator))
        else:
            codes, uniques = pd.factorize(names)
            ranks.append((codes, [(str(name), "") for name in uniques]))
    # One dense code per distinct combination of the ranks' factors, and a row showing each.
    key = ranks[0][0].astype("int64")
    for codes, entries in ranks[1:]:
        key = pd.factorize(key * max(len(entries), 1) + codes)[0]
    combinations = int(key.max()) + 1 if count else 0
    first = np.empty(combinations, dtype="int64")
    first[key[::-1]] = np.arange(count - 1, -1, -1)
    texts = objects = np.full(combinations, "", dtype=object)
    for rank, (codes, entries) in enumerate(ranks):
        shown = codes[first]
        text = np.array([e[0] for e in entries] or [""], dtype=object)[shown]
        obj = np.array([e[1] for e in entries] or [""], dtype=object)[shown]
        texts = text if rank == 0 else np.where(text == "", texts, texts + ", " + text)
        objects = np.where(obj == "", objects,
                           np.where(objects == "", obj, objects + "," + obj))
    return texts[key], ("[" + objects + "]")[key]


def _distinct(names: np.ndarray, signals: np.ndarray, values: np.ndarray, levels: np.ndarray,
              operator: dict[str, Signal]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """One rank's factors: per row a code, per code (its text, its JSON object; "" for a bare
    name or none). Many accounts share what they show (3 complaints, level 0.75), so each
    distinct (name, signal, shown value, level) is built once: fast on a million accounts."""
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
    entries = []
    for combined in distinct:
        picked = []
        for _, uniques in reversed(parts):
            combined, code = divmod(int(combined), max(len(uniques), 1))
            picked.append(uniques[code])
        level, number, signal, name = picked
        entries.append(_entry(str(name), str(signal), float(number), float(level), operator))
    return codes, entries


def _entry(name: str, signal: str, shown: float, level: float,
           operator: dict[str, Signal]) -> tuple[str, str]:
    if not name or not signal or pd.isna(shown):
        return name, ""
    if signal in operator:
        words = (signal_words(operator[signal], shown, "en"),
                 signal_words(operator[signal], shown, "zh"))
        factor = Factor(name, signal, shown, float(f"{level:.2f}"), 1, words)
    else:
        factor = Factor(name, signal, factor_data.stored_value(signal, shown),
                        float(f"{level:.2f}"))
    return ops_factor_text((factor,)), factor_data.dump_one(factor)
