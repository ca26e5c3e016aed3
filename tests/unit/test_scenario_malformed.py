"""The malformed corpus: every bad document exits 2 with file:line:col: field: message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_cli

CORPUS = Path(__file__).resolve().parent.parent / "data" / "scenarios" / "malformed"
CASES = sorted(CORPUS.glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (?:(\d+):(\d+): )?(.*?): (.*)$")


def _expectation(path: Path) -> tuple[str | None, str, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = _EXPECT.match(first)
    assert m, f"{path.name}: first line must be '# expect: L:C: field: message'"
    loc = f"{m.group(1)}:{m.group(2)}" if m.group(1) else None
    return loc, m.group(3), m.group(4)


def test_the_corpus_holds_at_least_forty_documents():
    assert len(CASES) >= 40


def _shown(path: Path) -> str:
    """How a path appears in messages: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _assert_error(path: Path, command: str) -> None:
    loc, field, message = _expectation(path)
    result = run_cli(command, str(path), expect=2)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    prefix = f"ftctl: error: {_shown(path)}:"
    assert line.startswith(prefix), line
    rest = line[len(prefix) :]
    # Every message carries a line and a column.
    assert re.match(r"\d+:\d+: ", rest), line
    if loc is not None:
        assert rest.startswith(f"{loc}: "), line
    where = f"{field}: " if field else ": "
    assert where in rest, line
    assert message in rest, line


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_malformed_scenario_exits_2_naming_line_and_field(path: Path):
    _assert_error(path, "plan")


VALIDATE_CASES = [p for p in CASES if "-as-scenario" not in p.stem]


@pytest.mark.parametrize("path", VALIDATE_CASES, ids=[p.stem for p in VALIDATE_CASES])
def test_validate_reports_the_same_error(path: Path):
    _assert_error(path, "validate")


def test_validate_accepts_a_thresholds_document_on_its_own():
    path = CORPUS / "thresholds-as-scenario.yaml"
    assert run_cli("validate", str(path)).stdout.strip() == f"OK {_shown(path)} (Thresholds)"


def test_zero_byte_file_is_an_empty_document(tmp_path: Path):
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    result = run_cli("validate", str(path), expect=2)
    assert result.stderr.strip() == f"ftctl: error: {_shown(path)}:1:1: empty document"


def test_missing_file_exits_2(tmp_path: Path):
    result = run_cli("validate", str(tmp_path / "nope.yaml"), expect=2)
    assert "no such file" in result.stderr


def test_debug_flag_shows_the_traceback():
    result = run_cli("--debug", "validate", str(CORPUS / "negative-clients.yaml"), expect=2)
    assert "Traceback" in result.stderr
