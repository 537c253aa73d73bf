"""The offline validation report: one static HTML page per language, beside the GX Data Docs.

The GX Data Docs load their styling and scripts from public CDNs, so on a closed network (where
operators run kamflow) they show nothing. This page needs no network and no JavaScript: inline
CSS, every expectation with its result, severity, failing-row count and examples with their row
numbers, the go/stop verdict and its reason, the quarantined rows' reasons, and relative links to
quarantine.csv, validation.json and the Data Docs (so the run's folder can be copied to a share).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pandas as pd

from kamflow.expectations.validate import SUITE_NAMES, ExpectationResult, ValidationOutcome

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("en", "zh-CN")
REPORT_FILES = {"en": "validation.html", "zh-CN": "validation.zh-CN.html"}
SAMPLE_ROWS = 20  # quarantined rows shown per table, expectation and reason (all are in the CSV)

# The page's few words. They move to kamflow.core.vocabulary once that exists.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "kamflow validation report", "run": "Run", "generated": "Generated",
        "go": "GO: the batch goes on", "stop": "STOP: the batch was stopped",
        "reason": "Reason", "accounts_in": "accounts in",
        # The same sentences as ValidationOutcome.message (the CLI's), from the counts.
        "go_message": "validated {accounts_in} accounts: {accepted} accepted, "
                      "{quarantined} quarantined",
        "stop_message": "Batch stopped by validation, so no task was created and no email "
                        "was sent.",
        "accounts_quarantined": "accounts quarantined", "quarantine_rows": "quarantine records",
        "files": "Files", "quarantine_csv": "Quarantined rows (quarantine.csv)",
        "no_quarantine": "No row was quarantined.", "json": "Results as JSON (validation.json)",
        "data_docs": "Great Expectations Data Docs",
        "data_docs_note": "The Data Docs load their styling and scripts from the internet "
                          "(public CDNs): without internet access they show no results. This "
                          "page holds the same results and needs no network.",
        "other_language": "中文版", "tables": "Tables and suites", "table": "table",
        "source": "checked", "expectations": "expectations", "failed": "not met",
        "result": "result", "severity": "severity", "expectation": "expectation",
        "column": "column", "unexpected": "failing rows", "examples": "failing examples (rows)",
        "notes": "why it is checked", "row": "row",
        "quarantine": "Quarantined rows", "account": "account", "value": "value",
        "count": "records", "more": "more in quarantine.csv",
        "row_note": "Row numbers are as quarantine.csv names them: the line in the source file "
                    "(header = line 1; Parquet: 1-based row). Customer-view rows are the "
                    "account's line in accounts.csv.",
        "ok": "ok", "STOP": "STOP", "quarantined": "quarantined", "warning": "warning",
        "critical": "critical (stops the batch)", "row_severity": "row (quarantined)",
        "warning_severity": "warning (reported only)", "blank": "(blank)",
    },
    "zh-CN": {
        "title": "kamflow 数据校验报告", "run": "运行", "generated": "生成时间",
        "go": "通过：批次继续处理", "stop": "停止：批次已被停止",
        "reason": "原因", "accounts_in": "输入客户数",
        "go_message": "已校验 {accounts_in} 个客户：{accepted} 个通过，{quarantined} 个被隔离",
        "stop_message": "批次被校验停止，因此未创建任何任务，也未发送任何邮件。",
        "accounts_quarantined": "隔离客户数", "quarantine_rows": "隔离记录数",
        "files": "文件", "quarantine_csv": "隔离行（quarantine.csv）",
        "no_quarantine": "没有行被隔离。", "json": "JSON 格式结果（validation.json）",
        "data_docs": "Great Expectations 数据文档（Data Docs）",
        "data_docs_note": "Data Docs 的样式和脚本从互联网（公共 CDN）加载：无法访问互联网时"
                          "不显示任何结果。本页包含相同的结果，无需网络。",
        "other_language": "English", "tables": "数据表与校验套件", "table": "数据表",
        "source": "校验对象", "expectations": "校验项", "failed": "未通过",
        "result": "结果", "severity": "严重级别", "expectation": "校验项",
        "column": "列", "unexpected": "失败行数", "examples": "失败示例（行号）",
        "notes": "校验原因", "row": "行号",
        "quarantine": "隔离的行", "account": "客户", "value": "值",
        "count": "记录数", "more": "条见 quarantine.csv",
        "row_note": "行号与 quarantine.csv 一致：源文件中的行（表头为第 1 行；Parquet 为从 1 "
                    "开始的行序号）。统一客户视图的行号是该客户在 accounts.csv 中的行。",
        "ok": "通过", "STOP": "停止", "quarantined": "已隔离", "warning": "警告",
        "critical": "严重（停止批次）", "row_severity": "行级（隔离）",
        "warning_severity": "警告（仅报告）", "blank": "（空）",
    },
}
_RESULT = {"critical": "STOP", "row": "quarantined", "warning": "warning"}
_SEVERITY = {"critical": "critical", "row": "row_severity", "warning": "warning_severity"}
_RANK = {"critical": 0, "row": 1, "warning": 2}


def write_offline_report(outcome: ValidationOutcome, directory: Path, *, run_id: str = "",
                         quarantine_file: Path | None = None, data_docs: Path | None = None,
                         results_json: Path | None = None) -> dict[str, Path]:
    """Write the report in every language into ``directory``; returns the page per language.

    Call it before ``outcome.release_gx()`` or after: it reads only the kamflow results and the
    quarantine records. Links are relative to ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    model = report_model(outcome)
    for language in LANGUAGES:
        target = directory / REPORT_FILES[language]
        other = REPORT_FILES[LANGUAGES[1 - LANGUAGES.index(language)]]
        target.write_text(render_report(
            model, language, run_id=run_id, generated=generated,
            quarantine_href=_href(quarantine_file, directory),
            data_docs_href=_href(data_docs, directory),
            json_href=_href(results_json, directory), other_href=other), encoding="utf-8")
        written[language] = target
    return written


