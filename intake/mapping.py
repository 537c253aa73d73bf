"""Mapping files: read an operator's own export into kamflow's tables without writing code.

A mapping (YAML, documented with a worked example in docs/mapping.md) says, per kamflow table,
which file holds it and how each kamflow column is made from the file's columns: renamed,
relabelled (Yes/No, 是/否, 1/0, blanks), converted (decimal comma, date format), derived from
others (a template, arithmetic, a date counted from the snapshot date) or given a constant. A
table the operator does not have is declared ``none`` and read as empty.

``load_mapping`` checks the whole file up front (each error names the key); ``map_table`` applies
one table's rules and records every value it could not map, with its row, so validation can
quarantine the row with the reason instead of guessing.
"""

from __future__ import annotations

import ast
import codecs
import datetime as dt
import operator
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from kamflow.core import yamlfile
from kamflow.core.errors import ConfigError, InputError
from kamflow.intake.files import EXCEL_SUFFIXES, ROW, read_table_file
from kamflow.intake.schema import TABLES, Column, Table
from kamflow.intake.signals import Signal, parse_signals

PROBLEM_COLUMNS = ["table", "row", "account_id", "column", "value", "reason"]
DERIVATIONS = ("value", "template", "expr", "months_before_as_of", "months_after_as_of",
               "days_before_as_of")
