"""Objective weights, as the operators' method describes them. Pure: arrays in, weights out.

* Value indicators: the **entropy weight method** (熵权法). An indicator whose values are spread
  unevenly over the accounts tells them apart more, so it weighs more.
* Churn factors: **information entropy** over labelled history. A factor weighs what its
  warning level tells about churn: the information gain H(churn) − H(churn | level), in bits.
"""

from __future__ import annotations

import numpy as np

# A factor's warning level 0..1 is read as four states for the entropy: silent, raised below
# half, raised from half, full. Few states keep the counts per state large on small histories.
LEVEL_EDGES = (1e-12, 0.5, 1.0)


def entropy_weights(indicators: np.ndarray) -> np.ndarray:
    """Entropy weights of the columns of ``indicators`` (accounts × indicators, higher = better).

    Each column is min-max normalised, p_ij = x_ij / Σ_i x_ij, e_j = −Σ_i p_ij ln p_ij / ln n,
    and w_j = (1 − e_j) / Σ_k (1 − e_k). Missing or infinite cells count as the column's worst
    value. A column that is constant tells nothing and gets weight 0; if every column is
    constant the weights are equal.
    """
    x = np.asarray(indicators, dtype="float64")
    n, m = x.shape
    if n < 2:
        return np.full(m, 1.0 / m)
    divergence = np.zeros(m)
    for j in range(m):
        column = x[:, j]
        finite = np.isfinite(column)
        if not finite.any():
            continue
        low, high = column[finite].min(), column[finite].max()
        if high <= low:
            continue
        normalised = np.where(finite, (column - low) / (high - low), 0.0)
        p = normalised / normalised.sum()
        nonzero = p[p > 0]
        entropy = -(nonzero * np.log(nonzero)).sum() / np.log(n)
        divergence[j] = 1.0 - entropy
    total = divergence.sum()
    return divergence / total if total > 0 else np.full(m, 1.0 / m)


def entropy_bits(labels: np.ndarray) -> float:
    """H(x) = −Σ p(xᵢ) log₂ p(xᵢ) of a discrete variable."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def information_gain(states: np.ndarray, churned: np.ndarray) -> float:
    """H(churned) − H(churned | states), in bits: what knowing the state says about churn."""
    states, churned = np.asarray(states), np.asarray(churned)
    conditional = 0.0
    for state in np.unique(states):
        chosen = states == state
        conditional += chosen.mean() * entropy_bits(churned[chosen])
    return max(entropy_bits(churned) - conditional, 0.0)


def warning_states(levels: np.ndarray) -> np.ndarray:
    """Warning levels 0..1 as the discrete states the entropy is counted over."""
    return np.digitize(levels, LEVEL_EDGES)


def factor_information_gain(levels: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Information gain of each factor's warning state (columns of ``levels``) about churn."""
    churned = np.asarray(churned).astype(int)
    return np.array([information_gain(warning_states(levels[:, i]), churned)
                     for i in range(levels.shape[1])])


def information_gain_weights(levels: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Churn factor weights from labelled history: each factor's information gain about churn,
    normalised to sum to 1 and rounded to 4 places (the weights shown are the weights used).
    All zero when no factor tells anything."""
    gain = factor_information_gain(levels, churned)
    total = gain.sum()
    return np.round(gain / total, 4) if total > 0 else np.zeros(len(gain))
