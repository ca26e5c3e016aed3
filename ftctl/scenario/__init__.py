"""Scenario documents: loading, schema and semantic validation, matrix expansion, catalogs."""

from __future__ import annotations

from pathlib import Path

from ftctl.errors import ErrorCollector, OptionError, ScenarioError
from ftctl.scenario.catalogs import load_catalogs
from ftctl.scenario.durations import parse_duration
from ftctl.scenario.keyword import keyword_matches
from ftctl.scenario.model import Catalogs, TestCase
from ftctl.scenario.schema import check_kind
from ftctl.scenario.yamlio import Document, display_path, read_document

__all__ = [
    "Catalogs",
    "TestCase",
    "keyword_matches",
    "load_catalogs",
    "load_tests",
    "parse_duration",
    "scenario_documents",
]

CUSTOM_BUILD = "custom_build"


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
    include_custom_build: bool = False,
    platform: str | None = None,
    failures_file: Path | None = None,
    thresholds_file: Path | None = None,
) -> list[TestCase]:
    """Expanded, selected TestCases of scenario files or folders (folders: sorted *.yaml).

    Args:
        paths: scenario files or folders.
        keyword: a ``-k`` expression (substrings with and/or/not) selecting tests by name.
        include_custom_build: keep tests tagged ``custom_build`` (MoE and friends).
        platform: ``local`` | ``kubernetes``, overriding each scenario's ``platform:``.
        failures_file, thresholds_file: catalogs replacing the shipped ones.

    Raises:
        ScenarioError: file:line:col: field: message (exit 2).
    """
    from ftctl.scenario.loader import tests_from_document

    if platform is not None and platform not in ("local", "kubernetes"):
        raise OptionError("platform", f"{platform!r} is not one of local, kubernetes")
    if keyword:
        keyword_matches(keyword, "")  # a malformed expression fails before any file is read
    catalogs = load_catalogs(failures_file, thresholds_file)
    tests: list[TestCase] = []
    seen: dict[str, str] = {}
    found = ErrorCollector()
    expanded = []
    for doc in scenario_documents(paths):
        with found.attempt():
            expanded.append((doc, tests_from_document(doc, catalogs, platform=platform)))
    found.raise_if_any()
    for doc, doc_tests in expanded:
        for test in doc_tests:
            if test.name in seen:
                raise doc.error(
                    ["metadata", "name"],
                    f"duplicate test name '{test.name}' (also from {seen[test.name]})",
                )
            seen[test.name] = doc.file
            if CUSTOM_BUILD in test.tags and not include_custom_build:
                continue
            if keyword and not keyword_matches(keyword, test.name):
                continue
            tests.append(test)
    return tests
