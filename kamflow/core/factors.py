"""A decision's churn factors as data: what scoring found, kept apart from any words.

``Factor`` is one top churn factor of a decision: the configured factor (``contract_ending``),
the signal it reads (``days_to_contract_end``), the signal's value in its own units (a share,
days, a count) at the precision a reader is shown, its warning level 0..1 (two decimals) and
its sign (+1: it raises the account's churn risk, which every top factor does today; -1 would
lower it). An operator signal (a mapping's ``signals:``, under a learnt model) also carries its
words (en, zh) from the mapping's labels, since the vocabulary has none of its own for it.

Scoring (scoring/explain.py) makes them, rules carry them on each decision, the task store keeps
them as JSON (``tasks.factors``, migration 0015) and the vocabulary words them, in English and
Chinese, at the edge (``vocabulary.factor_words``, ``vocabulary.ops_factor_text``).

``from_reason`` reads the factors back from a reason's text. It exists only for tasks stored
without ``factors`` (before 0015, or by a caller that passes text only): migration 0015 uses it
to convert them, and an email of such a task falls back on it. A reason it cannot read keeps
only its text. No new code path should need it.

Core layer: standard library only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FACTORS_MARK", "Factor", "dump_one", "dumps", "from_reason", "loads", "shown",
           "stored_value"]

# Between a reason's matched conditions and its factors (worklist/plan.py writes it).
FACTORS_MARK = ". Top churn factors: "
# An operator signal's factor in a reason's text: "signal_<name>: <en> | <zh> (level 1.00)".
SIGNAL_FACTOR = "signal_"
SIGNAL_WORDS = " | "

# How each shipped signal is shown: as a whole percent of a share (revenue decline as the
# revenue's change, -38 = down 38 %), whole, or as it is (counts).
_PERCENT = frozenset({"arrears_ratio", "revenue_volatility"})
_WHOLE = frozenset({"outage_hours_90d", "days_to_contract_end", "days_since_contact",
                    "relationship_months", "commitment_months"})


@dataclass(frozen=True)
class Factor:
    """One top churn factor of a decision (see the module's docstring)."""

    name: str
    signal: str
    value: float
    level: float
    sign: int = 1
    words: tuple[str, str] | tuple[()] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "signal": self.signal,
                                  "value": self.value, "level": self.level, "sign": self.sign}
        if self.words:
            out["words"] = list(self.words)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Factor:
        words = list(data.get("words") or ())
        en_zh: tuple[str, str] | tuple[()] = (str(words[0]), str(words[1])) \
            if len(words) == 2 else ()
        return cls(str(data["name"]), str(data["signal"]), float(data["value"]),
                   float(data["level"]), int(data.get("sign", 1)), en_zh)


def shown(signal: str, value: float) -> float:
    """The number a reader is shown for ``value`` of ``signal`` (the vocabulary's phrases take
    it): the revenue change in whole % (a decline of 0.38 shows -38), shares in whole %, days,
    hours and months whole, counts as they are. ``+ 0.0``: never "-0"."""
    if signal == "revenue_decline":
        return round(-value * 100.0) + 0.0
    if signal in _PERCENT:
        return round(value * 100.0) + 0.0
    if signal in _WHOLE:
        return round(value) + 0.0
    return value


def stored_value(signal: str, shown_number: float) -> float:
    """The value in the signal's own units that is shown as ``shown_number`` (``shown``'s
    inverse at its precision): what a Factor keeps, so it shows exactly what was shown."""
    if signal == "revenue_decline":
        return -shown_number / 100.0 + 0.0
    if signal in _PERCENT:
        return shown_number / 100.0
    if signal == "commitment_months":  # months still bound: none left is 0, never fewer
        return max(shown_number, 0.0)
    return shown_number


def dumps(factors: Iterable[Factor]) -> str:
    """Factors as the task store keeps them: a compact JSON array (``[]`` for none)."""
    return "[" + ",".join(dump_one(f) for f in factors) + "]"


