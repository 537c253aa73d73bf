"""Read a labelled history: a past snapshot and the known churn outcome of its accounts.

The same reading serves ``kamflow backtest`` (measure churn risk) and the daily run given
``--history`` (learn churn risk, scoring.learn): the snapshot is read and validated by the
plan's ``accept`` (flows/plan.py) as a daily snapshot is, then each accepted account is matched
by id to its outcome in the labels file. Every problem is an ``InputError`` naming the file
and, where it is about one, the column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kamflow.core.errors import BatchRejected, InputError
from kamflow.expectations import ValidationPolicy
from kamflow.flows import plan
from kamflow.intake import SnapshotMapping
from kamflow.intake.labels import GROUND_TRUTH, read_outcomes
from kamflow.intake.signals import Signal

# Why the matched outcomes will not do (None: they will), e.g. scoring.learn.history_problem.
OutcomeCheck = Callable[[np.ndarray], "str | None"]


@dataclass(frozen=True)
class HistorySource:
    """Where a labelled history is. Without ``labels`` the snapshot's own ``ground_truth.csv``
    (what ``kamflow generate`` writes) is used; a flat export that carries its outcome (IBM Telco:
    ``Churn``) names itself as the labels file."""

    source: str                       # the past snapshot's directory
    labels: str | None = None         # labels CSV (default: SOURCE/ground_truth.csv)
    id_column: str | None = None      # default: account_id
    label_column: str | None = None   # 1 = churned (default: declining / churned, see columns)
    as_of: str | None = None          # the date the snapshot was taken, YYYY-MM-DD

    @property
    def labels_path(self) -> Path:
        return Path(self.labels) if self.labels else Path(self.source) / GROUND_TRUTH[0]

    @property
    def columns(self) -> tuple[str, str]:
        """The id and outcome columns of the labels file: as named, else ``account_id`` and
        ``declining`` for ground_truth.csv, ``account_id`` and ``churned`` for another file."""
        return (self.id_column or GROUND_TRUTH[1],
                self.label_column or (GROUND_TRUTH[2] if self.labels is None else "churned"))


@dataclass
class LabelledHistory:
    """The history's accepted accounts that have a known outcome, and where it came from."""

    view: pd.DataFrame        # the accepted accounts that have a known outcome
    churned: np.ndarray       # 0/1, one per row of view
    labels: Path
    label_column: str
    accounts_in_snapshot: int
    accounts_without_outcome: int
    signals: tuple[Signal, ...] = ()  # the mapping's operator signals (view: signal_<name>)


def read_labelled_history(spec: HistorySource, mapping: SnapshotMapping | None,
                          validation: ValidationPolicy, as_of: dt.date,
                          check: OutcomeCheck) -> LabelledHistory:
    """Intake, validation and the customer view of ``spec.source`` (dated ``spec.as_of``, else
    ``as_of``), with the outcomes of ``spec.labels``; ``check`` refuses too few outcomes."""
    source = Path(spec.source)
    if not source.is_dir():
        raise InputError("the history snapshot directory does not exist", file=str(source))
    labels = spec.labels_path
    id_column, label_column = spec.columns
    outcomes = read_outcomes(labels, id_column, label_column)
    date = _date(spec.as_of) if spec.as_of else as_of
    accepted = plan.accept(source, date, validation, mapping)
    if accepted.view is None:
        raise BatchRejected(f"the history snapshot {source} was stopped by validation: "
                            f"{accepted.validation.message}")
    view = accepted.view
    known = view["account_id"].astype(str).map(outcomes)
    labelled = known.notna().to_numpy()
    churned = known[labelled].astype(int).to_numpy()
    problem = check(churned)
    if problem:
        raise InputError(problem, file=str(labels), field=label_column)
    return LabelledHistory(view[labelled].reset_index(drop=True), churned, labels, label_column,
                           len(view), int((~labelled).sum()),
                           mapping.signals if mapping is not None else ())


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"the history date {text!r} is not a date YYYY-MM-DD") from None
