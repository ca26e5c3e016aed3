"""Cluster loads (``load.placement: cluster``): the Indexed Job manifest, built on a copy.

One load = one ``batch/v1`` Job in the test namespace, ``completionMode: Indexed``,
parallelism = completions = ``load.pods``. Pod ``i`` (``$JOB_COMPLETION_INDEX``) runs its share
of the load's logical clients with the built-in client (``python3 -m ftctl cluster-worker``)
against the frontend Service's cluster DNS name, not ftctl's port-forward. Used by the platform
(to create it) and by ``plan``/``--dry-run`` (to show it), so it touches no cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from ftctl import barrier
from ftctl.barrier import CONFIG_ENV, pod_clients
from ftctl.errors import UsageError
from ftctl.platforms.kube.dgd import IMAGES, build_dgd, dns_name, label_value, role_of, run_labels
from ftctl.scenario.model import LoadSpec, TestCase

JOB_API = "batch/v1"
LABEL_LOAD = "ftctl.io/load"
LABEL_COMPONENT = "ftctl.io/component"
COMPONENT = "load"  # ftctl.io/component of every Job ftctl creates (cleanup, status)
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"  # what the Job controller puts on its pods
LABEL_JOB_NAME_LEGACY = "job-name"  # the same, before Kubernetes 1.27
WORKER_ARGV = ("python3", "-m", "ftctl", "cluster-worker")
CONTAINER = "client"
FRONTEND_PORT = 8000
# How long a finished pod waits for ftctl's end-of-run clock reading before it exits anyway.
EXIT_WAIT_S = 120
MAX_CONFIG_BYTES = 100_000  # the worker config travels in one env value (limit 128 KiB)


def frontend_service(manifest: dict[str, Any]) -> str:
    """The frontend Service the operator creates: ``<dgd>-<lower(frontend service)>``."""
    dgd = manifest["metadata"]["name"]
    for name, svc in manifest["spec"]["services"].items():
        if role_of(name, svc if isinstance(svc, dict) else {}) == "frontend":
            return f"{dgd}-{name.lower()}"
    raise ValueError(f"DynamoGraphDeployment {dgd} has no frontend service")


def frontend_url(manifest: dict[str, Any], namespace: str) -> str:
    """The frontend Service's cluster DNS URL (what the Job pods send to)."""
    return f"http://{frontend_service(manifest)}.{namespace}.svc.cluster.local:{FRONTEND_PORT}"


def job_name(test_name: str, load: str, run_id: str) -> str:
    """A DNS-1123 Job name, unique per run: pod names add ``-<index>-<5 chars>`` to it."""
    token = hashlib.sha256(run_id.encode()).hexdigest()[:6]
    return f"{dns_name(f'ftctl-{load}-{test_name}', 44)}-{token}"


def load_image(test: TestCase, spec: LoadSpec, manifest: dict[str, Any]) -> str:
    """``load.image``, else the deployment's image (``--image``/``deployment.image``), else the
    frontend container's image in the DGD: an image that must have ftctl installed (README)."""
    if spec.image:
        return spec.image
    if test.deployment.image:
        return test.deployment.image
    for name, svc in manifest["spec"]["services"].items():
        if isinstance(svc, dict) and role_of(name, svc) == "frontend":
            image = ((svc.get("extraPodSpec") or {}).get("mainContainer") or {}).get("image")
            if image:
                return str(image)
    return IMAGES[test.deployment.backend]


def worker_config(spec: LoadSpec, url: str, model: str) -> dict[str, Any]:
    """What every pod of the Job reads from ``$FTCTL_LOAD_CONFIG`` (the same for all)."""
    return {
        "spec": dataclasses.asdict(spec),
        "urls": [url],
        "model": model,
        "pods": spec.pods,
        "exit_wait_s": EXIT_WAIT_S,
    }


