"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served_run_dir(tmp_path_factory) -> Path:
    """The result directory of one real `ftctl run` against the one-pod fake platform: client
    records, events, scraped series, report.json with checks, a verified fault. Read-only."""
    from ftctl.scenario.model import Check
    from tests.unit.test_runner import ServerPlatform, _run

    tmp = tmp_path_factory.mktemp("served-run")
    checks = (Check(kind="fault_verified"), Check(kind="success_rate", min=0.5))
    return _run(tmp, ServerPlatform(), checks, requests=20).result_dir
