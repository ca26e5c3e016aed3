"""Kubernetes client setup (kubeconfig, context, in-cluster) and API error mapping."""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftctl.errors import PlatformError, ScenarioError, UsageError
from ftctl.scenario.yamlio import Document, display_path, read_document

DEFAULT_NAMESPACE = "fault-tolerance-test"
PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")

DGD_GROUP = "nvidia.com"
DGD_VERSION = "v1alpha1"
DGD_PLURAL = "dynamographdeployments"
DGD_KIND = "DynamoGraphDeployment"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "ftctl.io/run-id"
LABEL_TEST = "ftctl.io/test"


@dataclass(frozen=True)
class KubeTarget:
    """Where the platform acts: context, cluster, API server and namespace."""

    context: str
    cluster: str
    server: str
    namespace: str
    in_cluster: bool = False
    tls_verified: bool = True

    def describe(self) -> str:
        """One line naming context, cluster and namespace (printed before mutating)."""
        line = (
            f"kubernetes: context {self.context}, cluster {self.cluster} ({self.server}), "
            f"namespace {self.namespace}"
        )
        if not self.tls_verified:
            line += " (TLS not verified: insecure-skip-tls-verify in the kubeconfig)"
        return line


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


@dataclass
class _Kubeconfig:
    """The merged kubeconfig files: each named entry with the document it came from."""

    current: tuple[str, Document] | None
    entries: dict[str, dict[str, tuple[dict[str, Any], Document, int]]]


def _config_error(doc: Document, path: list[str | int], message: str) -> UsageError:
    """One line naming the kubeconfig file, the line and the field (exit 2)."""
    return UsageError(f"kubernetes: kubeconfig {doc.error(path, message).message}")


