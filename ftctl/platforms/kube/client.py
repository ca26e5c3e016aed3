"""Kubernetes client setup (kubeconfig, context, in-cluster) and API error mapping."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftctl.errors import PlatformError, UsageError

DEFAULT_NAMESPACE = "fault-tolerance-test"
PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")

DGD_GROUP = "nvidia.com"
DGD_VERSION = "v1alpha1"
DGD_PLURAL = "dynamographdeployments"
DGD_KIND = "DynamoGraphDeployment"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "ftctl.io/run-id"
LABEL_TEST = "ftctl.io/test"
LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_COMPONENT_TYPE = "nvidia.com/dynamo-component-type"


@dataclass(frozen=True)
class KubeTarget:
    """Where the platform acts: context, cluster, API server and namespace."""

    context: str
    cluster: str
    server: str
    namespace: str
    in_cluster: bool = False

    def describe(self) -> str:
        """One line naming context, cluster and namespace (printed before mutating)."""
        return (
            f"kubernetes: context {self.context}, cluster {self.cluster} ({self.server}), "
            f"namespace {self.namespace}"
        )


# A namespace is a DNS-1123 label (what the API server itself enforces).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_RULE = (
    "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending "
    "with a letter or digit"
)


def normalise_namespace(name: str) -> str:
    """The form namespaces are compared in: surrounding whitespace stripped, case folded."""
    return name.strip().casefold()


def is_protected(namespace: str) -> bool:
    """Whether ``namespace`` (in any spelling) is a system or shared namespace."""
    return normalise_namespace(namespace) in PROTECTED_NAMESPACES


def check_namespace(
    namespace: str,
    allow: tuple[str, ...] | list[str] = (),
    *,
    option: str = "--namespace",
) -> str:
    """Refuse system namespaces and ``default`` unless allowed, and names Kubernetes rejects.

    Protection compares normalised names (:func:`normalise_namespace`), so ``'kube-system '``
    and ``KUBE-SYSTEM`` are refused like ``kube-system``; ``allow`` is normalised the same way.
    What passes must then be a valid namespace as written: nothing is silently rewritten.

    Args:
        namespace: the namespace as the user gave it.
        allow: namespaces the user permitted with ``--allow-namespace``.
        option: the option the namespace came from, named in the message.

    Returns:
        ``namespace``, unchanged.

    Raises:
        UsageError: (exit 2) a protected namespace not allowed, or an invalid name.
    """
    key = normalise_namespace(namespace)
    if not key:
        raise UsageError(f"kubernetes: {option}: empty namespace; pass {option} NS")
    allowed = {normalise_namespace(a) for a in allow}
    if key in PROTECTED_NAMESPACES and key not in allowed:
        raise UsageError(
            f"kubernetes: refusing to use namespace {namespace!r} given by {option}: {key} is "
            f"a system or shared namespace; pass --allow-namespace {key} if you really mean it"
        )
    if not _DNS1123_LABEL.fullmatch(namespace):
        hint = f" (did you mean {key!r}?)" if _DNS1123_LABEL.fullmatch(key) else ""
        raise UsageError(
            f"kubernetes: {option}: {namespace!r} is not a valid namespace{hint}; "
            f"a namespace is {_LABEL_RULE}"
        )
    return namespace


def load_configuration(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    in_cluster: bool | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> tuple[Any, KubeTarget]:
    """Build a client Configuration like kubectl would; return it with the target description.

    Order: an explicit ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``; when none
    exists and the process runs in a pod (``KUBERNETES_SERVICE_HOST``), in-cluster config.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or "~/.kube/config"
    have_file = any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p)
    use_in_cluster = (
        in_cluster
        if in_cluster is not None
        else (not have_file and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
    )
    try:
        if use_in_cluster:
            config.load_incluster_config(client_configuration=cfg)
            target = KubeTarget("in-cluster", "in-cluster", cfg.host, namespace, True)
            return cfg, target
        if not have_file:
            raise PlatformError(
                f"kubernetes: no kubeconfig at {path}; pass --kubeconfig FILE or set KUBECONFIG"
            )
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = current
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                names = ", ".join(sorted(c.get("name", "?") for c in contexts)) or "none"
                raise UsageError(
                    f"kubernetes: context {context!r} not found in {path} (have: {names})"
                )
        config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
    except config.ConfigException as exc:
        raise PlatformError(f"kubernetes: cannot load configuration from {path}: {exc}") from exc
    ctx = (chosen or {}).get("context", {}) or {}
    target = KubeTarget(
        context=(chosen or {}).get("name", "?"),
        cluster=ctx.get("cluster", "?"),
        server=cfg.host,
        namespace=namespace,
    )
    return cfg, target


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text.strip().splitlines()[0][:300] if text.strip() else ""
    return str(getattr(exc, "reason", "") or exc).strip()


_HINTS = {
    401: "unauthorized: check the credentials of the kubeconfig context",
    403: "forbidden: the account lacks RBAC permission",
    404: "not found",
    409: "conflict: the object exists or was changed concurrently",
    410: "expired: the resourceVersion is too old (relist needed)",
    422: "invalid object",
    429: "throttled by the API server",
}


def api_error(exc: BaseException, action: str) -> PlatformError:
    """Turn an API/transport exception into one clear PlatformError line (exit 3)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = _status_message(exc)
        if status == 0:
            text = f"{action}: WebSocket handshake with the API server failed: {message}"
        elif status in _HINTS:
            text = f"{action}: {_HINTS[status]} (HTTP {status}): {message}"
        elif status >= 500:
            text = f"{action}: API server error (HTTP {status}): {message}"
        else:
            text = f"{action}: HTTP {status}: {message}"
        err = PlatformError(text)
        err.status = status  # type: ignore[attr-defined]
        return err
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    err = PlatformError(f"{action}: cannot reach the API server: {reason}")
    err.status = 0  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def api_call(action: str) -> Iterator[None]:
    """Run API calls; map any client/transport exception to PlatformError naming ``action``."""
    import urllib3
    from kubernetes.client.exceptions import ApiException, ApiValueError

    try:
        yield
    except PlatformError:
        raise
    except (ApiException, ApiValueError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise api_error(exc, action) from exc


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (ApiException or a mapped PlatformError)."""
    return getattr(exc, "status", None)
