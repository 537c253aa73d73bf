"""Every command and subcommand of the Typer app answers --help; --help starts without the heavy
libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from kamflow.cli import app, main

REPO = Path(__file__).resolve().parents[1]


def command_paths() -> list[list[str]]:
    """Every command path of the app: [], ["run"], ["tasks"], ["tasks", "list"], ..."""
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_the_walk_finds_every_command() -> None:
    """The walk sees every command the argparse CLI had, in their groups."""
    paths = {" ".join(p) for p in command_paths()}
    assert {"generate", "demo", "run", "validate", "simulate", "backtest", "serve", "setup",
            "sla-watch", "digest", "web", "tasks", "tasks list", "tasks show", "tasks ack",
            "tasks done", "tasks reassign", "rules", "rules check"} <= paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "kamflow")
def test_help_on_every_command(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`kamflow ... --help` exits 0 and prints the usage line and a description."""
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: {' '.join(['kamflow', *path])}")
    assert len(out.splitlines()) > 3 and "--help" in out
    if path and path[0] not in ("tasks", "rules") or len(path) > 1:
        assert "--verbose" in out  # every leaf command takes -v/--verbose


def test_help_starts_without_heavy_imports() -> None:
    """`kamflow --help` imports neither prefect, pandas, Great Expectations nor SQLAlchemy."""
    probe = ("import sys, json; from kamflow.cli import main; code = main(['--help']); "
             "print(json.dumps([code, sorted(m for m in ('prefect', 'pandas', 'numpy', "
             "'great_expectations', 'sqlalchemy', 'uvicorn') if m in sys.modules)]))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [0, []]


def test_unknown_command_and_option_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command or option is a usage error: exit 2, a reason, no traceback."""
    assert main(["fly"]) == 2
    assert main(["run", "--source", ".", "--colour"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'fly'" in err and "No such option: --colour" in err
    assert "Traceback" not in err
