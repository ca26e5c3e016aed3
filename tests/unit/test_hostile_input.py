"""Hostile YAML: bombs, deep nesting and non-files end in a clear exit 2, never a hang or crash.

Each case runs the real CLI in a subprocess: a segfault or a hang must fail the test, not take
the test process with it (the timeout ends the child and fails the case).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = "apiVersion: ftctl/v1\nkind: Scenario\n"


def _alias_bomb(levels: int) -> str:
    text = HEADER + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    previous = "a"
    for name in "bcdefghijk"[:levels]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
        previous = name
    return text


# name → (writer of the case into a folder, command, expected line or None, message fragment)
CASES: dict[str, tuple[Callable[[Path], Path], str, int | None, str]] = {}


def _case(name: str, command: str, line: int | None, fragment: str):
    def register(writer: Callable[[Path], Path]):
        CASES[name] = (writer, command, line, fragment)
        return writer

    return register


def _write(folder: Path, text: str) -> Path:
    path = folder / "case.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@_case("alias-bomb-8-levels", "validate", 4, "expands to more than")
def _bomb8(folder: Path) -> Path:
    return _write(folder, _alias_bomb(8))


@_case("alias-bomb-9-levels", "plan", 4, "expands to more than")
def _bomb9(folder: Path) -> Path:
    return _write(folder, _alias_bomb(9))


@_case("flow-nesting-30000-deep", "validate", 1, "nesting deeper than")
def _deep_flow(folder: Path) -> Path:
    return _write(folder, "[" * 30_000 + "]" * 30_000 + "\n")


@_case("flow-nesting-1000-deep-under-a-key", "plan", 3, "nesting deeper than")
def _deep_key(folder: Path) -> Path:
    return _write(folder, HEADER + "load: " + "[" * 1000 + "]" * 1000 + "\n")


@_case("block-sequence-5000-deep", "validate", 1, "nesting deeper than")
def _deep_block(folder: Path) -> Path:
    return _write(folder, "- " * 5000 + "x\n")


@_case("fifo-as-scenario", "validate", None, "not a regular file")
def _fifo(folder: Path) -> Path:
    path = folder / "case.yaml"
    os.mkfifo(path)
    return path


@_case("document-over-8-mib", "validate", None, "larger than 8 MiB")
def _huge(folder: Path) -> Path:
    return _write(folder, HEADER + "# " + "x" * (8 * 1024 * 1024) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_yaml_exits_2_with_file_and_line_and_no_traceback(name: str, tmp_path: Path):
    writer, command, line, fragment = CASES[name]
    path = writer(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "ftctl", command, str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    where = f"case.yaml:{line}:" if line is not None else "case.yaml:"
    assert where in message and fragment in message, message


def test_an_alias_used_many_times_in_a_real_scenario_still_loads(tmp_path: Path):
    # The bounds must not refuse ordinary anchors: the duplicate-key walk visits each once.
    from ftctl.scenario.yamlio import parse_text

    text = HEADER + "base: &base {clients: 1, retries: 0}\n"
    text += "".join(f"l{i}: *base\n" for i in range(500))
    doc = parse_text(text, "anchors.yaml")
    assert doc.data["l499"] == {"clients": 1, "retries": 0}
