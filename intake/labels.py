"""Read the known churn outcome of accounts: a labels CSV, one row per account.

An id column and a 0/1 column (also yes/no, true/false, 是/否, churned/retained). A blank outcome
is unknown; any other value is refused with its line, never guessed. ``kamflow generate`` writes
one with every snapshot: ``ground_truth.csv`` (``account_id``, ``declining``).
"""

from __future__ import annotations

from pathlib import Path

from kamflow.core.errors import InputError
from kamflow.intake.files import ROW, read_table_file

GROUND_TRUTH = ("ground_truth.csv", "account_id", "declining")  # file, id column, label column
_OUTCOMES = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "yes": 1, "no": 0,
             "y": 1, "n": 0, "是": 1, "否": 0, "churned": 1, "retained": 0}


def read_outcomes(path: Path, id_column: str, label_column: str) -> dict[str, int]:
    """account id -> 1 (churned) or 0 from a labels CSV; a blank outcome is unknown, any other
    unknown value is refused with its line (never guessed)."""
    if not path.is_file():
        raise InputError("the labels file does not exist", file=str(path))
    frame = read_table_file(path)
    missing = [c for c in (id_column, label_column) if c not in frame]
    if missing:
        columns = ", ".join(c for c in frame.columns if c != ROW)
        raise InputError(f"the labels file has no column {missing[0]!r} (it has: {columns}); "
                         "say which columns hold the account id and the outcome (the "
                         "id-column and label-column options)", file=str(path), field=missing[0])
    text = frame[label_column].fillna("").astype(str).str.strip().str.lower()
    values = text.map(_OUTCOMES)
    bad = values.isna() & (text != "")
    if bad.any():
        row = frame.loc[bad, ROW].iloc[0]
        raise InputError(f"line {row}: {label_column}="
                         f"{frame.loc[bad, label_column].iloc[0]!r} is not an outcome (use 1/0, "
                         "yes/no, true/false, 是/否)", file=str(path))
    ids = frame[id_column].astype(str).str.strip()
    known = values.notna()
    return dict(zip(ids[known], values[known].astype(int), strict=True))
