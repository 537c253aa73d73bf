"""The ``kamflow`` command line (Typer). Every command has ``--help``; bad input exits non-zero
with one paragraph saying what is wrong (never a traceback): 2 for bad input or configuration,
3 when validation stopped the batch.

One module per command group: `run` (generate, demo, run), `tasks` (tasks ..., sla-watch,
digest, web), `rules` (rules check, simulate), `validate`, `backtest`, `ops` (serve, setup),
`report` (the department's churn measures), `outcome` (a month of capacity-limited work, simulated),
`housekeeping` (the retention policy of conf/housekeeping.yaml).
"""

import sys
from collections.abc import Sequence

import typer

# in this order in `kamflow --help`; each module adds its commands to the app
from kamflow.cli import (  # noqa: F401, I001
    backtest,
    experiment,
    housekeeping,
    ops,
    outcome,
    report,
    rules,
    run,
    tasks,
    validate,
)
from kamflow.cli.app import app

__all__ = ["app", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    try:
        typer.main.get_command(app).main(args=list(argv) if argv is not None else None,
                                         prog_name="kamflow")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
