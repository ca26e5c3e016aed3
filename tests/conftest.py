"""Shared fixtures: run the CLI in-process and fail loudly on an unexpected exit code."""

from __future__ import annotations

import io
import signal
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Started as a background job of a non-interactive shell (or under nohup), the test
    # process inherits SIGINT *ignored*; every child would inherit that too, so the tests
    # that press Ctrl-C on `ftctl run` would see it ignored and the run finish with 0.
    # Handled here (not ignored), SIGINT is back to the default in every exec'd child.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, expect: int | None = 0) -> CliResult:
    """Run ``ftctl ARGS`` in-process; assert the exit code unless ``expect`` is None."""
    from ftctl.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = ["ftctl", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
    result = CliResult(code, out.getvalue(), err.getvalue())
    if expect is not None and code != expect:
        raise AssertionError(
            f"ftctl {' '.join(args)} exited {code}, expected {expect}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def repo() -> Path:
    return REPO
