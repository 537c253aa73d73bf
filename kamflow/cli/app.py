"""The Typer app every command module adds its commands to, and what the commands share:
the error handling (one paragraph, never a traceback), the option types and the settings.

Heavy libraries (prefect, Great Expectations, pandas) are imported inside the commands, so
``kamflow --help`` starts fast.
"""

import datetime as dt
import functools
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from kamflow.core.errors import KamflowError
from kamflow.core.settings import Settings, load_settings

EPILOG = """State lives in $KAMFLOW_HOME (default ~/.kamflow): kamflow.db (tasks), outbox/ (emails
as .eml when no email backend is configured), quarantine/, reports/, prefect/ (PREFECT_HOME).
Set PREFECT_API_URL to send runs to a running `prefect server start`; without it each command
starts a temporary local Prefect server."""

_APP = {"add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None,
        "no_args_is_help": True}

app = typer.Typer(
    name="kamflow", epilog=EPILOG, **_APP,  # type: ignore[arg-type]
    help="Key-account retention for telecom operators: validate the customer snapshot, score "
         "value and churn risk, apply the retention rules, and dispatch tasks and emails to the "
         "staff who must act.")
tasks_app = typer.Typer(help="list, show and act on the tasks in the task store",
                        **_APP)  # type: ignore[arg-type]
rules_app = typer.Typer(help="check a rule set", **_APP)  # type: ignore[arg-type]
app.add_typer(tasks_app, name="tasks")
app.add_typer(rules_app, name="rules")

F = TypeVar("F", bound=Callable[..., Any])


def command(target: typer.Typer, name: str, *, help: str, description: str) -> Callable[[F], F]:  # noqa: A002
    """Register ``fn`` as ``name`` on ``target`` (``help``: the one line in the list of
    commands; ``description``: its --help), with kamflow's error handling."""
    def register(fn: F) -> F:
        target.command(name, help=description, short_help=help)(_handled(fn))
        return fn
    return register


def _handled(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        verbose = bool(kwargs.get("verbose"))
        if verbose:
            # Prefect prints its own run logs; this adds kamflow's library loggers.
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        try:
            code = fn(*args, **kwargs)
        except KamflowError as exc:
            print(f"kamflow: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("kamflow: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            if verbose:
                raise
            print(f"kamflow: unexpected error: {exc.__class__.__name__}: {exc}. This is a bug in "
                  "kamflow, not in your input; run the command again with --verbose for the "
                  "traceback and report it.", file=sys.stderr)
            raise typer.Exit(1) from None
        if code:
            raise typer.Exit(int(code))
    return run


def settings() -> Settings:
    """This process's settings, ``$KAMFLOW_HOME`` created (a bad variable: exit 2)."""
    return load_settings()


def business_today() -> dt.date:
    """The default snapshot date: today in the operator's zone (conf/calendar.yaml)."""
    from kamflow import config

    return config.business_today(settings().conf_dir)


# -- option types ---------------------------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a whole number") from None
    if value < 1:
        raise typer.BadParameter(f"must be at least 1, not {value}")
    return value


def date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date YYYY-MM-DD") from None


Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="log more detail")]
AsOf = Annotated[dt.date | None, typer.Option(
    "--as-of", parser=date, metavar="YYYY-MM-DD",
    help="snapshot date YYYY-MM-DD (default: today)")]
# Where no snapshot date can be assumed (a snapshot from elsewhere, a dry run), it is asked for:
# the date decides freshness, contract days and the customer view.
RequiredAsOf = Annotated[dt.date, typer.Option(
    "--as-of", parser=date, metavar="YYYY-MM-DD",
    help="the snapshot's date YYYY-MM-DD (required: freshness and every date-based signal "
         "are measured from it)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
