"""The namespace guard on every command: run, run --dry-run, plan and cleanup refuse alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

KUBE = str(REPO / "scenario_files" / "kubernetes" / "token-overflow-agg.yaml")
DEMO = str(REPO / "scenario_files" / "local" / "demo.yaml")
SELECT = ("-k", "vllm")
REFUSED = "ftctl: error: kubernetes: refusing to use namespace"


@pytest.fixture(autouse=True)
def _no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here may reach a cluster: a refusal must come before any kubeconfig is read.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def test_plan_names_the_namespace_under_each_deployment():
    lines = run_cli("plan", KUBE, *SELECT, "--namespace", "team-a").stdout.splitlines()
    header = lines.index("# DynamoGraphDeployment for vllm_agg_token_overflow_2x")
    assert lines[header + 1] == "# namespace: team-a"


def test_plan_without_namespace_shows_the_default_one():
    out = run_cli("plan", KUBE, *SELECT).stdout
    assert "\n# namespace: fault-tolerance-test\n" in out


def test_plan_marks_an_allowed_protected_namespace_as_protected():
    out = run_cli(
        "plan", KUBE, *SELECT, "--namespace", "default", "--allow-namespace", "DEFAULT "
    ).stdout
    assert (
        "# namespace: default (protected: a system or shared namespace, "
        "allowed by --allow-namespace)\n" in out
    )


def test_plan_json_carries_the_namespace_of_kubernetes_tests_only():
    (kube,) = json.loads(run_cli("plan", KUBE, *SELECT, "--json", "--namespace", "x").stdout)
    assert kube["namespace"] == {"name": "x", "protected": False}
    local = json.loads(run_cli("plan", DEMO, "--json").stdout)
    assert all("namespace" not in plan for plan in local)


@pytest.mark.parametrize("namespace", ["kube-system", "kube-system ", "KUBE-SYSTEM", " default"])
def test_plan_refuses_a_protected_namespace_in_any_spelling_with_exit_2(namespace: str):
    result = run_cli("plan", KUBE, *SELECT, "--namespace", namespace, expect=2)
    assert result.stdout == ""
    assert result.stderr.startswith(REFUSED)
    assert "given by --namespace" in result.stderr


def test_dry_run_refuses_a_protected_namespace_like_plan(tmp_path: Path):
    out = tmp_path / "results"
    result = run_cli(
        "run", KUBE, *SELECT, "--dry-run", "--namespace", "KUBE-SYSTEM", "--output-dir", str(out),
        expect=2,
    )  # fmt: skip
    assert result.stderr.startswith(REFUSED)
    assert not out.exists()


def test_run_refuses_before_writing_any_result(tmp_path: Path):
    out = tmp_path / "results"
    result = run_cli(
        "run", KUBE, *SELECT, "--namespace", "kube-system ", "--output-dir", str(out), expect=2
    )
    assert result.stderr.startswith(REFUSED)
    assert not out.exists()


def test_run_rejects_a_namespace_kubernetes_would_reject(tmp_path: Path):
    result = run_cli(
        "run", KUBE, *SELECT, "--namespace", "My Team", "--output-dir", str(tmp_path), expect=2
    )
    assert "--namespace: 'My Team' is not a valid namespace" in result.stderr


def test_cleanup_refuses_a_protected_namespace_before_reading_the_kubeconfig():
    result = run_cli("cleanup", "--namespace", "Kube-System ", expect=2)
    assert result.stderr.startswith(REFUSED)
    assert "kubeconfig" not in result.stderr


def test_cleanup_with_an_allowed_namespace_goes_on_to_the_kubeconfig():
    # Allowed, the refusal is gone and the next problem (no kubeconfig here) is reported.
    result = run_cli(
        "cleanup", "--namespace", "kube-system", "--allow-namespace", "KUBE-SYSTEM", expect=3
    )
    assert "no kubeconfig" in result.stderr