def dump_one(factor: Factor) -> str:
    """One factor's JSON object, as ``dumps`` lists it (joined with "," inside "[...]", so a
    caller making many arrays of a few distinct factors encodes each factor once)."""
    return json.dumps(factor.to_dict(), ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=65536)
def loads(text: str | None) -> tuple[Factor, ...] | None:
    """Factors from their JSON; None for a task stored without them (NULL or empty). Cached: a
    run's tasks share a few thousand distinct factor sets."""
    if not text:
        return None
    return tuple(Factor.from_dict(item) for item in json.loads(text))


# -- reasons stored as text only -------------------------------------------------------------
# How a reason's text words each signal (vocabulary.ops_phrase writes it): (signal, sign of the
# number, words before it, words after it). "" before and after the number means a fixed phrase.
_TEXT_FORMS = (
    ("revenue_decline", 1, "revenue ", "%"),
    ("complaints_90d", 1, "", " complaints in 90 days"),
    ("sla_breaches_90d", 1, "", " SLA breaches in 90 days"),
    ("outage_hours_90d", 1, "", " outage hours in 90 days"),
    ("days_to_contract_end", 1, "contract ends in ", " days"),
    ("days_to_contract_end", -1, "contract ended ", " days ago"),
    ("arrears_ratio", 1, "arrears ", "% of billed"),
    ("days_since_contact", 1, "no contact for ", " days"),
    ("relationship_months", 1, "customer for ", " months"),
    ("commitment_months", 1, "committed for ", " more months"),
    ("competitor_complaints", 1, "", " billing, price or coverage complaints in a year"),
    ("revenue_volatility", 1, "monthly bill swings ", "%"),
)
_FIXED_FORMS = {"no commitment (month-to-month or out of contract)": ("commitment_months", 0.0)}
_LEVEL = " (level "


def from_reason(text: str) -> tuple[Factor, ...]:
    """The factors a reason's text names (or its factor part): those written with a value and
    a level in words this module knows; any other piece is left out."""
    _, mark, tail = text.rpartition(FACTORS_MARK)
    return _from_factor_text(tail if mark else text)


@functools.lru_cache(maxsize=65536)
def _from_factor_text(text: str) -> tuple[Factor, ...]:
    # Each factor ends with its level, "(level 0.95)": split there, since words may hold ", "
    # ("1 billing, price or coverage complaints in a year").
    found = []
    pieces = text.split("), ")
    for i, piece in enumerate(pieces):
        factor = _from_piece(piece.strip().rstrip(".") + (")" if i < len(pieces) - 1 else ""))
        if factor is not None:
            found.append(factor)
    return tuple(found)


def _from_piece(piece: str) -> Factor | None:
    name, colon, rest = piece.partition(": ")
    name = name.rpartition(", ")[2]  # after any bare names (a factor written without a value)
    words, has_level, level_text = rest.rpartition(_LEVEL)
    if not (colon and has_level and level_text.endswith(")") and name and " " not in name):
        return None
    level = _number(level_text[:-1])
    if level is None:
        return None
    if name.startswith(SIGNAL_FACTOR) and SIGNAL_WORDS in words:
        en, zh = words.split(SIGNAL_WORDS, 1)
        return Factor(name, name, 0.0, level, 1, (en, zh))
    if words in _FIXED_FORMS:
        signal, fixed = _FIXED_FORMS[words]
        return Factor(name, signal, stored_value(signal, fixed), level)
    for signal, sign, before, after in _TEXT_FORMS:
        if (words.startswith(before) and words.endswith(after)
                and len(words) > len(before) + len(after)):
            number = _number(words[len(before):len(words) - len(after)])
            if number is not None:
                return Factor(name, signal, stored_value(signal, sign * number + 0.0), level)
    return None


def _number(text: str) -> float | None:
    if not text or not all(c in "+-.0123456789" for c in text):
        return None
    try:
        return float(text)
    except ValueError:
        return None
