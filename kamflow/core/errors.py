"""Errors that carry a message fit for an operator: what failed, where, and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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


class DiskFullError(KamflowError):
    """A write failed for lack of space (issue 28). Names what was being written; whatever
    that write belonged to was not kept half-done, so the next run, after space is freed,
    continues where this one stopped."""

    exit_code = 4

    def __init__(self, path: object, detail: str = "") -> None:
        super().__init__(
            f"no space left on the disk while writing {path}"
            + (f" ({detail})" if detail else "") + ": the run stopped; nothing was "
            "half-written and no email was sent in part. Free space (`kamflow housekeeping`, "
            "or a larger disk) and run again: the next run sends each email once.")
        self.path = path


# errno values of a full disk (ENOSPC) or quota (EDQUOT), and how the databases say it
DISK_FULL_ERRNOS = (28, 122)
_DISK_FULL_WORDS = ("database or disk is full", "no space left on device", "diskfull",
                    "could not extend file")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        text = f"{type(seen).__name__} {seen}".lower()
        if any(word in text for word in _DISK_FULL_WORDS):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


@contextmanager
def disk_full_stops(path: object) -> Iterator[None]:
    """Turn a write failing for lack of space inside the block into a `DiskFullError` naming
    ``path``; any other error passes unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, str(getattr(exc, "orig", None) or exc).splitlines()[0]
                                ) from exc
        raise
