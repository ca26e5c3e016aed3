"""What kind of result directory is this (aiperf / legacy), and where are the test dirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftctl.errors import ParseError
from ftctl.events import EVENTS_FILE
from ftctl.layout import CLIENT_PREFIX, LOADS_DIR
from ftctl.results import aiperf
from ftctl.results.legacy import client_files
from ftctl.results.upstream import TEST_LOG

PARSERS = ("aiperf", "legacy")
_AIPERF_MARKERS = aiperf.ARTIFACT_MARKERS


def load_dirs(test_dir: Path) -> dict[str, Path]:
    """Load name → directory: the root is "default", ``loads/<name>/`` are the others, and so
    is every bare aiperf artifact folder of the root (the upstream declarative framework's
    ``<test>/<load>/profile_export_aiperf.json``, seeds/003), named after its folder."""
    found = {"default": test_dir}
    loads = test_dir / LOADS_DIR
    if loads.is_dir():
        for child in sorted(loads.iterdir()):
            if child.is_dir():
                found[child.name] = child
    for child in _artifact_children(test_dir):
        found.setdefault(child.name, child)
    return found


def _artifact_children(test_dir: Path) -> list[Path]:
    try:
        children = sorted(p for p in test_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    # client_N folders are clients of the root, never loads of their own.
    return [
        c for c in children if not c.name.startswith(CLIENT_PREFIX) and aiperf.is_artifact_dir(c)
    ]


def _has_aiperf(directory: Path) -> bool:
    for _, client_dir in aiperf.client_dirs(directory):
        for _, attempt in aiperf.attempt_dirs(client_dir):
            if any((attempt / name).exists() for name in _AIPERF_MARKERS):
                return True
    return False


def _has_legacy(directory: Path) -> bool:
    return bool(client_files(directory))


def detect_kind(test_dir: Path, force_parser: str | None = None) -> tuple[str, list[str]]:
    """("aiperf" | "legacy", warnings) for a test directory; ParseError when neither fits.

    aiperf when a ``client_*`` folder holds ``attempt_*`` with aiperf output; legacy when
    ``client_*.log.txt`` exist; both → aiperf with a warning (REFERENCE §4).
    """
    if force_parser is not None:
        if force_parser not in PARSERS:
            raise ParseError(
                f"--force-parser {force_parser!r}: expected one of {', '.join(PARSERS)}"
            )
        return force_parser, []
    dirs = list(load_dirs(test_dir).values())
    is_aiperf = any(_has_aiperf(d) for d in dirs)
    is_legacy = any(_has_legacy(d) for d in dirs)
    if is_aiperf and is_legacy:
        return "aiperf", [
            f"{test_dir}: holds both aiperf and legacy results; parsed as aiperf "
            "(use --force-parser legacy for the other)"
        ]
    if is_aiperf:
        return "aiperf", []
    if is_legacy:
        return "legacy", []
    raise ParseError(
        f"{test_dir}: no aiperf (client_N/attempt_M/) or legacy (client_N.log.txt) results "
        "found; pass --force-parser aiperf|legacy if the layout is unusual"
    )


def is_test_dir(path: Path) -> bool:
    """A directory that holds results of one test (client files, events or test.log)."""
    if not path.is_dir():
        return False
    if (path / EVENTS_FILE).exists() or (path / TEST_LOG).exists():
        return True
    return _has_legacy(path) or bool(aiperf.client_dirs(path) or _artifact_children(path))


def find_test_dirs(path: Path, depth: int = 3) -> list[Path]:
    """``path`` when it is a test directory, else the test directories below it (sorted)."""
    if is_test_dir(path):
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    found: list[Path] = []
    try:
        # Dot folders hold what is not a result of interest (.previous runs, .git).
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(find_test_dirs(child, depth - 1))
    return found


@dataclass
class DirInfo:
    """What ``--info`` prints: type, clients, attempts per client, which logs exist."""

    path: Path
    type: str | None
    client_count: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    has_test_log: bool = False
    has_events: bool = False
    loads: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def describe(test_dir: Path, force_parser: str | None = None) -> DirInfo:
    """Describe a test directory without parsing any result file."""
    try:
        kind, warnings = detect_kind(test_dir, force_parser)
    except ParseError as exc:
        kind, warnings = None, [exc.message]
    info = DirInfo(
        test_dir,
        kind,
        has_test_log=(test_dir / TEST_LOG).exists(),
        has_events=(test_dir / EVENTS_FILE).exists(),
        warnings=warnings,
    )
    loads = load_dirs(test_dir)
    info.loads = list(loads)
    for name, directory in loads.items():
        prefix = "" if name == "default" else f"{name}/"
        if kind == "aiperf":
            for client, client_dir in aiperf.client_dirs(directory):
                info.attempts[f"{prefix}client_{client}"] = len(aiperf.attempt_dirs(client_dir))
                info.client_count += 1
        else:
            info.client_count += len(client_files(directory))
    return info
