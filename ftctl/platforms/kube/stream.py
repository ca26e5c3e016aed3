"""Pod exec and port-forward over the API server's WebSocket protocols, and the resilient endpoint."""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftctl.errors import PlatformError
from ftctl.platforms.kube.client import api_error


@dataclass
class ExecResult:
    """What an exec returned: exit code (None when the stream closed without a Status)."""

    exit_code: int | None
    stdout: str
    stderr: str
    status: dict[str, Any] | None


def _fresh_core(configuration: Any) -> tuple[Any, Any]:
    # stream() patches its ApiClient while it runs: every exec/port-forward gets its own.
    from kubernetes import client

    api_client = client.ApiClient(configuration=configuration)
    return api_client, client.CoreV1Api(api_client)


def _parse_status(raw: str) -> tuple[int | None, dict[str, Any] | None]:
    if not raw.strip():
        return None, None
    try:
        status = json.loads(raw)
    except ValueError:
        return None, {"raw": raw[:300]}
    if not isinstance(status, dict):
        return None, {"raw": raw[:300]}
    if status.get("status") == "Success":
        return 0, status
    causes = (status.get("details") or {}).get("causes") or []
    for cause in causes:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message")), status
            except (TypeError, ValueError):
                break
    return None, status


def pod_exec(
    configuration: Any,
    namespace: str,
    pod: str,
    argv: list[str],
    container: str = "main",
    timeout: float = 30.0,
) -> ExecResult:
    """Run ``argv`` (never a shell string) in a pod's container; PlatformError on failure.

    A non-zero exit is returned, not raised; a session cut without a Status (the container died
    under it) returns exit_code None.
    """
    from kubernetes.stream import stream

    api_client, core = _fresh_core(configuration)
    action = f"exec {argv[0]!r} in pod {namespace}/{pod}"
    try:
        try:
            ws = stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=argv,
                container=container,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
        except Exception as exc:  # the client wraps every handshake failure as ApiException(0)
            raise api_error(exc, action) from exc
        out: list[str] = []
        err: list[str] = []
        raw_status = ""
        deadline = time.monotonic() + timeout
        try:
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                out.append(ws.read_stdout(timeout=0) or "")
                err.append(ws.read_stderr(timeout=0) or "")
                raw_status += ws.read_channel(3, timeout=0) or ""
            out.append(ws.read_stdout(timeout=0) or "")
            err.append(ws.read_stderr(timeout=0) or "")
            raw_status += ws.read_channel(3, timeout=0) or ""
            timed_out = ws.is_open()
        except Exception as exc:  # a connection reset mid-stream: keep what arrived
            timed_out = False
            err.append(f"\n[stream error: {exc}]")
        finally:
            ws.close()
        if timed_out:
            raise PlatformError(f"{action}: no result within {timeout:.0f}s")
        code, status = _parse_status(raw_status)
        if status is not None and code is None and status.get("status") == "Failure":
            raise PlatformError(f"{action}: {status.get('message') or status.get('reason')}")
        return ExecResult(code, "".join(out), "".join(err), status)
    finally:
        api_client.close()


def open_port_forward(configuration: Any, namespace: str, pod: str, port: int) -> tuple[Any, Any]:
    """One port-forward (one TCP stream) to ``pod:port``; returns (PortForward, ApiClient)."""
    from kubernetes.stream import portforward

    api_client, core = _fresh_core(configuration)
    try:
        pf = portforward(
            core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
        )
    except Exception as exc:
        api_client.close()
        raise api_error(exc, f"port-forward to pod {namespace}/{pod}:{port}") from exc
    return pf, api_client


def http_get_via_forward(
    configuration: Any, namespace: str, pod: str, port: int, path: str, timeout: float = 5.0
) -> str:
    """GET ``path`` from ``pod:port`` through a port-forward (for /metrics scrapes)."""
    pf, api_client = open_port_forward(configuration, namespace, pod, port)
    sock = pf.socket(port)
    try:
        sock.settimeout(timeout)
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except OSError as exc:
        raise PlatformError(f"GET {path} on pod {namespace}/{pod}:{port}: {exc}") from exc
    finally:
        sock.close()
        pf.close()
        api_client.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = _dechunk(body)
    return body.decode("utf-8", "replace")


