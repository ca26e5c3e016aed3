"""Kubernetes client setup: namespaces refused, kubeconfig contexts, API errors made clear."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ftctl.errors import ExitStatus, PlatformError, UsageError
from ftctl.platforms.kube.client import api_error, check_namespace, load_configuration


@pytest.mark.parametrize("ns", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_protected_namespaces_are_refused_unless_allowed(ns: str):
    with pytest.raises(UsageError, match=f"--allow-namespace {ns}"):
        check_namespace(ns)
    check_namespace(ns, allow=[ns])


@pytest.mark.parametrize(
    ("given", "protected"),
    [
        ("kube-system ", "kube-system"),
        ("KUBE-SYSTEM", "kube-system"),
        ("\tKube-Public\n", "kube-public"),
        (" default", "default"),
    ],
)
def test_protected_namespaces_are_refused_in_any_spelling(given: str, protected: str):
    with pytest.raises(UsageError) as info:
        check_namespace(given)
    assert info.value.exit_code == ExitStatus.INVALID
    assert info.value.message.startswith("kubernetes: refusing to use namespace")
    assert f"--allow-namespace {protected} " in info.value.message
    assert "given by --namespace" in info.value.message


def test_allowed_namespaces_are_normalised_like_the_namespace():
    assert check_namespace("kube-system", allow=[" KUBE-SYSTEM "]) == "kube-system"


def test_an_allowed_protected_namespace_must_still_be_spelled_validly():
    with pytest.raises(UsageError, match=r"'KUBE-SYSTEM' is not a valid namespace \(did you mean"):
        check_namespace("KUBE-SYSTEM", allow=["kube-system"])


@pytest.mark.parametrize("name", ["My NS", "ns_1", "team-a ", "-ns", "ns-", "x" * 64, "ns.a"])
def test_names_kubernetes_would_reject_are_a_usage_error_naming_the_option(name: str):
    with pytest.raises(UsageError) as info:
        check_namespace(name, option="--namespace")
    assert info.value.exit_code == ExitStatus.INVALID
    assert info.value.message.startswith(f"kubernetes: --namespace: {name!r} is not a valid")
    assert "DNS-1123 label" in info.value.message


@pytest.mark.parametrize("name", ["a", "0", "fault-tolerance-test", "team-7", "x" * 63])
def test_valid_namespaces_pass_unchanged(name: str):
    assert check_namespace(name) == name


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_namespace_is_refused(name: str):
    with pytest.raises(UsageError, match="empty namespace"):
        check_namespace(name)


def _kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "a",
                "clusters": [
                    {"name": "ca", "cluster": {"server": "http://127.0.0.1:1"}},
                    {"name": "cb", "cluster": {"server": "http://127.0.0.1:2"}},
                ],
                "contexts": [
                    {"name": "a", "context": {"cluster": "ca", "user": "u"}},
                    {"name": "b", "context": {"cluster": "cb", "user": "u"}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return path


def test_current_context_is_used_and_described(tmp_path: Path):
    cfg, target = load_configuration(_kubeconfig(tmp_path / "kc"), namespace="ns1")
    assert (target.context, target.cluster, cfg.host) == ("a", "ca", "http://127.0.0.1:1")
    assert target.describe() == (
        "kubernetes: context a, cluster ca (http://127.0.0.1:1), namespace ns1"
    )


def test_explicit_context_wins_and_kubeconfig_env_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kc")))
    cfg, target = load_configuration(context="b")
    assert (target.context, cfg.host) == ("b", "http://127.0.0.1:2")


def test_unknown_context_lists_the_known_ones(tmp_path: Path):
    with pytest.raises(UsageError, match=r"'zz' not found .*have: a, b"):
        load_configuration(_kubeconfig(tmp_path / "kc"), context="zz")


def test_missing_kubeconfig_is_an_infrastructure_error(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(PlatformError, match="no kubeconfig") as info:
        load_configuration(tmp_path / "absent")
    assert info.value.exit_code == ExitStatus.INFRA


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "forbidden"),
        (404, "not found"),
        (409, "conflict"),
        (410, "expired"),
        (500, "API server error (HTTP 500)"),
        (0, "WebSocket handshake"),
    ],
)
def test_api_statuses_become_one_clear_line(status: int, words: str):
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=status, reason="Because")
    exc.body = b'{"kind":"Status","message":"the detail"}' if status else None
    err = api_error(exc, "create thing")
    assert words in err.message
    assert err.message.startswith("create thing: ")
    assert "\n" not in err.message
    assert err.exit_code == ExitStatus.INFRA