def report_model(outcome: ValidationOutcome) -> dict[str, Any]:
    """What the page shows, independent of the language: the verdict, each table's results
    (failures first) and its quarantined rows grouped by expectation and reason."""
    named = ({r.table for r in outcome.results}
             | {str(t) for t in outcome.quarantine["table"].dropna().unique()})
    tables = [n for n in SUITE_NAMES if n in named] + sorted(named - set(SUITE_NAMES))
    groups = _quarantine_groups(outcome.quarantine)
    suites = []
    for name in tables:
        # Failures first, the gravest first: what stopped the batch, then what was quarantined.
        results = sorted((r for r in outcome.results if r.table == name),
                         key=lambda r: (r.success, _RANK[r.severity], -r.unexpected_count))
        suites.append({
            "table": name, "anchor": f"table-{name}",
            "source": next((r.source for r in results if r.source), ""),
            "results": [_result(r) for r in results],
            "failed": sum(not r.success for r in results),
            "quarantine": groups.get(name, []),
            "quarantine_rows": sum(g["count"] for g in groups.get(name, [])),
        })
    return {"stopped": outcome.stopped, "reasons": list(outcome.reasons),
            "accounts_in": outcome.accounts_in,
            "accounts_quarantined": outcome.accounts_quarantined,
            "quarantine_rows": len(outcome.quarantine), "suites": suites}


def render_report(model: dict[str, Any], language: str, *, run_id: str = "",
                  generated: str = "", quarantine_href: str = "", data_docs_href: str = "",
                  json_href: str = "", other_href: str = "") -> str:
    """The page as HTML (autoescaped: values from the export are shown, never interpreted)."""
    if language not in LABELS:
        raise ValueError(f"report language must be one of {', '.join(LANGUAGES)}, "
                         f"not {language!r}")
    return _template().render(
        t=LABELS[language], lang=language, run_id=run_id, generated=generated,
        quarantine_href=quarantine_href, data_docs_href=data_docs_href, json_href=json_href,
        other_href=other_href, **model)


def _result(r: ExpectationResult) -> dict[str, Any]:
    rows = list(r.example_rows) + [()] * (len(r.examples) - len(r.example_rows))
    return {"expectation": r.expectation, "column": r.column, "severity": r.severity,
            "severity_key": _SEVERITY[r.severity], "success": r.success,
            "result_key": "ok" if r.success else _RESULT[r.severity],
            "unexpected": r.unexpected_count, "notes": r.notes,
            "examples": [{"value": value, "rows": list(found)}
                         for value, found in zip(r.examples, rows, strict=True)]}


def _quarantine_groups(quarantine: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Per table: one group per (expectation, column, reason), largest first, with the first
    rows of each (a national export can quarantine 100,000s of rows: the CSV has them all)."""
    if quarantine.empty:
        return {}
    keys = ["table", "expectation", "column", "reason"]
    found: dict[str, list[dict[str, Any]]] = {}
    for key, group in quarantine.groupby(keys, sort=False, dropna=False):
        table, expectation, column, reason = map(_cell, key)
        sample = group.head(SAMPLE_ROWS)
        found.setdefault(table, []).append({
            "expectation": expectation, "column": column, "reason": reason, "count": len(group),
            "more": max(len(group) - SAMPLE_ROWS, 0),
            "rows": [{"row": _cell(row.row), "account": _cell(row.account_id),
                      "column": _cell(row.column), "value": _cell(row.value)}
                     for row in sample.itertuples(index=False)]})
    for groups in found.values():
        groups.sort(key=lambda g: -g["count"])
    return found


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # row numbers read back as floats when a row is blank
    return str(value)


def _href(target: Path | None, directory: Path) -> str:
    """A link that survives copying the home folder elsewhere: relative, with / separators."""
    if target is None:
        return ""
    relative = os.path.relpath(Path(target).resolve(), Path(directory).resolve())
    return urllib.parse.quote(Path(relative).as_posix())


@functools.cache
def _template() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template("report.html.j2")
