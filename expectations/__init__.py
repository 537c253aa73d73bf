"""Validation: Great Expectations suites (``expectations/*.json``) run on every input table and on
the single customer view.

Each expectation carries ``meta.severity``: ``critical`` stops the batch, ``row`` quarantines the
row and its account, ``warning`` is reported only. This package is the only one that imports
``great_expectations`` (lazily: ``import expectations`` alone stays fast).
"""

from kamflow.expectations.files import ValidationFiles, write_validation_files
from kamflow.expectations.offline_report import REPORT_FILES, write_offline_report
from kamflow.expectations.report import results_markdown, results_table, results_text
from kamflow.expectations.validate import (
    ExpectationResult,
    ValidationOutcome,
    ValidationPolicy,
    load_suites,
    validate_snapshot,
    write_data_docs,
)

__all__ = ["REPORT_FILES", "ExpectationResult", "ValidationOutcome", "ValidationPolicy",
           "load_suites", "results_markdown", "results_table", "results_text",
           "validate_snapshot", "write_data_docs", "write_offline_report", "ValidationFiles",
           "write_validation_files"]
