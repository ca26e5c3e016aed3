"""Fixtures of the real-apiserver tests: etcd + kube-apiserver 1.20.2 with the real DGD CRD.

The binaries come from tools/kube/build.py's cache (``make kube-build``; ``make test`` builds or
reuses them first). Without them the tests that need the control plane fail with one line
saying how to build them: they are never skipped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realkube.cluster import RealCluster
from tools.kube.controlplane import ControlPlane, ControlPlaneError

NAMESPACE = "ftctl-real"
HERE = str(Path(__file__).parent)
# The kubeconfig skips TLS verification of the loopback apiserver's self-signed certificate;
# urllib3 would warn on every request. Silenced for these tests only.
QUIET_TLS = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything here is the real-apiserver path (its tooling too): `-m real_apiserver` runs
    # it all, with the real-target tests of tests/kube.
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(QUIET_TLS)
            item.add_marker(pytest.mark.real_apiserver)


@dataclass
class RealKube:
    """A started control plane and clients on it."""

    plane: ControlPlane
    api: object  # kubernetes.client.ApiClient
    custom: object  # kubernetes.client.CustomObjectsApi
    core: object  # kubernetes.client.CoreV1Api
    namespace: str

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig


@pytest.fixture(scope="session")
def real_kube() -> Iterator[RealKube]:
    from kubernetes import client

    lines: list[str] = []
    plane = ControlPlane(log=lines.append)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # InsecureRequestWarning during setup
            plane.start()
    except ControlPlaneError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    try:
        with plane.api_client() as api:
            core = client.CoreV1Api(api)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                core.create_namespace({"metadata": {"name": NAMESPACE}})
            print("\n".join(lines))
            yield RealKube(plane, api, client.CustomObjectsApi(api), core, NAMESPACE)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """The control plane with the operator and kubelet stand-ins; everything ends afterwards."""
    from tests.kube.conftest import tokenizer_dir

    lines: list[str] = []
    cluster = RealCluster(tokenizer_dir(tmp_path_factory.mktemp("tok")), (NAMESPACE,), lines.append)
    try:
        cluster.start()
    except ControlPlaneError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    try:
        print("\n".join(lines))
        yield cluster
    finally:
        cluster.stop()
