"""``ftctl validate``: schema and semantics of Scenario, FailureCatalog and Thresholds files."""

from __future__ import annotations

from pathlib import Path

from ftctl.commands import Output
from ftctl.errors import ErrorCollector, ScenarioError, UsageError
from ftctl.scenario.catalogs import failures_from_document, load_catalogs, thresholds_from_document
from ftctl.scenario.schema import check_kind
from ftctl.scenario.yamlio import display_path, read_document

KINDS = ("Scenario", "FailureCatalog", "Thresholds")


def validate(files: list[Path]) -> Output:
    """Validate documents of any kind; ``OK <file> (<kind>)`` per file, or raise every error.

    A FailureCatalog or Thresholds among ``paths`` is used for the Scenarios given with it.

    Raises:
        ScenarioError | ScenarioErrors: file:line:col: field: message (exit 2).
    """
    from ftctl.scenario.loader import tests_from_document

    paths = files
    if not paths:
        raise UsageError("validate: give at least one file")
    docs = []
    found = ErrorCollector()
    for path in paths:
        with found.attempt():
            if Path(path).is_dir():
                raise ScenarioError("is a directory; validate takes files", file=display_path(path))
            doc = read_document(Path(path))
            docs.append((doc, check_kind(doc, KINDS)))
    catalogs = load_catalogs()
    for doc, kind in docs:
        with found.attempt():
            if kind == "FailureCatalog":
                catalogs.failures = failures_from_document(doc)
            elif kind == "Thresholds":
                catalogs.profiles, catalogs.rules = thresholds_from_document(doc)
    # Scenarios are checked against the catalogs given with them: only once those hold.
    found.raise_if_any()
    lines = []
    for doc, kind in docs:
        with found.attempt():
            if kind == "Scenario":
                tests_from_document(doc, catalogs)
            lines.append(f"OK {doc.file} ({kind})")
    found.raise_if_any()
    return Output("\n".join(lines))
