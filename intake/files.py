"""Read one export file (CSV, Parquet or Excel) into a frame of raw values, one row per record.

CSV is read as text (every cell a string, blank = missing) so that typing is done in one place,
with every unparseable cell recorded. The encoding is detected, never guessed: UTF-8 (with or
without a byte-order mark) first, then GB18030 (a superset of GBK and GB2312). A file that mixes
the two, or is neither, is refused with the lines that show it, because decoding it either way
would silently turn Chinese names into mojibake.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from kamflow.core.errors import InputError

ROW = "_row"  # where the record is in its file (CSV: the line, header = 1; Parquet: 1-based row)
SUFFIXES = (".csv", ".parquet")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def find_table_file(directory: Path, stem: str) -> Path | None:
    """``<stem>.csv`` or ``<stem>.parquet`` in ``directory``; both at once is ambiguous."""
    found = [directory / f"{stem}{suffix}" for suffix in SUFFIXES
             if (directory / f"{stem}{suffix}").exists()]
    if len(found) > 1:
        raise InputError(f"both {found[0].name} and {found[1].name} are in {directory}: keep "
                         "one, kamflow cannot tell which is the current export", file=str(found[0]))
    return found[0] if found else None


def read_table_file(path: Path, *, encoding: str | None = None,
                    delimiter: str = ",") -> pd.DataFrame:
    """The file's records with ``_row`` first; CSV cells as text, Parquet columns as stored."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    if path.suffix.lower() in EXCEL_SUFFIXES:
        return _read_excel(path)
    return _read_csv(path, encoding, delimiter)


EXCEL_SUFFIXES = (".xlsx", ".xlsm")


def _read_excel(path: Path) -> pd.DataFrame:
    """The first sheet, every cell as text like a CSV (blank = missing); ``_row`` is the
    sheet's row number (header = 1), as Excel shows it."""
    try:
        frame = pd.read_excel(path, sheet_name=0, dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises several types for a damaged or non-Excel file
        raise InputError(f"not a readable Excel file ({_first_line(exc)})",
                         file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _refuse_duplicate_headers(frame, path)
    frame = frame.reset_index(drop=True)
    frame.insert(0, ROW, np.arange(2, len(frame) + 2))
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or non-Parquet file
        raise InputError(f"not a readable Parquet file ({_first_line(exc)})",
                         file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.reset_index(drop=True)
    frame.insert(0, ROW, np.arange(1, len(frame) + 1))
    return frame


def _read_csv(path: Path, encoding: str | None, delimiter: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise InputError("the file is empty (not even a header line)", file=str(path))
    if encoding:
        return _parse_csv(path, path, encoding, delimiter)
    clean = _parse_clean_csv(path, delimiter)
    if clean is not None:
        return clean
    try:
        # The fast path: pandas decodes while it parses. utf-8-sig also reads UTF-8 without BOM.
        return _parse_csv(path, path, "utf-8-sig", delimiter)
    except UnicodeDecodeError:
        pass
    data = path.read_bytes()
    text = _decode_chinese_export(data, path)
    return _parse_csv(io.StringIO(text), path, None, delimiter)


def _decode_chinese_export(data: bytes, path: Path) -> str:
    """Decode a file that is not UTF-8: GB18030, unless it is UTF-16 or mixes encodings."""
    if data.startswith(_UTF16_BOMS):
        raise InputError("the file is UTF-16 (a spreadsheet's \"Unicode text\" export); save it "
                         "as CSV in UTF-8 or GB18030", file=str(path))
    utf8_line, other_line = _first_utf8_and_non_utf8_lines(data)
    if utf8_line and other_line:
        raise InputError(f"the file mixes encodings: line {utf8_line} is UTF-8 but line "
                         f"{other_line} is not (GB18030/GBK?); it was probably pasted together "
                         "from two exports. Re-export it in one encoding", file=str(path))
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"cannot be decoded as UTF-8 or GB18030/GBK (byte 0x{data[exc.start]:02x}"
                         f" on line {line}); save the file as UTF-8", file=str(path)) from None


def _first_utf8_and_non_utf8_lines(data: bytes) -> tuple[int, int]:
    """Line numbers (1-based, 0 = none) of the first non-ASCII line that is valid UTF-8 and of the
    first that is not. GB18030 text of Chinese words is practically never valid UTF-8 (none of a
    million generated account lines was), so finding both means two encodings in one file."""
    utf8 = other = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            other = other or number
        else:
            utf8 = utf8 or number
        if utf8 and other:
            break
    return utf8, other


def _parse_csv(source: Path | io.StringIO, path: Path, encoding: str | None,
               delimiter: str) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            # index_col=False: without it, pandas silently turns the leading fields into an
            # index when data rows have more fields than the header, shifting every column.
            # Such a row is then a ParserWarning ("loss of data"), made an error here.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""],
                                encoding=encoding, skipinitialspace=True, index_col=False,
                                sep=delimiter)
    except pd.errors.ParserWarning:
        raise InputError("not a well-formed CSV file (a row has more fields than the header "
                         "line)", file=str(path)) from None
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty (not even a header line)", file=str(path)) from None
    except pd.errors.ParserError as exc:
        raise InputError(f"not a well-formed CSV file ({_first_line(exc)})",
                         file=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _refuse_duplicate_headers(frame, path)
    frame.insert(0, ROW, np.arange(2, len(frame) + 2))
    return frame


def _parse_clean_csv(path: Path, delimiter: str) -> pd.DataFrame | None:
    """The fast path for a well-formed UTF-8 file (the usual export): Arrow's multi-threaded
    reader, every cell as text as on the pandas path, 5-10x faster on millions of rows.
    ``None`` for anything else (another encoding, a row with too many or too few fields, a
    repeated header): the pandas path below then reads it or says precisely what is wrong."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    if not header or len(set(header)) != len(header):
        return None
    try:
        table = pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header}, null_values=[""],
                strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.column_names != header:
        return None
    frame = table.to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        return None  # " billed" and "billed": the pandas path names the repeated header
    frame.insert(0, ROW, np.arange(2, len(frame) + 2))
    return frame


def _refuse_duplicate_headers(frame: pd.DataFrame, path: Path) -> None:
    # pandas renames a repeated header "billed" to "billed.1": which of the two is right is unknown.
    renamed = [c for c in frame.columns if "." in c and c.rsplit(".", 1)[0] in frame.columns
               and c.rsplit(".", 1)[1].isdigit()]
    if renamed:
        name = renamed[0].rsplit(".", 1)[0]
        raise InputError(f"the header names column {name!r} twice", file=str(path), field=name)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
