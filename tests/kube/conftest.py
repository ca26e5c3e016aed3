"""Fixtures of the Kubernetes tests: the fake API server, the real one with stand-ins, or a cluster.

A test that uses ``kube_env`` runs against target ``fake`` (tests/kube/fake_apiserver.py) and,
in modules that set ``BOTH_TARGETS = True``, also against ``real``: kube-apiserver 1.20.2 + etcd
with the real DGD CRD and the operator/kubelet stand-ins of tests/realkube (marked
``real_apiserver``). ``fake_only`` tests run on the fake alone. With ``--kubeconfig`` every test
runs against that cluster instead (target ``external``) and ``fake_only`` ones are skipped.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftctl.scenario.model import Deployment, TestCase
from tests.builders import build_test
from tests.kube.fake_apiserver import FakeApiServer, FakeCluster
from tests.kube.tokenizer import repo_tokenizer

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "fault-tolerance-test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=None,
        help="run tests/kube against the cluster of this kubeconfig instead of the fake",
    )


# The real target's kubeconfig skips TLS verification of a loopback self-signed certificate;
# urllib3 would warn on every request.
QUIET_TLS = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
REAL = pytest.param("real", marks=[pytest.mark.real_apiserver, QUIET_TLS])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kube_env" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("--kubeconfig"):
        targets: list = ["external"]
    elif metafunc.definition.get_closest_marker("fake_only") or not getattr(
        metafunc.module, "BOTH_TARGETS", False
    ):
        targets = ["fake"]
    else:
        targets = ["fake", REAL]
    metafunc.parametrize("kube_target", targets, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = config.getoption("--kubeconfig") is not None
    here = str(Path(__file__).parent)
    skip = pytest.mark.skip(reason="needs hooks of the fake API server")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kube)
            if real and item.get_closest_marker("fake_only"):
                item.add_marker(skip)


def tokenizer_dir(tmp: Path) -> Path:
    """The repo tokenizer, or one made now (with the aiperf venv's `tokenizers` if needed)."""
    found = repo_tokenizer()
    if found is not None:
        return found
    dest = tmp / "tokenizer"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "from tests.kube.tokenizer import make_tokenizer; make_tokenizer(Path(sys.argv[2]))"
    )
    for python in (sys.executable, str(REPO / ".venv-aiperf" / "bin" / "python")):
        done = subprocess.run([python, "-c", code, str(REPO), str(dest)], capture_output=True)
        if done.returncode == 0:
            return dest
    pytest.skip("no tokenizer available (ftctl/data/tokenizer missing, `tokenizers` absent)")


@dataclass
class KubeEnv:
    """Where the tests run: a kubeconfig, and the fake cluster when there is one."""

    kubeconfig: Path
    namespace: str
    cluster: FakeCluster | None
    server: FakeApiServer | None
    target: str = "fake"  # fake | real | external

    @property
    def main_is_pid1(self) -> bool:
        """Whether a pod's main process is PID 1 in it (the stand-in kubelet shows host pids)."""
        if self.cluster is not None:
            return self.cluster.main_is_pid1
        return self.target == "external"

    def dgd_names(self) -> list[str]:
        """Names of the DGDs in the namespace, read through the API."""
        from kubernetes import client, config

        with config.new_client_from_config(config_file=str(self.kubeconfig)) as api:
            items = client.CustomObjectsApi(api).list_namespaced_custom_object(
                "nvidia.com", "v1alpha1", self.namespace, "dynamographdeployments"
            )["items"]
        return sorted(item["metadata"]["name"] for item in items)


@pytest.fixture(scope="session")
def kube_target(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "fake")


