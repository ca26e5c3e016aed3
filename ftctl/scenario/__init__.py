"""Scenario documents: loading, schema and semantic validation, matrix expansion, catalogs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftctl.errors import ErrorCollector, OptionError, ScenarioError
from ftctl.scenario.catalogs import load_catalogs
from ftctl.scenario.durations import parse_duration
from ftctl.scenario.keyword import keyword_matches, marker_matches, names_term
from ftctl.scenario.model import Catalogs, TestCase
from ftctl.scenario.schema import check_kind
from ftctl.scenario.yamlio import Document, display_path, read_document

__all__ = [
    "Catalogs",
    "Selection",
    "TestCase",
    "keyword_matches",
    "load_catalogs",
    "load_tests",
    "parse_duration",
    "scenario_documents",
]

CUSTOM_BUILD = "custom_build"
CUSTOM_BUILD_WHY = (
    "tagged custom_build: they need an image built beyond the stock release (MoE and friends); "
    "--include-custom-build, or a -k/-m naming custom_build, keeps them"
)


@dataclass
class Selection:
    """What a load_tests call left out, and why (``ftctl list`` says it)."""

    custom_build: list[str] = field(default_factory=list)  # test names excluded as custom_build
    # (file, failure, cell, reason) per matrix failure left out of a cell
    dropped: list[tuple[str, str, str, str]] = field(default_factory=list)


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def scenario_documents(paths: list[Path]) -> list[Document]:
    """Scenario documents from files (must be Scenarios) and folders (their Scenario files).

    Raises:
        ScenarioError: unreadable file, a file of another kind, a folder without scenarios.
    """
    docs: list[Document] = []
    found = ErrorCollector()
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found_here = 0
            for file in _yaml_files(path):
                with found.attempt():
                    doc = read_document(file)
                    # Folders mix scenarios with catalogs and DGD manifests: take only scenarios.
                    if doc.data.get("kind") == "Scenario":
                        docs.append(doc)
                        found_here += 1
            if not found_here and not found.errors:
                found.errors.append(
                    ScenarioError("no Scenario documents in this folder", file=display_path(path))
                )
        else:
            with found.attempt():
                doc = read_document(path)
                check_kind(doc, ("Scenario",))
                docs.append(doc)
    found.raise_if_any()
    return docs


def load_tests(
    paths: list[Path],
    *,
    keyword: str | None = None,
    markers: str | None = None,
    include_custom_build: bool = False,
    platform: str | None = None,
    failures_file: Path | None = None,
    thresholds_file: Path | None = None,
    selection: Selection | None = None,
) -> list[TestCase]:
    """Expanded, selected TestCases of scenario files or folders (folders: sorted *.yaml).

    Args:
        paths: scenario files or folders.
        keyword: a ``-k`` expression (substrings of the name or upstream node id, or tags;
            and/or/not) selecting tests.
        markers: a ``-m`` expression over tags (and/or/not).
        include_custom_build: keep tests tagged ``custom_build`` (MoE and friends); also kept
            when ``keyword`` or ``markers`` names ``custom_build``: the user asked for them.
        selection: filled with what was left out and why.
        platform: ``local`` | ``kubernetes``, overriding each scenario's ``platform:``.
        failures_file, thresholds_file: catalogs replacing the shipped ones.

    Raises:
        ScenarioError: file:line:col: field: message (exit 2).
    """
    from ftctl.scenario.loader import tests_from_document

    if platform is not None and platform not in ("local", "kubernetes"):
        raise OptionError("platform", f"{platform!r} is not one of local, kubernetes")
    # A malformed expression fails before any file is read.
    if keyword:
        keyword_matches(keyword, "")
    if markers:
        marker_matches(markers, ())
    include_custom_build = include_custom_build or any(
        expr and names_term(expr, CUSTOM_BUILD) for expr in (keyword, markers)
    )
    selection = selection if selection is not None else Selection()
    catalogs = load_catalogs(failures_file, thresholds_file)
    tests: list[TestCase] = []
    seen: dict[str, str] = {}
    found = ErrorCollector()
    expanded = []
    for doc in scenario_documents(paths):
        with found.attempt():
            dropped: list[tuple[str, str, str]] = []
            doc_tests = tests_from_document(doc, catalogs, platform=platform, dropped=dropped)
            expanded.append((doc, doc_tests))
            selection.dropped.extend((display_path(doc.file), *drop) for drop in dropped)
    found.raise_if_any()
    for doc, doc_tests in expanded:
        for test in doc_tests:
            if test.name in seen:
                raise doc.error(
                    ["metadata", "name"],
                    f"duplicate test name '{test.name}' (also from {seen[test.name]})",
                )
            seen[test.name] = doc.file
            if keyword and not keyword_matches(keyword, test.name, test.tags):
                continue
            if markers and not marker_matches(markers, test.tags):
                continue
            if CUSTOM_BUILD in test.tags and not include_custom_build:
                selection.custom_build.append(test.name)
                continue
            tests.append(test)
    return tests
