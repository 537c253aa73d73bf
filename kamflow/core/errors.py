"""Errors that carry a message fit for an operator: what failed, where, and what to do."""

from __future__ import annotations


class KamflowError(Exception):
    """Base class: the CLI prints ``str(error)`` as one paragraph and exits non-zero."""

    exit_code = 2


class InputError(KamflowError):
    """A snapshot file cannot be read as the expected table (names the file, row and field)."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None) -> None:
        where = ", ".join(
            part for part in (
                f"file {file}" if file else "",
                f"row {row}" if row is not None else "",
                f"field {field!r}" if field else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.row, self.field = file, row, field


class BatchRejected(KamflowError):
    """Validation stopped the batch: no task is created and no email is sent."""

    exit_code = 3


class ConfigError(KamflowError):
    """A configuration or rule file is invalid (names the file, the key or rule, the problem)."""
