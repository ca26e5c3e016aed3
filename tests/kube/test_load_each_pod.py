"""``ftctl load --namespace NS``: every ready frontend pod loaded in turn through its own
port-forward, one row per pod (issue 16, item 4 on Kubernetes)."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.kube.conftest import NAMESPACE, make_test


def test_each_frontend_pod_of_a_namespace_is_loaded_through_its_own_forward(
    fake, platform_factory, kube_env, tmp_path
):
    platform = platform_factory()
    platform.deploy(make_test("each-pod", dp=2), tmp_path / "run")
    platform.wait_ready(120)
    frontends = sorted(p.name for p in platform.pods() if p.role == "frontend")
    assert len(frontends) == 2
    out = tmp_path / "load"
    start = len(fake.request_log)
    result = run_cli(
        "load",
        "--namespace",
        NAMESPACE,
        "--kubeconfig",
        str(kube_env.kubeconfig),
        "--model",
        "tiny",
        "--requests-per-client",
        "4",
        "--output-dir",
        str(out),
        "--format",
        "markdown",
    )
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| ") and "(http)" in line
    ]
    assert [row.split("|")[1].strip() for row in rows] == [f"{name} (http)" for name in frontends]
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f"pod{i}-{name}" for i, name in enumerate(frontends)]
    for folder in folders:  # each pod's own load: every request answered
        spec = json.loads((out / folder / "load.json").read_text())
        assert spec["summary"]["ok"] == 4, spec["summary"]
    # Both pods were reached by port-forward (not one pod serving both loads).
    forwarded = {
        path.split("/pods/")[1].split("/")[0]
        for _t, _method, path, _query in fake.request_log[start:]
        if path.endswith("/portforward")
    }
    assert forwarded == set(frontends)


def test_namespace_and_urls_together_are_refused(kube_env):
    result = run_cli("load", "http://127.0.0.1:1", "--namespace", NAMESPACE, expect=2)
    assert "not both" in result.stderr


def test_a_protected_namespace_is_refused_before_the_cluster_is_contacted():
    result = run_cli("load", "--namespace", "kube-system", "--kubeconfig", "/nonexistent", expect=2)
    assert "refusing to use namespace 'kube-system'" in result.stderr
