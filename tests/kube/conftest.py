"""Fixtures of the Kubernetes tests: the loopback fake API server, or a real cluster."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftctl.scenario.model import Deployment, Source, TestCase
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


@pytest.fixture(scope="session")
def kube_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    real = request.config.getoption("--kubeconfig")
    if real:
        yield KubeEnv(Path(real), NAMESPACE, None, None)
        return
    work = tmp_path_factory.mktemp("fakekube")
    cluster = FakeCluster(work, tokenizer_dir(work), restart_delay=0.5)
    server = FakeApiServer(cluster).start()
    kubeconfig = server.write_kubeconfig(work / "kubeconfig")
    try:
        yield KubeEnv(kubeconfig, NAMESPACE, cluster, server)
    finally:
        server.stop()


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
    return TestCase(
        name=name,
        scenario=name,
        source=Source("tests/kube"),
        description="",
        tags=(),
        platform="kubernetes",
        deployment=Deployment(
            backend="vllm", topology=topology, dp=dp, model=model, image=image, manifest=manifest
        ),
        loads=(),
        failure=None,
        events=(),
        checks=(),
        thresholds_profile=None,
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
