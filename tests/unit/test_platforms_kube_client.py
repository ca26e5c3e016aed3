"""Kubernetes client setup: namespaces refused, kubeconfig contexts, API errors made clear."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftctl.errors import ExitStatus, PlatformError, UsageError
from ftctl.platforms.kube.client import api_error, check_namespace, load_configuration
from tests.conftest import REPO


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


def test_kubeconfig_files_are_merged_with_the_first_current_context_winning(tmp_path, monkeypatch):
    first = _kubeconfig(tmp_path / "first")
    second = tmp_path / "second"
    second.write_text(
        "current-context: c\n"
        "clusters: [{name: cc, cluster: {server: 'http://127.0.0.1:3'}}]\n"
        "contexts: [{name: c, context: {cluster: cc}}]\n"
    )
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(tmp_path / "absent"), str(first), str(second)])
    )
    _, target = load_configuration()
    assert target.context == "a"
    cfg, target = load_configuration(context="c")
    assert (target.context, target.cluster, cfg.host) == ("c", "cc", "http://127.0.0.1:3")


_GOOD = {
    "current-context": "a",
    "clusters": [{"name": "ca", "cluster": {"server": "http://127.0.0.1:1"}}],
    "contexts": [{"name": "a", "context": {"cluster": "ca", "user": "u"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
}


def _without(**changes: object) -> str:
    data = {**_GOOD, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("clusters: [\n", "kc:2:1: YAML syntax error"),
        ("- just\n- a list\n", "kc:1:1: expected a mapping"),
        ("", "kc:1:1: empty document"),
        ("a: &a [x, x]\nb: !!python/object/apply:os.system [true]\n", "refused YAML tag"),
        (_without(**{"current-context": None}), "kc: no current-context set; pass --context NAME"),
        (_without(**{"current-context": "zz"}), "current-context: context 'zz' not found"),
        (_without(**{"current-context": ["a"]}), "current-context: expected a context name"),
        (_without(contexts={"a": 1}), "contexts: expected a list of {name, context}"),
        (_without(users=["u"]), "users[0]: expected a mapping with name and user"),
        (_without(clusters=[{"name": "ca", "cluster": "x"}]), "clusters[0].cluster: expected a"),
        (
            _without(contexts=[{"name": "a", "context": {"user": "u"}}]),
            "contexts[0].context: context 'a' names no cluster",
        ),
        (
            _without(contexts=[{"name": "a", "context": {"cluster": "nope", "user": "u"}}]),
            "contexts[0].context.cluster: context 'a' names cluster 'nope', which is not defined "
            "(have: ca)",
        ),
        (
            _without(users=[]),
            "contexts[0].context.user: context 'a' names user 'u', which is not defined",
        ),
        (
            _without(clusters=[{"name": "ca", "cluster": {"insecure-skip-tls-verify": True}}]),
            "clusters[0].cluster: cluster 'ca' has no server",
        ),
        (
            _without(clusters=[{"name": "ca", "cluster": {"server": "127.0.0.1:6443"}}]),
            "clusters[0].cluster.server: server '127.0.0.1:6443' of cluster 'ca' is not an "
            "http(s) URL",
        ),
        (
            _without(
                clusters=[
                    {
                        "name": "ca",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "certificate-authority": "absent.crt",
                        },
                    }
                ]
            ),
            "kubernetes: kubeconfig kc: File does not exist: ",
        ),
    ],
)
def test_a_broken_kubeconfig_is_one_line_naming_the_file_and_the_problem(
    text: str, words: str, tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kc").write_text(text)
    with pytest.raises(UsageError) as info:
        load_configuration(tmp_path / "kc")
    message = info.value.message
    assert info.value.exit_code == ExitStatus.INVALID
    assert message.startswith("kubernetes: "), message
    assert words in message, message
    assert "\n" not in message
    assert " object at 0x" not in message


def test_a_kubeconfig_that_is_not_utf8_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kc").write_bytes(b"current-context: \xff\xfe\n")
    with pytest.raises(UsageError, match=r"^kubernetes: kubeconfig kc: not UTF-8 text"):
        load_configuration(tmp_path / "kc")


def test_a_folder_given_as_kubeconfig_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kc").mkdir()
    with pytest.raises(UsageError, match=r"^kubernetes: kubeconfig kc: is a directory"):
        load_configuration(tmp_path / "kc")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_kubeconfig_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _kubeconfig(tmp_path / "kc")
    path.chmod(0)
    with pytest.raises(UsageError, match=r"^kubernetes: kubeconfig kc: cannot read: Permission"):
        load_configuration(path)


def test_a_fifo_as_kubeconfig_is_refused_without_blocking(tmp_path: Path):
    # A subprocess: were the FIFO opened blocking, the timeout fails the test instead of
    # hanging the test run.
    fifo = tmp_path / "kc"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO), "KUBECONFIG": str(fifo)}
    done = subprocess.run(
        [sys.executable, "-m", "ftctl", "cleanup"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == ExitStatus.INVALID, done.stderr
    assert done.stderr.strip() == (
        "ftctl: error: kubernetes: kubeconfig kc: not a regular file (a FIFO or device?), "
        "expected a YAML file"
    )


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


def test_an_unverified_tls_kubeconfig_is_said_once_not_warned_per_request(tmp_path: Path):
    import warnings

    import yaml
    from urllib3.exceptions import InsecureRequestWarning

    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "a",
                "clusters": [
                    {
                        "name": "ca",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "contexts": [{"name": "a", "context": {"cluster": "ca", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    _, target = load_configuration(path, namespace="ns1")
    assert target.describe().endswith(
        "(TLS not verified: insecure-skip-tls-verify in the kubeconfig)"
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("unverified HTTPS request", InsecureRequestWarning, stacklevel=1)
    assert not seen


def test_an_insecure_kubeconfig_is_one_warning_per_run_and_no_urllib3_flood(tmp_path: Path):
    import io
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    from ftctl import events as ev
    from ftctl.platforms.kubernetes import KubernetesPlatform
    from ftctl.reports.progress import ProgressPrinter

    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "a",
                "clusters": [
                    {
                        "name": "ca",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "contexts": [{"name": "a", "context": {"cluster": "ca", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=False)
    for test in ("t1", "t2"):  # a platform per test, one printer per run
        KubernetesPlatform(
            kubeconfig=path,
            namespace="ns1",
            warn=lambda m, t=test: printer.notify(ev.WARNING, test=t, message=m),
        )._api_client.close()
    lines = [line for line in stream.getvalue().splitlines() if "TLS" in line]
    assert lines == ["ftctl: warning: TLS verification is off for https://127.0.0.1:1"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("unverified HTTPS request", InsecureRequestWarning, stacklevel=1)
    assert not seen
