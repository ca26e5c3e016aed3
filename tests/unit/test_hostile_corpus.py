"""The hostile-input corpus: every case exits with its documented code, a clear line, quickly.

Cases live in ``tests/data/hostile/*.yaml`` (one file per area). Each case names the files it
writes into a fresh folder, the ``ftctl`` argv, the exit code, and fragments the last stderr line
must contain. The real CLI runs in a subprocess so a hang or a segfault fails the case instead
of the test process, and the folder is compared before and after: nothing outside the paths the
case allows (``may_write``) may appear, change or vanish.

Placeholders in argv and file text: ``{dir}`` the case folder, ``{closed_port}`` a loopback port
nothing listens on.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "hostile"


def _cases() -> dict[str, dict]:
    cases: dict[str, dict] = {}
    for manifest in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(manifest.read_text(encoding="utf-8")) or []:
            name = f"{manifest.stem}/{case['name']}"
            assert name not in cases, f"duplicate case {name}"
            cases[name] = case
    return cases


CASES = _cases()


def _closed_port() -> int:
    # Bound and closed again: nothing listens there for the instant the case needs.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _snapshot(root: Path, work: Path) -> dict[str, str]:
    """Everything under ``root`` keyed by its path relative to the case folder ``work``."""
    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = Path(os.path.relpath(path, work)).as_posix()
        if path.is_symlink():
            state[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[rel] = "dir" if path.is_dir() else "other"
    return state


def _fill(text: object, subst: dict[str, str]) -> str:
    # Plain replacement, not str.format: case texts hold braces of their own ({name}, x{).
    out = str(text)
    for key, value in subst.items():
        out = out.replace("{" + key + "}", value)
    return out


def _allowed(rel: str, may_write: list[str]) -> bool:
    if rel.startswith("../"):
        return False
    return any(rel == p.rstrip("/") or rel.startswith(p.rstrip("/") + "/") for p in may_write)


def test_the_corpus_covers_every_area():
    areas = {name.split("/")[0] for name in CASES}
    assert {"scenario", "load", "results", "kubernetes"} <= areas, areas


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_case_exits_with_its_code_and_a_clear_line(name: str, tmp_path: Path):
    case = CASES[name]
    work = tmp_path / "case"
    work.mkdir()
    subst = {"dir": str(work), "closed_port": str(_closed_port())}
    for rel, text in (case.get("files") or {}).items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(text, subst))
    for rel in case.get("dirs") or []:
        (work / rel).mkdir(parents=True, exist_ok=True)
    before = _snapshot(tmp_path, work)
    argv = [_fill(a, subst) for a in case["argv"]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "KUBECONFIG": str(work / "no-kubeconfig")}
    env.update({k: _fill(v, subst) for k, v in (case.get("env") or {}).items()})
    result = subprocess.run(
        [sys.executable, "-m", "ftctl", *argv],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=work,
    )
    assert result.returncode == case["exit"], (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    shown = "\n".join(lines)
    for fragment in case.get("stderr") or []:
        assert _fill(fragment, subst) in shown, shown[-2000:]
    after = _snapshot(tmp_path, work)
    may_write = case.get("may_write") or []
    changed = {
        rel
        for rel in set(before) | set(after)
        if before.get(rel) != after.get(rel) and not _allowed(rel, may_write)
    }
    assert not changed, f"touched outside {may_write}: {sorted(changed)}"
