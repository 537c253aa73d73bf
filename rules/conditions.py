"""Pure operations on parsed conditions: negation normal form and vectorised evaluation.

The vectorised evaluation is the straightforward reference that durable-rules' decisions are
checked against, and it explains a decision: which leaves matched, with the account's values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kamflow.rules.language import Condition, Leaf, Node

_NEGATED = {"eq": "ne", "ne": "eq", "lt": "gte", "gte": "lt", "lte": "gt", "gt": "lte",
            "in": "not_in", "not_in": "in"}
_SYMBOL = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "in": "in",
           "not_in": "not in", "between": "between"}


def nnf(condition: Condition, negate: bool = False) -> Condition:
    """Push every ``not`` down to the leaves (durable-rules has no negation operator)."""
    if isinstance(condition, Leaf):
        if not negate:
            return condition
        if condition.op == "between":
            low, high = condition.value
            return Node("any", (Leaf(condition.field, "lt", low),
                                Leaf(condition.field, "gt", high)))
        return Leaf(condition.field, _NEGATED[condition.op], condition.value)
    if condition.kind == "not":
        return nnf(condition.children[0], not negate)
    kind = condition.kind if not negate else ("any" if condition.kind == "all" else "all")
    return Node(kind, tuple(nnf(child, negate) for child in condition.children))


def evaluate_leaf(leaf: Leaf, frame: pd.DataFrame) -> np.ndarray:
    values = frame[leaf.field].to_numpy()
    op, constant = leaf.op, leaf.value
    if op == "eq":
        return values == constant
    if op == "ne":
        return values != constant
    if op == "lt":
        return values < constant
    if op == "lte":
        return values <= constant
    if op == "gt":
        return values > constant
    if op == "gte":
        return values >= constant
    if op == "in":
        return np.isin(values, list(constant))
    if op == "not_in":
        return ~np.isin(values, list(constant))
    if op == "between":
        return (values >= constant[0]) & (values <= constant[1])
    raise ValueError(f"unknown operator {op!r}")


def evaluate(condition: Condition, frame: pd.DataFrame) -> np.ndarray:
    if isinstance(condition, Leaf):
        return np.asarray(evaluate_leaf(condition, frame), dtype=bool)
    parts = [evaluate(child, frame) for child in condition.children]
    if condition.kind == "all":
        return np.logical_and.reduce(parts)
    if condition.kind == "any":
        return np.logical_or.reduce(parts)
    return ~parts[0]


def explain(condition: Condition, frame: pd.DataFrame) -> np.ndarray:
    """For each row, the matched leaves with the row's values, e.g. ``churn_risk=61.2 (≥ 55)``.

    Rows where the condition is false get an empty string.
    """
    truth, relevant = _relevant_leaves(nnf(condition), frame)
    text = np.full(len(frame), "", dtype=object)
    for leaf, mask in relevant:
        piece = _leaf_text(leaf, frame)
        piece = np.where(mask & truth, piece, "")
        text = np.where(text == "", piece, np.where(piece == "", text, text + "; " + piece))
    return text


def _relevant_leaves(condition: Condition,
                     frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[Leaf, np.ndarray]]]:
    if isinstance(condition, Leaf):
        truth = np.asarray(evaluate_leaf(condition, frame), dtype=bool)
        return truth, [(condition, truth)]
    parts = [_relevant_leaves(child, frame) for child in condition.children]
    truths = [t for t, _ in parts]
    truth = np.logical_and.reduce(truths) if condition.kind == "all" else \
        np.logical_or.reduce(truths)
    relevant = [(leaf, mask & truth) for _, leaves in parts for leaf, mask in leaves]
    return truth, relevant


def _leaf_text(leaf: Leaf, frame: pd.DataFrame) -> np.ndarray:
    values = frame[leaf.field]
    shown = values.round(2).astype(str) if values.dtype.kind == "f" else values.astype(str)
    constant = leaf.value
    if isinstance(constant, tuple):
        constant = "[" + ", ".join(_fmt(c) for c in constant) + "]"
    else:
        constant = _fmt(constant)
    return (leaf.field + "=" + shown + f" ({_SYMBOL[leaf.op]} {constant})").to_numpy(dtype=object)


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
