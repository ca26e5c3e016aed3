"""Result directories → TestResult: detection, readers (legacy, aiperf, upstream) and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftctl.results.model import TestResult


def parse_result_dir(
    path: Path,
    *,
    force_parser: str | None = None,
    sla: float | None = None,
    recovery_window: float = 10.0,
) -> TestResult:
    """Parse one test directory (ftctl, upstream legacy or aiperf) into a TestResult.

    Raises ParseError when the directory is unreadable or its type cannot be detected.
    """
    from ftctl.results.parse import parse_test_dir

    return parse_test_dir(
        Path(path), force_parser=force_parser, sla=sla, recovery_window=recovery_window
    )


def find_test_dirs(path: Path) -> list[Path]:
    """``path`` itself when it is a test directory, else the test directories below it."""
    from ftctl.results.detect import find_test_dirs as _find

    return _find(Path(path))