CONVERSIONS = ("values", "other", "default", "decimal", "thousands", "format")
_TABLE_KEYS = ("file", "encoding", "delimiter", "let", "columns")
_NAME = re.compile(r"`([^`]+)`")
_SIGNAL_FLAGS = {"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "true": 1.0, "false": 0.0,
                 "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0, "是": 1.0, "否": 0.0}


@dataclass(frozen=True)
class Rule:
    """How one column (a kamflow column, or a ``let`` helper) is made from the export's columns."""

    target: str
    key: str  # where it is in the mapping file, for messages: tables.billing.columns.billed
    source: str | None = None  # ``from``: the export column (or helper) it starts from
    derivation: str | None = None  # one of DERIVATIONS, or None for a plain (converted) copy
    argument: Any = None
    labels: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # other, default, decimal, ...

    def inputs(self) -> tuple[str, ...]:
        """The columns this rule reads."""
        if self.source is not None:
            return (self.source,)
        if self.derivation == "template":
            return tuple(name for _, name, _, _ in string.Formatter().parse(self.argument)
                         if name)
        if self.derivation == "expr":
            return self.argument.names
        if self.derivation and self.derivation.endswith("_as_of") and isinstance(
                self.argument, str):
            return (self.argument,)
        return ()


@dataclass(frozen=True)
class TableMapping:
    name: str
    file: str | None  # None: the operator has no such table; it is read as empty
    encoding: str | None = None
    delimiter: str = ","
    helpers: tuple[Rule, ...] = ()
    columns: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class SnapshotMapping:
    path: Path
    tables: dict[str, TableMapping]
    # Operator signals (intake.signals), read from the accounts table's file.
    signals: tuple[Signal, ...] = ()

    @property
    def needs_as_of(self) -> bool:
        return any(r.derivation and r.derivation.endswith("_as_of")
                   for t in self.tables.values() for r in (*t.helpers, *t.columns))


# --------------------------------------------------------------------------- loading

def load_mapping(path: Path | str) -> SnapshotMapping:
    """Read and check a mapping file; every mistake is a ConfigError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mapping file {path} does not exist")
    try:
        doc = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mapping file {path} is not valid YAML: {exc}") from None
    fail = _failer(path)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tables"), Mapping):
        fail("tables", "the file must have a 'tables' mapping, one entry per kamflow table")
    unknown = sorted(set(doc) - {"tables", "description", "signals"}, key=str)
    if unknown:
        fail(unknown[0], "unknown key; allowed: tables, signals, description")
    tables = {}
    for name, spec in doc["tables"].items():
        if name not in TABLES:
            fail(f"tables.{name}", f"unknown table; kamflow reads {', '.join(TABLES)}")
        tables[name] = _table_mapping(TABLES[name], spec, fail)
    signals = parse_signals(doc.get("signals"), f"mapping file {path}")
    if signals and (tables.get("accounts") is None or tables["accounts"].file is None):
        fail("signals", "signals are read from the accounts table's file: map "
                        "'tables.accounts' (at least 'file: <name>.csv')")
    return SnapshotMapping(path, tables, signals)


def _failer(path: Path) -> Callable[[str, str], Any]:
    def fail(key: str, message: str) -> Any:
        raise ConfigError(f"mapping file {path}, key '{key}': {message}")
    return fail


def _table_mapping(table: Table, spec: Any, fail: Callable[[str, str], Any]) -> TableMapping:
    key = f"tables.{table.name}"
    if spec is None or spec == "none":
        if table.required:
            fail(key, f"{table.name} is required and cannot be 'none'; map it from a file")
        return TableMapping(table.name, None)
    if not isinstance(spec, Mapping) or not isinstance(spec.get("file"), str):
        fail(key, "must be 'none' or a mapping with at least 'file: <name>.csv|.parquet'")
    unknown = sorted(set(spec) - set(_TABLE_KEYS), key=str)
    if unknown:
        fail(f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(_TABLE_KEYS)}")
    if Path(spec["file"]).suffix.lower() not in (".csv", ".parquet"):
        fail(f"{key}.file", f"{spec['file']!r} must end in .csv or .parquet")
    delimiter = spec.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        fail(f"{key}.delimiter", f"must be one character, not {delimiter!r}")
    helpers = _rules(spec.get("let") or {}, f"{key}.let", fail)
    columns = _rules(spec.get("columns") or {}, f"{key}.columns", fail)
    for rule in columns:
        if rule.target not in table.column_names:
            fail(rule.key, f"{table.name} has no column {rule.target!r}; its columns are "
                           f"{', '.join(table.column_names)} (use 'let' for a helper column)")
    clash = {r.target for r in helpers} & set(table.column_names)
    if clash:
        fail(f"{key}.let.{sorted(clash)[0]}", "a helper cannot have the name of a kamflow column")
    encoding = spec.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(str(encoding))
        except LookupError:
            fail(f"{key}.encoding", f"unknown encoding {encoding!r}; use utf-8, gb18030 or "
                                    "another Python codec name, or leave it out to detect it")
    return TableMapping(table.name, spec["file"], encoding, delimiter, helpers, columns)


def _rules(specs: Any, key: str, fail: Callable[[str, str], Any]) -> tuple[Rule, ...]:
    if not isinstance(specs, Mapping):
        fail(key, "must map column names to rules")
    return tuple(_rule(str(target), spec, f"{key}.{target}", fail)
                 for target, spec in specs.items())


def _rule(target: str, spec: Any, key: str, fail: Callable[[str, str], Any]) -> Rule:
    if isinstance(spec, str):
        return Rule(target, key, source=spec)
    if not isinstance(spec, Mapping):
        fail(key, "must be a column name or a mapping such as {from: Column, values: {...}}")
    unknown = sorted(set(spec) - {"from", *DERIVATIONS, *CONVERSIONS}, key=str)
    if unknown:
        fail(f"{key}.{unknown[0]}", "unknown key; a rule takes 'from' or one of "
             f"{', '.join(DERIVATIONS)}, plus {', '.join(CONVERSIONS)}")
    made = [k for k in ("from", *DERIVATIONS) if k in spec]
    if len(made) != 1:
        fail(key, "give exactly one of 'from', " + ", ".join(f"'{d}'" for d in DERIVATIONS)
             + (f" (found {', '.join(made)})" if made else ""))
    options = {k: spec[k] for k in CONVERSIONS if k in spec and k != "values"}
    labels = spec.get("values")
    if labels is not None and (not isinstance(labels, Mapping) or not labels):
        fail(f"{key}.values", "must map the export's labels to values, e.g. {Yes: 1, No: 0}")
    for option in ("decimal", "thousands"):
        if option in options and (not isinstance(options[option], str)
                                  or len(options[option]) != 1):
            fail(f"{key}.{option}", f"must be one character, not {options[option]!r}")
    if "format" in options and not isinstance(options["format"], str):
        fail(f"{key}.format", "must be a date format such as '%d/%m/%Y'")
    if "from" in spec:
        if not isinstance(spec["from"], str):
            fail(f"{key}.from", "must be a column name")
        return Rule(target, key, source=spec["from"], labels=_labels(labels), options=options)
    derivation = made[0]
    argument = spec[derivation]
    if labels is not None:
        fail(f"{key}.values", "relabelling needs 'from: <column>'")
    if derivation == "template":
        argument = _template(argument, f"{key}.template", fail)
    elif derivation == "expr":
        argument = Expression.compile(argument, f"{key}.expr", fail)
    elif derivation.endswith("_as_of") and (isinstance(argument, bool) or not isinstance(
            argument, int | float | str)):
        fail(f"{key}.{derivation}", "must be a number or a column name")
    return Rule(target, key, derivation=derivation, argument=argument, options=options)


def _labels(labels: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    # Labels match whatever their case and surrounding spaces: "YES", " yes" and "Yes" alike.
    return None if labels is None else {_label_key(k): v for k, v in labels.items()}


def _label_key(value: Any) -> str:
    if isinstance(value, bool):  # YAML reads a bare Yes/No/true as a boolean
        value = "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _template(text: Any, key: str, fail: Callable[[str, str], Any]) -> str:
    if not isinstance(text, str):
        fail(key, "must be text such as '客户 {customerID}'")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text)
                  if name is not None]
    except ValueError as exc:
        fail(key, f"is not a valid template ({exc})")
    if any(not name or spec or conv for name, spec, conv in fields):
        fail(key, "each {…} must name one column, without a format: '{customerID}'")
    return text


class Expression:
    """Arithmetic on numeric columns (+ - * /, parentheses, min, max, abs, round), checked when
    the mapping is loaded. Names are columns; a name with spaces is written in backticks."""

    _OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
        ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
    _FUNCTIONS: dict[str, Callable[..., Any]] = {
        "min": np.minimum, "max": np.maximum, "abs": np.abs, "round": np.round}
    # How many arguments each function takes. numpy reads one more positional argument as the
    # array to write into: `abs(a, b)` would overwrite column b in place.
    _ARITY: dict[str, int] = {"min": 2, "max": 2, "abs": 1, "round": 1}

    def __init__(self, text: str, tree: ast.Expression, aliases: dict[str, str]) -> None:
        self.text, self.tree, self.aliases = text, tree, aliases
        self.names = tuple(dict.fromkeys(
            aliases.get(n.id, n.id) for n in ast.walk(tree)
            if isinstance(n, ast.Name) and n.id not in self._FUNCTIONS))

    @classmethod
    def compile(cls, text: Any, key: str, fail: Callable[[str, str], Any]) -> Expression:
        if not isinstance(text, str) or not text.strip():
            fail(key, "must be an arithmetic expression such as 'TotalCharges / tenure'")
        aliases: dict[str, str] = {}

        def alias(match: re.Match[str]) -> str:
            aliases[f"_col{len(aliases)}"] = match.group(1)
            return f"_col{len(aliases) - 1}"

        try:
            tree = ast.parse(_NAME.sub(alias, text).strip(), mode="eval")
        except SyntaxError as exc:
            fail(key, f"{text!r} is not a valid expression ({exc.msg})")
        for node in ast.walk(tree):
            allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Name,
                       ast.Load, ast.Call, *cls._OPERATORS)
            if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
                    and not isinstance(node.value, bool):
                continue
            if not isinstance(node, allowed):
                fail(key, f"{text!r}: only numbers, column names, + - * /, parentheses and "
                          f"{', '.join(cls._FUNCTIONS)} are allowed")
            if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name)
                                               or node.func.id not in cls._FUNCTIONS
                                               or node.keywords):
                fail(key, f"{text!r}: the functions are {', '.join(cls._FUNCTIONS)}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and len(node.args) != cls._ARITY[node.func.id]:
                name, arity = node.func.id, cls._ARITY[node.func.id]
                fail(key, f"{text!r}: {name}() takes {arity} argument{'s' if arity > 1 else ''}"
                          f", not {len(node.args)}")
        return cls(text, tree, aliases)

    def evaluate(self, columns: Mapping[str, pd.Series]) -> pd.Series:
        return pd.Series(self._eval(self.tree.body, columns), dtype="float64")

    def _eval(self, node: ast.AST, columns: Mapping[str, pd.Series]) -> Any:
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]  # compile() allows numbers only
        if isinstance(node, ast.Name):
            return columns[self.aliases.get(node.id, node.id)].to_numpy(dtype="float64")
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, columns)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            with np.errstate(divide="ignore", invalid="ignore"):
                return self._OPERATORS[type(node.op)](self._eval(node.left, columns),
                                                      self._eval(node.right, columns))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return self._FUNCTIONS[node.func.id](*(self._eval(a, columns) for a in node.args))


# --------------------------------------------------------------------------- applying

def map_table(mapping: TableMapping, table: Table, source: Path, as_of: dt.date | None,
              mapping_path: Path, signals: tuple[Signal, ...] = ()
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the table's file and build kamflow's columns (and the operator ``signals``, as
    ``signal_<name>``); returns (raw table, problems)."""
    assert mapping.file is not None
    path = source / mapping.file
    if not path.exists():
        raise InputError(f"file {mapping.file} named by the mapping {mapping_path} (key "
                         f"'tables.{table.name}.file') is missing from {source}", file=str(path))
    raw = read_table_file(path, encoding=mapping.encoding, delimiter=mapping.delimiter)
    run = _Mapper(raw, table, path, as_of, mapping_path)
    for rule in mapping.helpers:
        run.known[rule.target] = run.evaluate(rule)
    out = pd.DataFrame({ROW: raw[ROW].to_numpy()})
    mapped = {rule.target: rule for rule in mapping.columns}
    for column in table.column_names:
        if column in mapped:
            out[column] = run.evaluate(mapped[column]).to_numpy()
        elif column in raw:  # not mentioned: read under its own name
            out[column] = raw[column].to_numpy()
    for signal in signals:
        out[signal.column] = run.signal(signal).to_numpy()
    return out, run.problems(out)


class _Mapper:
    """Evaluates rules against one export file, collecting the values it could not map."""

    def __init__(self, raw: pd.DataFrame, table: Table, path: Path, as_of: dt.date | None,
                 mapping_path: Path) -> None:
        self.raw, self.table, self.path, self.as_of = raw, table, path, as_of
        self.mapping_path = mapping_path
        self.known: dict[str, pd.Series] = {}
        self._problems: list[tuple[np.ndarray, str, pd.Series, str]] = []

    def column(self, name: str, rule: Rule) -> pd.Series:
        if name in self.known:
            return self.known[name]
        if name in self.raw and name != ROW:
            return self.raw[name]
        columns = [c for c in self.raw.columns if c != ROW]
        shown = ", ".join(columns[:25]) + (", …" if len(columns) > 25 else "")
        raise InputError(f"column {name!r}, used by the mapping {self.mapping_path} (key "
                         f"'{rule.key}'), is not in the file; its columns are: {shown}",
                         file=str(self.path), field=name)

    def problem(self, mask: np.ndarray, column: str, values: pd.Series, reason: str) -> None:
        if mask.any():
            self._problems.append((mask, column, values, reason))

    def problems(self, out: pd.DataFrame) -> pd.DataFrame:
        ids = out["account_id"] if "account_id" in out else pd.Series(np.nan, index=out.index)
        frames = [pd.DataFrame({
            "table": self.table.name, "row": out.loc[mask, ROW].to_numpy(),
            "account_id": ids[mask].to_numpy(), "column": column,
            "value": _text(values[mask]).to_numpy(), "reason": reason,
        }) for mask, column, values, reason in self._problems]
        return (pd.concat(frames, ignore_index=True) if frames
                else pd.DataFrame(columns=PROBLEM_COLUMNS))

    # -- operator signals ----------------------------------------------------------------
    def signal(self, signal: Signal) -> pd.Series:
        """A declared signal's values: categorical as text (a level the declaration does not
        know is kept, so its expectation quarantines the row with the value), boolean as 1/0
        and numeric as numbers (a cell that is neither is recorded here, with its row)."""
        rule = Rule(signal.column, signal.key, source=signal.source)
        text = _text(self.column(signal.source, rule)).reset_index(drop=True)
        labels = _labels(signal.values)
        if labels is not None:
            mapped = text.str.lower().map(labels)
            text = _text(mapped.where(mapped.notna(), text).astype("object"))
        where = f"{signal.name} (from {signal.source})"
        if signal.type == "categorical":
            return text.astype("str")
        if signal.type == "boolean":
            flags = text.str.lower().map(_SIGNAL_FLAGS).astype("float64")
            self.problem((text.notna() & flags.isna()).to_numpy(), signal.source, text,
                         f"not yes/no for the signal {where}: use 1/0, yes/no, true/false, "
                         "是/否 or a 'values' relabelling")
            return flags
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        self.problem((text.notna() & numbers.isna()).to_numpy(), signal.source, text,
                     f"not a number for the signal {where}")
        return numbers

    # -- rules ---------------------------------------------------------------------------
    def evaluate(self, rule: Rule) -> pd.Series:
        if rule.source is not None:
            values = self.converted(self.column(rule.source, rule), rule)
        elif rule.derivation == "value":
            values = pd.Series([rule.argument] * len(self.raw), dtype=_dtype_of(rule.argument))
        elif rule.derivation == "template":
            values = self.template(rule)
        elif rule.derivation == "expr":
            values = self.expression(rule)
        else:
            values = self.date_from_as_of(rule)
        if "default" in rule.options:
            values = _fill_blanks(values, rule.options["default"])
        return values.reset_index(drop=True)

    def converted(self, values: pd.Series, rule: Rule) -> pd.Series:
        if rule.labels is not None:
            return self.relabelled(values, rule)
        if {"decimal", "thousands"} & set(rule.options) and not _is_numeric(values):
            text = _text(values)
            if "thousands" in rule.options:
                text = text.str.replace(rule.options["thousands"], "", regex=False)
            return text.str.replace(rule.options.get("decimal", "."), ".", regex=False)
        if "format" in rule.options and not pd.api.types.is_datetime64_any_dtype(values):
            text = _text(values)
            dates = pd.to_datetime(text, format=rule.options["format"], errors="coerce")
            self.problem((text.notna() & dates.isna()).to_numpy(), rule.source or rule.target,
                         text, f"not a date in the format {rule.options['format']} "
                               f"(for {rule.target})")
            return dates.astype("datetime64[ns]")
        return values

    def relabelled(self, values: pd.Series, rule: Rule) -> pd.Series:
        assert rule.labels is not None
        keys = _text(values).str.lower()
        mapped = keys.map(rule.labels)
        found = keys.isin(list(rule.labels))
        unknown = keys.notna() & ~found
        if "other" in rule.options:
            mapped = mapped.where(~unknown, rule.options["other"])
        else:
            known = ", ".join(map(str, list(rule.labels)[:10]))
            self.problem(unknown.to_numpy(), rule.source or rule.target, _text(values),
                         f"not a label the mapping knows for {rule.target} (known: {known})")
        if "" in rule.labels:  # a blank label mapped explicitly
            mapped = mapped.where(keys.notna(), rule.labels[""])
        return _typed(mapped)

    def template(self, rule: Rule) -> pd.Series:
        result = pd.Series("", index=self.raw.index, dtype="object")
        blank = np.zeros(len(self.raw), dtype=bool)
        for literal, name, _, _ in string.Formatter().parse(rule.argument):
            result = result + literal
            if name:
                text = _text(self.column(name, rule))
                blank |= text.isna().to_numpy()
                result = result + text.fillna("")
        return result.where(~blank).astype("str")

    def numbers(self, name: str, rule: Rule) -> pd.Series:
        """A column as numbers; a blank or non-numeric export cell is recorded (helpers have
        recorded their own problems already)."""
        values = self.column(name, rule)
        if _is_numeric(values):
            return values.astype("float64")
        text = _text(values)
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        if name not in self.known:
            self.problem(text.isna().to_numpy(), name, text,
                         f"blank, so {rule.target} cannot be computed")
            self.problem((text.notna() & numbers.isna()).to_numpy(), name, text,
                         f"not a number, so {rule.target} cannot be computed")
        return numbers

    def expression(self, rule: Rule) -> pd.Series:
        expression: Expression = rule.argument
        inputs = {name: self.numbers(name, rule) for name in expression.names}
        result = expression.evaluate(inputs)
        usable = np.logical_and.reduce([s.notna().to_numpy() for s in inputs.values()]) \
            if inputs else np.ones(len(result), dtype=bool)
        infinite = usable & ~np.isfinite(result.to_numpy())
        self.problem(infinite, rule.target, result,
                     f"{rule.target} = {expression.text} has no value here (division by zero?)")
        return result.where(np.isfinite(result))

    def date_from_as_of(self, rule: Rule) -> pd.Series:
        if self.as_of is None:
            raise ConfigError(f"mapping file {self.mapping_path}, key '{rule.key}': "
                              f"{rule.derivation} needs the snapshot date (--as-of)")
        argument = rule.argument
        amount = (self.numbers(argument, rule) if isinstance(argument, str)
                  else pd.Series(float(argument), index=self.raw.index))
        if rule.derivation == "days_before_as_of":
            return (pd.Timestamp(self.as_of) - pd.to_timedelta(amount, unit="D")).astype(
                "datetime64[ns]")
        sign = -1 if rule.derivation == "months_before_as_of" else 1
        return _shift_months(self.as_of, sign * np.floor(amount))


def _shift_months(as_of: dt.date, months: pd.Series) -> pd.Series:
    """as_of moved by whole months, the day kept where the month has it (31 Jan + 1 → 28 Feb)."""
    total = as_of.year * 12 + (as_of.month - 1) + months
    valid = total.notna()
    if not valid.any():
        return pd.Series(pd.NaT, index=months.index, dtype="datetime64[ns]")
    first = pd.to_datetime(pd.DataFrame({
        "year": (total[valid] // 12).astype("int64"), "month": (total[valid] % 12 + 1)
        .astype("int64"), "day": 1}))
    day = np.minimum(as_of.day, first.dt.days_in_month) - 1
    shifted = first + pd.to_timedelta(day, unit="D")
    return shifted.reindex(months.index).astype("datetime64[ns]")


def _text(values: pd.Series) -> pd.Series:
    """Cells as stripped text, blank (or whitespace-only) as missing."""
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        text = values.str.strip()
    else:
        text = values.map(lambda v: None if _blank(v) else _plain(v)).astype("str").str.strip()
    return text.where(text != "")


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _typed(values: pd.Series) -> pd.Series:
    """Mapped labels as numbers when every one is a number, else as text."""
    values = values.map(lambda v: float(v) if isinstance(v, bool) else v)  # YAML yes/no
    present = values.dropna()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present.unique()):
        return values.astype("float64")
    return values.map(lambda v: None if _blank(v) else _plain(v)).astype("str")


def _dtype_of(value: Any) -> str:
    return "float64" if isinstance(value, int | float) and not isinstance(value, bool) else "str"


def _fill_blanks(values: pd.Series, default: Any) -> pd.Series:
    if _is_numeric(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values.fillna(default)
    return values.where(_text(values).notna(), str(default))


# --------------------------------------------------------------------------- outcome files

# The columns of a file of task outcomes (``kamflow tasks import``, worklist/outcomes.py), all
# read as text: checked row by row against the task store before anything is applied.
OUTCOME_TABLE = Table("outcomes", tuple(Column(name, "str", required=name in (
    "task_id", "outcome", "minutes", "owner")) for name in (
    "task_id", "outcome", "minutes", "note", "owner", "follow_up_date")))
_OUTCOME_KEYS = ("description", "encoding", "delimiter", "let", "columns")


def load_outcome_mapping(path: Path | str) -> TableMapping:
    """A mapping for outcome files logged in a CRM: the keys of one snapshot table's mapping
    (``encoding``, ``delimiter``, ``let``, ``columns``; docs/mapping.md) at the top level, no
    ``file`` (the file is named on the command line). Checked like a snapshot mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mapping file {path} does not exist")
    try:
        doc = yamlfile.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mapping file {path} is not valid YAML: {exc}") from None
    fail = _failer(path)
    if not isinstance(doc, Mapping):
        fail("columns", "the file must map 'columns' (and optionally let, encoding, delimiter)")
    unknown = sorted(set(doc) - set(_OUTCOME_KEYS), key=str)
    if unknown:
        fail(unknown[0], f"unknown key; allowed: {', '.join(_OUTCOME_KEYS)}")
    spec = {k: v for k, v in doc.items() if k != "description"}
    return _table_mapping(OUTCOME_TABLE, {**spec, "file": "outcomes.csv"}, fail)


def read_outcome_file(path: Path, mapping: TableMapping | None = None,
                      mapping_path: Path | None = None
                      ) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]]]:
    """The rows of a file of task outcomes (CSV or Excel), each ``{"_row": its row in the
    file, task_id, outcome, minutes, note, owner, follow_up_date}`` as text (None when blank),
    read under kamflow's column names or through ``mapping``, and every value the mapping could
    not map as (row, kamflow column, reason). A missing required column is an InputError
    naming the file and column."""
    if not path.is_file():
        raise InputError(f"outcome file {path} does not exist", file=str(path))
    if path.suffix.lower() not in (".csv", *EXCEL_SUFFIXES):
        raise InputError("an outcome file must be .csv or .xlsx", file=str(path))
    if mapping is None:
        raw = read_table_file(path)
        frame = pd.DataFrame({ROW: raw[ROW].to_numpy()})
        for column in OUTCOME_TABLE.column_names:
            if column in raw:
                frame[column] = raw[column].to_numpy()
        problems = pd.DataFrame(columns=PROBLEM_COLUMNS)
    else:
        mapping = TableMapping(mapping.name, path.name, mapping.encoding, mapping.delimiter,
                               mapping.helpers, mapping.columns)
        frame, problems = map_table(mapping, OUTCOME_TABLE, path.parent, None,
                                    mapping_path or path)
    missing = [c.name for c in OUTCOME_TABLE.columns if c.required and c.name not in frame]
    if missing:
        raise InputError(f"the outcome file has no column {missing[0]!r} (kamflow reads "
                         f"{', '.join(OUTCOME_TABLE.column_names)}; a mapping can make them "
                         "from a CRM's own columns)", file=str(path), field=missing[0])
    targets = {r.source: r.target for r in (mapping.columns if mapping else ()) if r.source}
    unmapped = [(int(p["row"]), targets.get(str(p["column"]), str(p["column"])),
                 str(p["reason"])) for p in problems.to_dict("records")]
    rows = [{k: (int(v) if k == ROW else None if _blank(v) else _plain(v).strip() or None)
             for k, v in record.items()} for record in frame.to_dict("records")]
    return rows, unmapped