def _dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


class ResilientEndpoint:
    """A 127.0.0.1 listener; each accepted connection goes to a ready frontend pod.

    The pod is re-resolved per connection (round robin over ready pods) and every connection
    rides its own ``portforward()`` call, so clients survive frontend pod deletion and restarts
    (upstream cached one forward and kept using a dead tunnel, REFERENCE §9.5).
    """

    def __init__(
        self,
        configuration: Any,
        namespace: str,
        ready_pods: Callable[[], list[str]],
        port: int = 8000,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.configuration = configuration
        self.namespace = namespace
        self.ready_pods = ready_pods
        self.port = port
        self.log = log or (lambda _line: None)
        self.failures: list[dict[str, Any]] = []  # {t_ns, pod, reason} per failed connection
        self._logged: set[str] = set()  # pods whose failure was logged (once each)
        self._failing_since: float | None = None  # monotonic; None after a forward opened
        self._last_cause = ""
        self._counter = itertools.count()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0  # accepted
        self.forward_failures = 0  # connections closed because no forward could be opened
        self.pods_used: dict[str, int] = {}

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the listener."""
        assert self._listener is not None, "endpoint not started"
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> str:
        """Bind and start accepting; returns the URL."""
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            listener.settimeout(0.5)
            self._listener = listener
            threading.Thread(target=self._accept_loop, name="kube-endpoint", daemon=True).start()
        return self.url

    def close(self) -> None:
        """Stop accepting and cut every open connection. Idempotent."""
        self._closed.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.close()
            except OSError:
                pass

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _pick(self) -> tuple[str | None, str]:
        """(pod, "") or (None, why no pod) for the next connection."""
        try:
            pods = sorted(self.ready_pods())
        except Exception as exc:  # API hiccup: this connection fails, the next one re-resolves
            return None, f"listing the ready frontend pods failed: {exc}"
        if not pods:
            return None, "no ready frontend pod"
        return pods[next(self._counter) % len(pods)], ""

    def _failed(self, pod: str | None, reason: str) -> None:
        """Record a connection that could not be forwarded; log it once per pod."""
        with self._lock:
            self.forward_failures += 1
            self.failures.append({"t_ns": time.time_ns(), "pod": pod, "reason": reason})
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            self._last_cause = reason
            key = pod or ""
            first = key not in self._logged
            self._logged.add(key)
        if first:
            where = f"pod {pod}" if pod else "any frontend pod"
            self.log(f"kubernetes: endpoint: cannot forward a connection to {where}: {reason}")

    def outage(self) -> tuple[float, str] | None:
        """(seconds, last cause) since connections began failing with none forwarded; None if not."""
        with self._lock:
            if self._failing_since is None:
                return None
            return time.monotonic() - self._failing_since, self._last_cause

    def _serve(self, conn: socket.socket) -> None:
        pf = api_client = remote = None
        try:
            pod, why = self._pick()
            if pod is None:
                self._failed(None, why)
                return
            try:
                pf, api_client = open_port_forward(
                    self.configuration, self.namespace, pod, self.port
                )
                remote = pf.socket(self.port)
            except Exception as exc:  # PlatformError, or the stream's own error
                self._failed(pod, str(exc))
                return
            with self._lock:
                self._failing_since = None
            self.pods_used[pod] = self.pods_used.get(pod, 0) + 1
            _pipe(conn, remote, self._closed)
        finally:
            for s in (conn, remote):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            if pf is not None:
                pf.close()
            if api_client is not None:
                api_client.close()
            with self._lock:
                self._conns.discard(conn)


def _pipe(a: Any, b: Any, closed: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    peers = {a: b, b: a}
    while not closed.is_set():
        try:
            readable, _, _ = select.select([a, b], [], [], 0.5)
        except (OSError, ValueError):
            return
        for src in readable:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                peers[src].sendall(data)
            except OSError:
                return
