"""Validation: Great Expectations suites (``expectations/*.json``) run on every input table.

Each expectation carries ``meta.severity``: ``critical`` stops the batch, ``row`` quarantines the
row and its account, ``warning`` is reported only. This package is the only one that imports
``great_expectations``.
"""

from expectations.validate import (
    ExpectationResult,
    ValidationOutcome,
    ValidationPolicy,
    load_suites,
    validate_snapshot,
)

__all__ = ["ExpectationResult", "ValidationOutcome", "ValidationPolicy", "load_suites",
           "validate_snapshot"]
