"""Intake: read the operator's snapshot files into typed tables and join one view per account.

``read_snapshot`` is the only place that touches the input files (CSV or Parquet, directly or
through a mapping file); ``build_customer_view`` is pure.
"""

from kamflow.intake.mapping import SnapshotMapping, load_mapping
from kamflow.intake.reader import Snapshot, read_snapshot
from kamflow.intake.schema import TABLES, Column, Table
from kamflow.intake.view import build_customer_view

__all__ = ["TABLES", "Column", "Snapshot", "SnapshotMapping", "Table", "build_customer_view",
           "load_mapping", "read_snapshot"]