@pytest.fixture(scope="session")
def kube_env(
    request: pytest.FixtureRequest, kube_target: str, tmp_path_factory: pytest.TempPathFactory
):
    external = request.config.getoption("--kubeconfig")
    if external:
        yield KubeEnv(Path(external), NAMESPACE, None, None, target="external")
        return
    if kube_target == "real":
        yield from _real_env(tmp_path_factory)
        return
    work = tmp_path_factory.mktemp("fakekube")
    cluster = FakeCluster(work, tokenizer_dir(work), restart_delay=0.5)
    server = FakeApiServer(cluster).start()
    kubeconfig = server.write_kubeconfig(work / "kubeconfig")
    try:
        yield KubeEnv(kubeconfig, NAMESPACE, cluster, server)
    finally:
        server.stop()


def _real_env(tmp_path_factory: pytest.TempPathFactory):
    from tests.realkube.cluster import RealCluster
    from tools.kube.controlplane import ControlPlaneError

    work = tmp_path_factory.mktemp("realkube")
    lines: list[str] = []
    cluster = RealCluster(tokenizer_dir(work), (NAMESPACE,), log=lines.append)
    try:
        cluster.start()
    except ControlPlaneError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    print("\n".join(lines))
    try:
        yield KubeEnv(cluster.kubeconfig, NAMESPACE, None, None, target="real")
    finally:
        cluster.stop()


@pytest.fixture
def host_pids(kube_env: KubeEnv):
    """Pods whose main process is not PID 1 (a shell wrapper is), so SIGKILL reaches it.

    The fake shows PID 1 by default and has a switch; the kubelet stand-in always shows host
    pids. On an external cluster the test is skipped: its containers decide.
    """
    if kube_env.target == "external":
        pytest.skip("a real cluster's containers decide who PID 1 is")
    if kube_env.cluster is None:
        yield
        return
    kube_env.cluster.main_is_pid1 = False
    try:
        yield
    finally:
        kube_env.cluster.main_is_pid1 = True


@pytest.fixture
def operator_labels(request: pytest.FixtureRequest, kube_env: KubeEnv):
    """The operator path pods are labelled by (``dcd`` | ``grove``), from the test's parameter.

    The fake operator does both; on any other target only the cluster decides, so a style
    other than its own is skipped.
    """
    style = request.param
    if kube_env.cluster is None:
        if style != "dcd" or kube_env.target == "external":
            pytest.skip(f"only the fake API server's operator labels pods {style}-style on demand")
        yield style
        return
    before, kube_env.cluster.label_style = kube_env.cluster.label_style, style
    try:
        yield style
    finally:
        kube_env.cluster.label_style = before


@pytest.fixture
def fake(kube_env: KubeEnv) -> FakeCluster:
    if kube_env.cluster is None:
        pytest.skip("needs the fake API server")
    kube_env.cluster.faults.clear()
    kube_env.cluster.exec_mode = "normal"
    return kube_env.cluster


def make_test(
    name: str = "kube-smoke",
    *,
    dp: int = 1,
    image: str | None = None,
    model: str = "tiny",
    manifest: Path | None = None,
    topology: str = "agg",
) -> TestCase:
    """A TestCase for the platform (the scenario loader is not needed here)."""
    return build_test(
        name,
        source="tests/kube",
        platform="kubernetes",
        deployment=Deployment(
            backend="vllm", topology=topology, dp=dp, model=model, image=image, manifest=manifest
        ),
    )


@pytest.fixture
def platform_factory(kube_env: KubeEnv):
    """Build KubernetesPlatforms on the test cluster; tear every one down afterwards."""
    from ftctl.platforms.kubernetes import KubernetesPlatform

    made: list[KubernetesPlatform] = []

    def build(**kwargs) -> KubernetesPlatform:
        kwargs.setdefault("namespace", kube_env.namespace)
        kwargs.setdefault("skip_service_restart", True)
        platform = KubernetesPlatform(kubeconfig=kube_env.kubeconfig, **kwargs)
        made.append(platform)
        return platform

    yield build
    for platform in made:
        try:
            platform.teardown()
        except Exception:
            pass
