"""Read a snapshot directory into typed tables, recording every cell that cannot be parsed.

A file that cannot be read at all (missing, empty, undecodable, broken CSV quoting) raises an
``InputError`` naming the file and, where known, the row. A cell that does not parse (``abc`` in
an amount column) becomes missing and is recorded in ``Snapshot.problems`` with its row and field,
so validation can quarantine the row with the reason instead of guessing.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from intake.schema import TABLES, Table
from kamflow.errors import InputError

log = logging.getLogger(__name__)

ROW = "_row"  # the line number in the source file (header = line 1), kept for error messages
PROBLEM_COLUMNS = ["table", "row", "account_id", "column", "value", "reason"]
ENCODINGS = ("utf-8-sig", "gb18030")  # utf-8-sig also reads plain UTF-8; GB18030 covers GBK
_FLAGS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0,
          "y": 1.0, "n": 0.0, "是": 1.0, "否": 0.0}


@dataclass
class Snapshot:
    source: Path
    tables: dict[str, pd.DataFrame]
    problems: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PROBLEM_COLUMNS))
    notes: list[str] = field(default_factory=list)

    def rows(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.tables.items()}


def read_snapshot(source: Path | str) -> Snapshot:
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"snapshot directory {source} does not exist or is not a directory")
    tables: dict[str, pd.DataFrame] = {}
    problems: list[pd.DataFrame] = []
    notes: list[str] = []
    for table in TABLES.values():
        path = source / table.file_name
        if not path.exists():
            if table.required:
                raise InputError(f"required file {table.file_name} is missing from {source}",
                                 file=str(path))
            notes.append(f"{table.file_name} not found: treated as empty (no rows for any account)")
            tables[table.name] = _empty(table)
            continue
        raw = _read_csv(path)
        frame, bad = _coerce(raw, table, path)
        tables[table.name] = frame
        problems.append(bad)
        log.info("read %s: %d rows", path.name, len(frame))
    problem_frame = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(
        columns=PROBLEM_COLUMNS)
    return Snapshot(source, tables, problem_frame, notes)


def _read_csv(path: Path) -> pd.DataFrame:
    last_error: Exception | None = None
    for encoding in ENCODINGS:
        try:
            with warnings.catch_warnings():
                # index_col=False: without it, pandas silently turns the leading fields into an
                # index when data rows have more fields than the header, shifting every column.
                # Such a row is then a ParserWarning ("loss of data"), made an error here.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                                    encoding=encoding, skipinitialspace=True, index_col=False)
        except pd.errors.ParserWarning:
            raise InputError("not a well-formed CSV file (a row has more fields than the header "
                             "line)", file=str(path)) from None
        except UnicodeDecodeError as exc:
            last_error = exc
            continue
        except pd.errors.EmptyDataError:
            raise InputError("the file is empty (not even a header line)", file=str(path)) from None
        except pd.errors.ParserError as exc:
            raise InputError(f"not a well-formed CSV file ({_first_line(exc)})",
                             file=str(path)) from None
        frame.columns = [str(c).strip() for c in frame.columns]
        frame.insert(0, ROW, np.arange(2, len(frame) + 2))
        return frame
    raise InputError(f"cannot be decoded as UTF-8 or GB18030/GBK ({last_error})", file=str(path))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _empty(table: Table) -> pd.DataFrame:
    frame = pd.DataFrame({ROW: pd.Series(dtype="int64")})
    for column in table.columns:
        frame[column.name] = pd.Series(dtype=_dtype(column.kind))
    return frame


def _dtype(kind: str) -> str:
    return {"str": "str", "date": "datetime64[ns]", "month": "datetime64[ns]"}.get(kind, "float64")


def _coerce(raw: pd.DataFrame, table: Table, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert each known column to its type; unparseable non-blank cells are recorded."""
    out = raw.copy()
    problems = []
    account_ids = raw["account_id"] if "account_id" in raw else pd.Series(pd.NA, index=raw.index)
    for column in table.columns:
        if column.name not in raw:
            continue  # a missing column is a critical expectation failure, reported by validation
        text = raw[column.name].str.strip()
        converted = _convert(text, column.kind)
        out[column.name] = converted
        failed = text.notna() & converted.isna()
        if failed.any():
            problems.append(pd.DataFrame({
                "table": table.name,
                "row": raw.loc[failed, ROW].to_numpy(),
                "account_id": account_ids[failed].to_numpy(),
                "column": column.name,
                "value": text[failed].to_numpy(),
                "reason": f"not a valid {column.kind}" + _hint(column.kind),
            }))
    bad = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(
        columns=PROBLEM_COLUMNS)
    if not bad.empty:
        log.warning("%s: %d cells could not be parsed", path.name, len(bad))
    return out, bad


def _hint(kind: str) -> str:
    return {"date": " (expected YYYY-MM-DD)", "month": " (expected YYYY-MM)",
            "flag": " (expected 1/0, yes/no, true/false, 是/否)"}.get(kind, "")


def _convert(text: pd.Series, kind: str) -> pd.Series:
    if kind == "str":
        return text
    if kind in ("int", "float"):
        return pd.to_numeric(text, errors="coerce").astype("float64")
    if kind == "date":
        return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    if kind == "month":
        return pd.to_datetime(text, format="%Y-%m", errors="coerce")
    if kind == "flag":
        return text.str.lower().map(_FLAGS).astype("float64")
    raise ValueError(f"unknown column kind {kind!r}")