def job_labels(run_id: str, test_name: str, load: str) -> dict[str, str]:
    """Labels of the Job and its pods: the run's (cleanup finds them) plus the load's name."""
    return {
        **run_labels(run_id, test_name),
        LABEL_COMPONENT: COMPONENT,
        LABEL_LOAD: label_value(load),
    }


def build_job(
    test: TestCase,
    spec: LoadSpec,
    run_id: str,
    namespace: str,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Indexed Job of the cluster load ``spec`` of ``test`` (``manifest``: its DGD)."""
    manifest = manifest if manifest is not None else build_dgd(test, run_id)
    name = job_name(test.name, spec.name, run_id)
    labels = job_labels(run_id, test.name, spec.name)
    config = worker_config(spec, frontend_url(manifest, namespace), test.deployment.model)
    size = len(json.dumps(config, sort_keys=True).encode())
    if size > MAX_CONFIG_BYTES:
        # One env value is at most 128 KiB (MAX_ARG_STRLEN): the container would not start.
        raise UsageError(
            f"{test.name}: load '{spec.name}' is {size} bytes as the Job pods' config, above "
            f"the {MAX_CONFIG_BYTES} an environment variable can carry; use fewer or shorter "
            "load.prompts"
        )
    # A stopped load gets the per-request timeout to finish its in-flight requests.
    grace = int(spec.timeout) + 15
    return {
        "apiVersion": JOB_API,
        "kind": "Job",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.pods,
            "parallelism": spec.pods,
            # A pod that dies is reported with its partial records and its index is not
            # retried, while the other pods go on (backoffLimit: 0 would end them all). A
            # server older than 1.28 drops this field and may retry the index: harmless, as
            # a replacement pod never passes ftctl's barrier and sends nothing.
            "backoffLimitPerIndex": 0,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": grace,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": load_image(test, spec, manifest),
                            "command": list(WORKER_ARGV),
                            "env": [
                                {"name": CONFIG_ENV, "value": json.dumps(config, sort_keys=True)},
                                {
                                    "name": barrier.DIR_ENV,
                                    "value": f"{barrier.DEFAULT_DIR}/{name}",
                                },
                                {"name": "PYTHONUNBUFFERED", "value": "1"},
                            ],
                        }
                    ],
                },
            },
        },
    }


def plan_jobs(test: TestCase, namespace: str, run_id: str = "dry-run") -> list[dict[str, Any]]:
    """Every Job ``run`` would create for ``test`` (one per cluster load); no cluster touched."""
    loads = [s for s in test.loads if s.placement == "cluster"]
    if not loads:
        return []
    manifest = build_dgd(test, run_id)
    return [build_job(test, spec, run_id, namespace, manifest) for spec in loads]


def describe_job(job: dict[str, Any]) -> str:
    """One plan line per Job: pods and the clients each runs."""
    spec = job["spec"]
    config = json.loads(spec["template"]["spec"]["containers"][0]["env"][0]["value"])
    clients, pods = config["spec"]["clients"], spec["completions"]
    shares = sorted({len(pod_clients(clients, pods, i)) for i in range(pods)})
    each = "-".join(str(n) for n in shares)
    return (
        f"# Indexed Job {job['metadata']['name']}: {pods} pod(s) x {each} client(s) "
        f"({clients} in all) -> {config['urls'][0]}"
    )


def check_cluster_loads(test: TestCase) -> None:
    """Refuse (exit 2) a cluster load that ``run`` options made unrunnable.

    ``validate`` already refused what a document asks for; ``--client-type aiperf`` and
    ``--platform local`` come later and are caught here, before anything is created.
    """
    for spec in test.loads:
        if spec.placement != "cluster":
            continue
        if spec.client != "legacy":
            raise UsageError(
                f"{test.name}: load '{spec.name}' has placement: cluster, which runs the "
                f"built-in client only, not {spec.client}; drop --client-type {spec.client}"
            )
        if test.platform != "kubernetes":
            raise UsageError(
                f"{test.name}: load '{spec.name}' has placement: cluster, which needs the "
                f"kubernetes platform, not {test.platform}"
            )