def _read_kubeconfig(paths: list[Path]) -> _Kubeconfig:
    """Read and merge kubeconfig files as kubectl does (the first entry of a name wins, and so
    does the first current-context).

    Each file is read bounded (no FIFO blocks, no alias bomb expands) and its shape checked,
    so a broken file is one clear line (exit 2), never the client library's traceback.
    """
    merged = _Kubeconfig(None, {"clusters": {}, "contexts": {}, "users": {}})
    for path in paths:
        try:
            doc = read_document(path)
        except ScenarioError as exc:
            raise UsageError(f"kubernetes: kubeconfig {exc.message}") from None
        current = doc.data.get("current-context")
        if current is not None and not isinstance(current, str):
            raise _config_error(doc, ["current-context"], "expected a context name")
        if current and merged.current is None:
            merged.current = (current, doc)
        for kind, inner in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
            items = doc.data.get(kind)
            if items is None:
                continue
            if not isinstance(items, list):
                raise _config_error(doc, [kind], f"expected a list of {{name, {inner}}}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise _config_error(doc, [kind, i], f"expected a mapping with name and {inner}")
                if not isinstance(item.get(inner), dict | None):
                    raise _config_error(doc, [kind, i, inner], "expected a mapping")
                merged.entries[kind].setdefault(item["name"], (item, doc, i))
    return merged


def _resolve_context(kc: _Kubeconfig, context: str | None, where: str) -> dict[str, Any]:
    """The context entry to use; checks that its cluster (with a server) and user exist."""
    contexts = kc.entries["contexts"]
    names = ", ".join(sorted(contexts)) or "none"
    if context:
        if context not in contexts:
            raise UsageError(
                f"kubernetes: context {context!r} not found in {where} (have: {names})"
            )
    elif kc.current is None:
        raise UsageError(
            f"kubernetes: kubeconfig {where}: no current-context set; pass --context NAME "
            f"(have: {names})"
        )
    else:
        context, doc = kc.current
        if context not in contexts:
            raise _config_error(
                doc, ["current-context"], f"context {context!r} not found (have: {names})"
            )
    entry, doc, i = contexts[context]
    ctx = entry.get("context") or {}
    cluster = ctx.get("cluster")
    if not isinstance(cluster, str) or not cluster:
        raise _config_error(
            doc, ["contexts", i, "context"], f"context {context!r} names no cluster"
        )
    if cluster not in kc.entries["clusters"]:
        have = ", ".join(sorted(kc.entries["clusters"])) or "none"
        raise _config_error(
            doc,
            ["contexts", i, "context", "cluster"],
            f"context {context!r} names cluster {cluster!r}, which is not defined (have: {have})",
        )
    user = ctx.get("user")
    if user is not None and not isinstance(user, str):
        raise _config_error(doc, ["contexts", i, "context", "user"], "expected a user name")
    if user and user not in kc.entries["users"]:
        have = ", ".join(sorted(kc.entries["users"])) or "none"
        raise _config_error(
            doc,
            ["contexts", i, "context", "user"],
            f"context {context!r} names user {user!r}, which is not defined (have: {have})",
        )
    c_entry, c_doc, c_i = kc.entries["clusters"][cluster]
    server = (c_entry.get("cluster") or {}).get("server")
    if not isinstance(server, str) or not server.strip():
        raise _config_error(
            c_doc, ["clusters", c_i, "cluster"], f"cluster {cluster!r} has no server"
        )
    parts = urllib.parse.urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _config_error(
            c_doc,
            ["clusters", c_i, "cluster", "server"],
            f"server {server!r} of cluster {cluster!r} is not an http(s) URL",
        )
    return entry


def load_configuration(
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    in_cluster: bool | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> tuple[Any, KubeTarget]:
    """Build a client Configuration like kubectl would; return it with the target description.

    Order: an explicit ``kubeconfig``, else ``$KUBECONFIG`` (a list, merged), else
    ``~/.kube/config``; when none exists and the process runs in a pod
    (``KUBERNETES_SERVICE_HOST``), in-cluster config.

    Raises:
        PlatformError: (exit 3) no kubeconfig at all, or in-cluster config unusable.
        UsageError: (exit 2) a kubeconfig that cannot be read or is malformed, an unknown
            context, or a context whose cluster, server or user is missing.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    path = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or "~/.kube/config"
    # exists(), not is_file(): a FIFO or a folder given as the kubeconfig is reported, not skipped.
    paths = [Path(p).expanduser() for p in path.split(os.pathsep) if p]
    present = [p for p in paths if p.exists()]
    use_in_cluster = (
        in_cluster
        if in_cluster is not None
        else (not present and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
    )
    if use_in_cluster:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as exc:
            raise PlatformError(f"kubernetes: cannot load in-cluster configuration: {exc}") from exc
        return cfg, KubeTarget("in-cluster", "in-cluster", cfg.host, namespace, True)
    if not present:
        raise PlatformError(
            f"kubernetes: no kubeconfig at {path}; pass --kubeconfig FILE or set KUBECONFIG"
        )
    where = os.pathsep.join(display_path(p) for p in present)
    kc = _read_kubeconfig(present)
    chosen = _resolve_context(kc, context, where)
    try:
        config.load_kube_config(
            config_file=os.pathsep.join(str(p) for p in present),
            context=chosen["name"],
            client_configuration=cfg,
            persist_config=False,
        )
    except (config.ConfigException, ValueError, TypeError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"kubernetes: kubeconfig {where}: {reason}") from exc
    ctx = chosen.get("context") or {}
    target = KubeTarget(
        context=chosen["name"],
        cluster=ctx.get("cluster", "?"),
        server=cfg.host,
        namespace=namespace,
        tls_verified=bool(cfg.verify_ssl) or not cfg.host.startswith("https"),
    )
    if not target.tls_verified:
        # The kubeconfig chose it: said once in the target line, not by urllib3 on every
        # request (hundreds of lines a minute against a real apiserver).
        import warnings

        from urllib3.exceptions import InsecureRequestWarning

        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
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
