"""How well a churn ranking finds the accounts that did churn. Pure: arrays in, numbers out.

The retention team works down the list from the riskiest account, so besides the AUC what
matters is precision and recall in the top k% and the lift over picking accounts at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def roc_auc(risk: np.ndarray, churned: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count one half): the
    chance that a random churner is ranked above a random stayer. NaN without both kinds."""
    risk = np.asarray(risk, dtype="float64")
    churned = np.asarray(churned).astype(bool)
    positives, negatives = int(churned.sum()), int((~churned).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(risk).rank(method="average").to_numpy()
    u = ranks[churned].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


@dataclass(frozen=True)
class TopK:
    share: float        # the top share of accounts the team would act on, e.g. 0.05
    accounts: int       # how many accounts that is
    precision: float    # churners among them / accounts
    recall: float       # churners among them / all churners
    lift: float         # precision / base churn rate (1.0 = no better than random)


def top_k(risk: np.ndarray, churned: np.ndarray, share: float) -> TopK:
    """Precision, recall and lift in the ``share`` riskiest accounts (at least one account).
    Ties at the cut are broken by position, so the count is exactly k."""
    risk = np.asarray(risk, dtype="float64")
    churned = np.asarray(churned).astype(bool)
    n = len(risk)
    k = min(max(int(round(share * n)), 1), n)
    order = np.argsort(-risk, kind="stable")[:k]
    hits = int(churned[order].sum())
    total = int(churned.sum())
    precision = hits / k
    base = total / n if n else 0.0
    return TopK(share, k, precision, hits / total if total else float("nan"),
                precision / base if base else float("nan"))
