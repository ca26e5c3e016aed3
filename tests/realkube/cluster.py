"""A real control plane with the operator and kubelet stand-ins: a cluster whose pods run here."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.realkube.kubelet import KubeletStandIn, node_name
from tests.realkube.operator import OperatorStandIn
from tools.kube.controlplane import ControlPlane


class RealCluster:
    """etcd + kube-apiserver 1.20.2 + DGD CRD, a Node backed by local processes, an operator.

    ``start()`` brings all of it up (or tears down what started and raises); ``stop()`` ends
    every pod process, then the control plane. Both are safe on every exit path; the control
    plane's children also die with this process (PR_SET_PDEATHSIG) and the Supervisor's
    atexit hook ends pod processes.
    """

    def __init__(
        self,
        tokenizer: Path,
        namespaces: tuple[str, ...] = (),
        log: Callable[[str], None] = print,
    ) -> None:
        self.tokenizer = Path(tokenizer)
        self.namespaces = namespaces
        self.log = log
        self.plane = ControlPlane(log=log)
        self.workdir = Path(tempfile.mkdtemp(prefix="ftctl-standins-"))
        self.api: Any = None
        self.kubelet: KubeletStandIn | None = None
        self.operator: OperatorStandIn | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RealCluster:
        from kubernetes import client

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # InsecureRequestWarning during setup
                self.plane.start()
                self.api = self.plane.api_client()
                core = client.CoreV1Api(self.api)
                for ns in self.namespaces:
                    core.create_namespace({"metadata": {"name": ns}})
            node = node_name()
            self.kubelet = KubeletStandIn(self.api, self.workdir / "node", self.tokenizer, node)
            self.kubelet.start()
            self.operator = OperatorStandIn(self.api, node).start()
            self.log(f"kube: operator and kubelet stand-ins running (node {node})")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        if self.api is not None:
            self.api.close()
            self.api = None
        self.plane.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
