"""The ``local`` platform: a real Dynamo graph (frontend + mocker workers) as supervised processes."""

from __future__ import annotations

import atexit
import contextlib
import functools
import http.client
import json
import os
import random
import re
import shutil
import signal as signals
import socket
import sys
import tempfile
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ftctl.errors import PlatformError
from ftctl.layout import METRICS_LOG_SUFFIX, POD_EVENTS_SUFFIX, POD_YAML_SUFFIX
from ftctl.platforms.base import (
    STOPPED_STATES,
    CommandResult,
    FaultRecord,
    Pod,
    ScrapeTarget,
    judge_partition,
    judge_reset,
    judge_stall,
    select_ranks,
)
from ftctl.platforms.proxy import TcpProxy
from ftctl.platforms.supervisor import ProcessSpec, Replica, Supervisor, proc_cmdline
from ftctl.scenario.model import Deployment, Service, TestCase

TOKENIZER_DIR = Path(__file__).resolve().parent.parent / "data" / "tokenizer"

# Service names per backend when the scenario did not resolve any (REFERENCE.md §1).
_DEFAULT_WORKERS = {
    ("vllm", "agg"): [("VllmDecodeWorker", "decode")],
    ("vllm", "disagg"): [("VllmDecodeWorker", "decode"), ("VllmPrefillWorker", "prefill")],
    ("sglang", "agg"): [("decode", "decode")],
    ("sglang", "disagg"): [("decode", "decode"), ("prefill", "prefill")],
    ("trtllm", "agg"): [("TRTLLMWorker", "decode")],
    ("trtllm", "disagg"): [("TRTLLMDecodeWorker", "decode"), ("TRTLLMPrefillWorker", "prefill")],
}

_PORT_RANGE = (20000, 32767)
_CRASH_LOOP_RESTARTS = 3  # restarts before readiness that mean the graph cannot start
_POLL_S = 0.1
_HTTP_TIMEOUT_S = 2.0
_LOG_TAIL_LINES = 30
_TIMESTAMP = re.compile(r"^\s*(?:\x1b\[[0-9;]*m)*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


def default_services(deployment: Deployment) -> tuple[Service, ...]:
    """The services of a graph whose scenario named none: a frontend plus the backend's workers."""
    workers = _DEFAULT_WORKERS[(deployment.backend, deployment.topology)]
    return (Service("Frontend", "frontend", deployment.dp),) + tuple(
        Service(name, role, deployment.dp) for name, role in workers
    )


def _free_port() -> int:
    """A free loopback port below 32768.

    Dynamo reads DYN_SYSTEM_PORT as an i16, and the kernel hands out ephemeral ports from
    32768 up, so ports picked here cannot collide with the graph's own outgoing sockets.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(_PORT_RANGE[0], _PORT_RANGE[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise PlatformError("local platform: no free loopback port in 20000-32767")


def _http_get(port: int, path: str, timeout: float = _HTTP_TIMEOUT_S) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _fetch_metrics(port: int, timeout: float) -> bytes:
    status, body = _http_get(port, "/metrics", timeout=timeout)
    if status != 200:
        raise OSError(f"/metrics answered {status}")
    return body


def _get_json(port: int, path: str) -> dict | None:
    try:
        status, body = _http_get(port, path)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` from ``/proc/<pid>/stat`` (``R``, ``S``, ``T`` …), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :][:1].decode() or None


def _wait_states(pids: list[int], stopped: bool, timeout: float) -> dict[str, str | None]:
    """Poll until every pid is (or, ``stopped=False``, is no longer) in state T; the states seen."""
    deadline = time.monotonic() + timeout
    while True:
        states = {str(pid): proc_state(pid) for pid in pids}
        done = all(((s or "")[:1] in STOPPED_STATES) == stopped for s in states.values())
        if done or time.monotonic() >= deadline:
            return states
        time.sleep(0.01)


def _hex_address(address: str) -> str:
    """``127.0.0.1:8000`` as /proc/net/tcp writes it (``0100007F:1F40``)."""
    host, _, port = address.rpartition(":")
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{int(port):04X}"


def established(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (local, remote) pairs still in state ESTABLISHED in /proc/net/tcp."""
    wanted = {(_hex_address(a), _hex_address(b)): (a, b) for a, b in pairs}
    found = []
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) > 3 and parts[3] == "01" and (parts[1], parts[2]) in wanted:
            found.append(wanted[(parts[1], parts[2])])
    return found


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _parse_signal(name: str) -> signals.Signals:
    text = name.strip().upper()
    if text.isdigit():
        return signals.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signals.Signals[text]
    except KeyError:
        raise PlatformError(f"unknown signal {name!r}") from None


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LocalPlatform:
    """A Dynamo graph on this machine: ``dynamo.frontend`` + ``dynamo.mocker`` replicas.

    Every replica is a supervised "pod" (restarted when its main process dies); the endpoint is
    a loopback proxy over the ready frontends. Readiness is judged the way a client sees it:
    a frontend is ready when ``/v1/models`` lists the model, a worker when its instance id is
    listed by a frontend's ``/health``.
    """

    name = "local"
    tokenizer_path = TOKENIZER_DIR  # what aiperf needs offline (LoadTarget.tokenizer)

    def __init__(self, *, python: str = sys.executable, base_port: int | None = None) -> None:
        self.python = python
        self.base_port = base_port
        self.run_id = uuid.uuid4().hex[:12]  # FTCTL_RUN_ID in every process's environment
        self.supervisor: Supervisor | None = None
        self.test: TestCase | None = None
        self.model = ""
        self.services: tuple[Service, ...] = ()
        self._state_dir: Path | None = None
        self._run_dir: Path | None = None
        self._final_logs: Path | None = None
        self._proxy: TcpProxy | None = None
        self._next_port = base_port
        self._ports: dict[str, dict[str, int]] = {}  # replica name -> {"http"|"system": port}
        self._worker_ids: dict[int, str] = {}  # pid -> worker id (hex) from its /metrics
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stopped: set[int] = set()  # pids ftctl sent SIGSTOP and has not continued yet
        # partition: services whose workers' request plane runs through a relay ftctl owns,
        # and the relays, by the worker's fixed request-plane port (DYN_TCP_RPC_PORT)
        self._relayed: set[str] = set()
        self._relays: dict[int, TcpProxy] = {}
        self.discovery_rewrites = 0  # worker records pointed at their relay
        self._torn_down = False
        self.deploy_start_ns: int | None = None
        self.ready_ns: int | None = None

    # -- deploy ---------------------------------------------------------------------------------
    def _port(self) -> int:
        if self._next_port is None:
            return _free_port()
        port = self._next_port
        self._next_port += 1
        return port

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        assert self._state_dir is not None
        # Inherit the user's environment minus Dynamo/HF settings that would point elsewhere.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DYN_", "HF_", "TRANSFORMERS_", "FTCTL_", "VIRTUAL_ENV"))
        }
        package_root = str(Path(__file__).resolve().parent.parent.parent)
        env.update(
            {
                "DYN_DISCOVERY_BACKEND": "file",
                "DYN_FILE_KV": str(self._state_dir / "kv"),
                "DYN_REQUEST_PLANE": "tcp",
                "DYN_EVENT_PLANE": "zmq",
                "DYN_TCP_RPC_HOST": "127.0.0.1",
                "DYN_EVENT_PLANE_HOST": "127.0.0.1",
                "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1",
                "DYN_SYSTEM_HOST": "127.0.0.1",
                "HOME": str(self._state_dir / "home"),
                "HF_HUB_OFFLINE": "1",  # nothing is ever downloaded at run time
                "NO_COLOR": "1",
                "DYN_SDK_DISABLE_ANSI_LOGGING": "1",  # plain log lines: regexes and timestamps
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p
                ),
                "FTCTL_RUN_ID": self.run_id,
                "FTCTL_SUPERVISOR_PID": str(os.getpid()),
            }
        )
        env.update(extra)
        return env

    def _spec(self, deployment: Deployment, service: Service) -> tuple[ProcessSpec, dict]:
        overrides = dict(deployment.overrides).get(service.name)
        extra_args = list(overrides.args) if overrides else []
        extra_env = dict(overrides.env) if overrides else {}
        launcher = [self.python, "-m", "ftctl.platforms.local_launch"]
        opts = deployment.local
        if service.role == "frontend" and opts.kserve_grpc:
            # KServe mode serves gRPC on --http-port (Dynamo 1.6.1 binds it on 0.0.0.0 whatever
            # --http-host says) and /health, /v1/models, /metrics on --grpc-metrics-port.
            grpc_port, port = self._port(), self._port()
            args = ["--http-host", "127.0.0.1", "--http-port", str(grpc_port)]
            args += ["--kserve-grpc-server", "--grpc-metrics-port", str(port)]
            if opts.migration_limit:
                args += ["--migration-limit", str(opts.migration_limit)]
            if opts.router_mode:
                args += ["--router-mode", opts.router_mode]
            argv = [*launcher, "dynamo.frontend", "--", *args, *extra_args]
            return ProcessSpec(argv, self._env(extra_env)), {"http": port, "grpc": grpc_port}
        if service.role == "frontend":
            port = self._port()
            args = ["--http-host", "127.0.0.1", "--http-port", str(port)]
            if opts.migration_limit:
                args += ["--migration-limit", str(opts.migration_limit)]
            if opts.router_mode:
                args += ["--router-mode", opts.router_mode]
            argv = [*launcher, "dynamo.frontend", "--", *args, *extra_args]
            return ProcessSpec(argv, self._env(extra_env)), {"http": port}
        port = self._port()
        mode = "agg" if deployment.topology == "agg" else service.role
        args = [
            "--model-path",
            str(TOKENIZER_DIR),
            "--model-name",
            deployment.model,
            "--engine-type",
            deployment.backend,
            "--disaggregation-mode",
            mode,
            "--speedup-ratio",
            str(opts.speedup_ratio),
        ]
        if deployment.max_model_len:
            args += ["--max-model-len", str(deployment.max_model_len)]
        # The label is what `ps` shows in a real pod: dynamo.vllm, dynamo.sglang, dynamo.trtllm.
        argv = [*launcher, f"dynamo.{deployment.backend}", "--", *args, *extra_args]
        relay = self._kserve_relay_env(deployment) if opts.kserve_grpc else {}
        ports = {"system": port}
        if service.name in self._relayed:  # a fixed port, the same after every restart
            ports["rpc"] = self._port()
            relay = {**relay, "DYN_TCP_RPC_PORT": str(ports["rpc"])}
        env = self._env({"DYN_SYSTEM_PORT": str(port), **relay, **extra_env})
        return ProcessSpec(argv, env), ports

    def _kserve_relay_env(self, deployment: Deployment) -> dict[str, str]:
        """Environment of a KServe graph's worker: the mocker plus its max_tokens relay."""
        if deployment.topology != "agg":
            raise PlatformError(
                "local platform: deployment.local.kserve_grpc supports topology agg only"
            )
        loads = self.test.loads if self.test is not None else ()
        osl = max((int(ld.output_tokens.mean) for ld in loads), default=16)
        return {
            "FTCTL_KSERVE_MODEL": deployment.model,
            "FTCTL_KSERVE_MODEL_PATH": str(TOKENIZER_DIR),
            "FTCTL_KSERVE_MAX_TOKENS": str(max(1, osl)),
        }

    def deploy(self, test: TestCase, run_dir: Path) -> None:
        """Start every replica of ``test.deployment``; returns at once (see ``wait_ready``)."""
        if self.supervisor is not None:
            raise PlatformError("local platform: already deployed; call teardown() first")
        if not (TOKENIZER_DIR / "tokenizer.json").is_file():
            raise PlatformError(
                f"local platform: tokenizer folder {TOKENIZER_DIR} is missing; "
                "run `python tools/make_tokenizer.py`"
            )
        self.deploy_start_ns = time.time_ns()
        self.ready_ns = None
        self._ports.clear()
        self._relayed = {s for e in test.events if e.kind == "partition" for s in e.services}
        self._relays = {}
        self.discovery_rewrites = 0
        self._worker_ids.clear()  # keyed by pid: pids are reused between deployments
        self._next_port = self.base_port
        self._torn_down = False
        self.test = test
        deployment = test.deployment
        self.model = deployment.model
        self.services = deployment.services or default_services(deployment)
        self._run_dir = Path(run_dir)
        self._state_dir = Path(tempfile.mkdtemp(prefix=f"ftctl-local-{self.run_id}-"))
        for sub in ("kv", "home", "logs"):
            (self._state_dir / sub).mkdir()
        self.supervisor = Supervisor(
            self._state_dir / "logs", restart_delay=deployment.local.restart_delay
        )
        overrides = dict(deployment.overrides)
        try:
            # Workers first: the frontend then finds them at its first discovery pass.
            for service in sorted(self.services, key=lambda s: s.role == "frontend"):
                ov = overrides.get(service.name)
                replicas = ov.replicas if ov and ov.replicas is not None else service.replicas
                for index in range(replicas):
                    spec, ports = self._spec(deployment, service)
                    if "rpc" in ports:
                        self._start_relay(ports["rpc"])
                    replica = self.supervisor.start_replica(service.name, service.role, spec, index)
                    self._ports[replica.name] = ports
        except OSError as exc:
            self.teardown()
            raise PlatformError(f"local platform: cannot start {self.python}: {exc}") from exc
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="ftctl-readiness", daemon=True)
        self._poller.start()
        # Backstop for exits that skip the runner's cleanup (the supervisor's own atexit hook
        # ends the processes; this also removes the temp dir and keeps the logs).
        ref = weakref.ref(self)
        atexit.register(lambda: (p := ref()) is not None and p.teardown())

    # -- readiness ------------------------------------------------------------------------------
    def _sup(self) -> Supervisor:
        if self.supervisor is None:
            raise PlatformError("local platform: nothing deployed")
        return self.supervisor

    def _replica_ports(self, replica: Replica) -> dict[str, int]:
        # A replacement has a new name but the same spec, hence the same ports.
        ports = self._ports.get(replica.name)
        if ports is None:
            for old in self._sup().all_replicas():
                if old.spec is replica.spec and old.name in self._ports:
                    ports = self._ports[replica.name] = dict(self._ports[old.name])
                    break
        return ports or {}

    def _frontends(self, ready_only: bool) -> list[Replica]:
        return [
            r
            for r in self._sup().replicas()
            if r.role == "frontend" and r.running and (r.ready or not ready_only)
        ]

    def _health_instances(self) -> set[str] | None:
        """Worker instance ids (hex) in ``/health`` of any serving frontend; None if none answers."""
        if self._kserve():
            return self._engine_instances()
        for fe in self._frontends(ready_only=False):
            port = self._replica_ports(fe).get("http")
            data = _get_json(port, "/health") if port else None
            if data is None:
                continue
            return {
                format(int(inst["instance_id"]), "x")
                for inst in data.get("instances", [])
                if inst.get("endpoint") == "generate" and "instance_id" in inst
            }
        return None

    def _engine_instances(self) -> set[str] | None:
        """KServe mode: engine instance ids (hex) registered in the file discovery store.

        The KServe frontend's ``/health`` lists no instances, so the store the graph discovers
        itself through is read instead; None while no frontend serves (as for ``/health``).
        """
        from urllib.parse import unquote

        from ftctl.platforms.kserve_relay import ENGINE_ENDPOINT

        if not self._frontends(ready_only=True) or self._state_dir is None:
            return None
        prefix = ENGINE_ENDPOINT.removeprefix("dyn://").replace(".", "/") + "/"
        try:
            names = os.listdir(self._state_dir / "kv" / "v1" / "instances")
        except OSError:
            return set()
        out = set()
        for name in names:
            key = unquote(name)
            if key.startswith(prefix):
                with contextlib.suppress(ValueError):
                    out.add(format(int(key[len(prefix) :], 16), "x"))
        return out

    def stale_instances(self) -> set[str] | None:
        """Worker instance ids a frontend still lists but no live replica owns (dead ones).

        Dynamo keeps a killed worker listed for a while and routes to it (503s without
        migration); tests wait for this to empty before judging the next fault.
        """
        listed = self._health_instances()
        if listed is None:
            return None
        live = {self._worker_id(r) for r in self._sup().replicas() if r.role != "frontend"}
        return listed - live

    def _worker_id(self, replica: Replica) -> str | None:
        pid = replica.pid
        if pid is None:
            return None
        if pid in self._worker_ids:
            return self._worker_ids[pid]
        port = self._replica_ports(replica).get("system")
        try:
            status, body = _http_get(port, "/metrics") if port else (0, b"")
        except (OSError, http.client.HTTPException):
            return None
        match = re.search(rb'worker_id="([0-9a-f]+)"', body) if status == 200 else None
        if match is None:
            return None
        wid = match.group(1).decode().lstrip("0") or "0"
        self._worker_ids[pid] = wid
        return wid

    def _check_frontend(self, replica: Replica) -> bool:
        port = self._replica_ports(replica).get("http")
        data = _get_json(port, "/v1/models") if port else None
        return bool(data) and any(m.get("id") == self.model for m in data.get("data", []))

    def _start_relay(self, rpc_port: int) -> None:
        relay = TcpProxy(
            lambda: [("127.0.0.1", rpc_port)], port=self._port() if self.base_port else 0
        )
        relay.start()
        self._relays[rpc_port] = relay

    def _rewrite_discovery(self) -> None:
        """Point every worker record at its relay: the frontend then connects through it.

        The file discovery store holds each worker's request-plane address
        (``"tcp":"127.0.0.1:<port>/..."``); the worker only refreshes the file's time after
        writing it, and the frontend follows a changed record, so rewriting the address (an
        atomic replace) routes its real request-plane connections through ftctl's relay.
        """
        if not self._relays or self._state_dir is None:
            return
        folder = self._state_dir / "kv" / "v1" / "instances"
        try:
            names = os.listdir(folder)
        except OSError:
            return
        for name in names:
            path = folder / name
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            new = text
            for rpc_port, relay in self._relays.items():
                if relay.address is not None:
                    new = new.replace(f"127.0.0.1:{rpc_port}/", f"127.0.0.1:{relay.address[1]}/")
            if new != text:
                tmp = self._state_dir / f"relay-{name}"  # written outside the watched folder
                tmp.write_text(new)
                os.replace(tmp, path)
                self.discovery_rewrites += 1

    def _poll_once(self) -> None:
        sup = self.supervisor
        if sup is None:
            return
        self._rewrite_discovery()
        health: set[str] | None = None
        for r in sup.replicas():
            if not r.running or r.ready:
                continue
            if r.role == "frontend":
                if self._check_frontend(r):
                    r.mark_ready()
                continue
            wid = self._worker_id(r)
            if wid is None:
                continue
            if health is None:
                health = self._health_instances()
                if health is None:
                    return  # no frontend answers: workers cannot be judged yet
            if wid in health:
                r.mark_ready()

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self._poll_once()
            except Exception:  # a probe hiccup must not end readiness tracking
                continue

    def _expected(self) -> dict[str, int]:
        overrides = dict(self.test.deployment.overrides) if self.test else {}
        out = {}
        for s in self.services:
            ov = overrides.get(s.name)
            out[s.name] = ov.replicas if ov and ov.replicas is not None else s.replicas
        return out

    def _not_ready(self) -> list[Replica]:
        sup = self._sup()
        missing: list[Replica] = []
        for service, count in self._expected().items():
            live = sup.replicas(service)
            missing += [r for r in live if not r.ready]
            if len(live) < count:
                raise PlatformError(f"local platform: service {service} has {len(live)}/{count}")
        return missing

    def _wait_all_ready(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        # Restarts counted from now: earlier faults of the run do not make a crash loop.
        base = {r.name: r.restart_count for r in self._sup().replicas()}
        while True:
            missing = self._not_ready()
            if not missing:
                return
            looping = [
                r for r in missing if r.restart_count - base.get(r.name, 0) >= _CRASH_LOOP_RESTARTS
            ]
            if looping or time.monotonic() >= deadline:
                r = (looping or missing)[0]
                raise PlatformError(
                    f"local platform: {what}: {r.name} not ready "
                    f"({'crash loop' if looping else f'after {timeout:.0f}s'}, "
                    f"restarts {r.restart_count}); last log lines:\n"
                    f"{_tail(r.previous_log_path if looping else r.log_path)}"
                )
            time.sleep(_POLL_S)

    def wait_ready(self, timeout: float) -> None:
        """Block until every replica serves and one completion succeeds through ``endpoint()``."""
        deadline = time.monotonic() + timeout
        self._wait_all_ready(timeout, "deployment not ready")
        self.endpoint()
        while True:
            error = self._try_completion()
            if error is None:
                break
            if time.monotonic() >= deadline:
                raise PlatformError(f"local platform: first completion failed: {error}")
            time.sleep(_POLL_S)
        if self.ready_ns is None:
            self.ready_ns = time.time_ns()

    def _kserve(self) -> bool:
        return self.test is not None and self.test.deployment.local.kserve_grpc

    def _try_completion(self) -> str | None:
        assert self._proxy is not None and self._proxy.address is not None
        if self._kserve():
            from ftctl.kserve.wire import probe_infer

            return probe_infer("{}:{}".format(*self._proxy.address), self.model)
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": "ready check"}],
                "max_tokens": 2,
                "stream": False,
            }
        )
        conn = http.client.HTTPConnection(*self._proxy.address, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                return f"HTTP {resp.status}: {data[:200]!r}"
            choices = json.loads(data).get("choices") or []
            return None if choices else f"no choices in {data[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def wait_for_recovery(self, timeout: float) -> None:
        """Block until every expected replica is ready again."""
        self._wait_all_ready(timeout, "not recovered")

    # -- endpoint -------------------------------------------------------------------------------
    def _frontend_addresses(self) -> list[tuple[str, int]]:
        ready = self._frontends(ready_only=True) if self.supervisor else []
        key = "grpc" if self._kserve() else "http"
        return [("127.0.0.1", self._replica_ports(r)[key]) for r in ready]

    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of a proxy over the ready frontends (re-resolved per connection)."""
        with self._lock:
            if self._proxy is None:
                self._sup()
                port = self._port() if self.base_port is not None else 0
                self._proxy = TcpProxy(self._frontend_addresses, port=port)
                self._proxy.start()
            return self._proxy.url

    def endpoint_failures(self) -> list[dict[str, Any]]:
        """None recorded: the local proxy connects on this machine, with no tunnel to fail."""
        return []

    def endpoint_problem(self) -> str | None:
        """Never: an unreachable local frontend is the deployment's own failure."""
        return None

    # -- pods -----------------------------------------------------------------------------------
    @staticmethod
    def _pod(r: Replica) -> Pod:
        return Pod(
            name=r.name,
            service=r.service,
            role=r.role,
            ready=r.ready,
            restart_count=r.restart_count,
            phase="Running" if r.running else "Pending",
            created_ns=r.created_ns,
            index=r.index,
        )

    def pods(self, service: str | None = None) -> list[Pod]:
        """Live replicas as pods, optionally of one service, in a stable order."""
        if self.supervisor is None:
            return []
        return [self._pod(r) for r in self.supervisor.replicas(service)]

    def _replica(self, pod: Pod) -> Replica:
        try:
            r = self._sup().get(pod.name)
        except KeyError:
            raise PlatformError(f"local platform: no pod {pod.name}") from None
        if r.deleted:
            raise PlatformError(f"local platform: pod {pod.name} was deleted")
        return r

    # -- faults ---------------------------------------------------------------------------------
    def _matches(
        self, r: Replica, process: str, ranks: tuple[int, ...] | None
    ) -> list[tuple[int, str]]:
        matches = [(pid, cmd) for pid, cmd in r.processes() if process in cmd]
        if not matches:
            raise PlatformError(
                f"local platform: no process matching {process!r} in pod {r.name} "
                f"(processes: {[cmd[:80] for _, cmd in r.processes()]})"
            )
        return select_ranks(matches, ranks, f"local platform: pod {r.name}, {process!r}")

    def terminate_process(
        self, pod: Pod, process: str, signal: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """Send ``signal`` to the pod's processes whose command line contains ``process``."""
        r = self._replica(pod)
        sig = _parse_signal(signal)
        matches = self._matches(r, process, ranks)
        evidence = {
            "restart_count_before": r.restart_count,
            "main_pid_before": r.pid,
            "cmdlines": {str(pid): cmd for pid, cmd in matches},
        }
        pids = [pid for pid, _ in matches]
        t_ns = time.time_ns()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return FaultRecord(
            action="terminate_process",
            service=r.service,
            pod=r.name,
            t_ns=t_ns,
            signal=sig.name,
            process=process,
            pids=pids,
            evidence=evidence,
        )

    def stall_process(
        self, pod: Pod, process: str, ranks: tuple[int, ...] | None = None
    ) -> FaultRecord:
        """SIGSTOP the pod's processes whose command line contains ``process``; states from /proc."""
        r = self._replica(pod)
        matches = self._matches(r, process, ranks)
        pids = [pid for pid, _ in matches]
        evidence: dict[str, Any] = {
            "restart_count_before": r.restart_count,
            "cmdlines": {str(pid): cmd for pid, cmd in matches},
        }
        t_ns = time.time_ns()
        for pid in pids:
            with self._lock:
                self._stopped.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.SIGSTOP)
        evidence["states_after_stop"] = _wait_states(pids, stopped=True, timeout=5.0)
        evidence["stopped_seen_ns"] = time.time_ns()
        return FaultRecord(
            action="stall_process",
            service=r.service,
            pod=r.name,
            t_ns=t_ns,
            signal="SIGSTOP",
            process=process,
            pids=pids,
            evidence=evidence,
        )

    def resume_process(self, fault: FaultRecord) -> FaultRecord:
        """SIGCONT the pids ``fault`` stopped; their states after it, read from /proc."""
        fault.resumed_ns = time.time_ns()
        self._continue(fault.pids)
        fault.evidence["states_after_resume"] = _wait_states(fault.pids, stopped=False, timeout=5.0)
        with contextlib.suppress(KeyError, PlatformError):
            fault.evidence["restart_count_after"] = self._sup().get(fault.pod).restart_count
        return fault

    def _continue(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.SIGCONT)
            with self._lock:
                self._stopped.discard(pid)

    def reset_connections(self, pod: Pod) -> FaultRecord:
        """RST every connection the endpoint proxy holds into frontend ``pod`` (both sockets).

        The proxy is the only path ftctl controls into a local service; the frontend to worker
        connections run directly between Dynamo processes, so only frontends can be targeted.
        """
        r = self._replica(pod)
        if r.role != "frontend":
            raise PlatformError(
                f"local platform: reset_connections works on frontends (the connections of "
                f"ftctl's endpoint proxy); {r.name} is a {r.role} worker"
            )
        with self._lock:
            proxy = self._proxy
        if proxy is None or proxy.address is None:
            raise PlatformError("local platform: no endpoint proxy yet (start a load first)")
        port = self._replica_ports(r)["grpc" if self._kserve() else "http"]
        listen = f"{proxy.address[0]}:{proxy.address[1]}"
        t_ns = time.time_ns()
        reset = proxy.reset_connections(("127.0.0.1", port))
        pairs = [(listen, e["client"]) for e in reset]
        pairs += [(str(e["upstream"]), str(e["backend"])) for e in reset]
        evidence: dict[str, Any] = {
            "reset": reset,
            "count": len(reset),
            "proxy": listen,
            "restart_count_before": r.restart_count,
        }
        deadline = time.monotonic() + 2.0
        while (still := established(pairs)) and time.monotonic() < deadline:
            time.sleep(0.01)
        evidence["still_established"] = [list(p) for p in still]
        return FaultRecord(
            action="reset_connections",
            service=r.service,
            pod=r.name,
            t_ns=t_ns,
            signal="RST",
            evidence=evidence,
        )

    def _relay_of(self, r: Replica) -> tuple[int, TcpProxy]:
        rpc_port = self._replica_ports(r).get("rpc")
        relay = self._relays.get(rpc_port) if rpc_port is not None else None
        if relay is None or rpc_port is None:
            raise PlatformError(
                f"local platform: {r.name} has no request-plane relay: a partition targets "
                "workers of the services its events name"
            )
        return rpc_port, relay

    def partition(self, pod: Pod) -> FaultRecord:
        """Cut the frontend from worker ``pod``: its relay resets every request-plane connection,
        established or new, until ``heal_partition``."""
        r = self._replica(pod)
        rpc_port, relay = self._relay_of(r)
        evidence: dict[str, Any] = {
            "worker_rpc": f"127.0.0.1:{rpc_port}",
            "relay": relay.url.removeprefix("http://"),
            "discovery_rewrites": self.discovery_rewrites,
            "relayed_connections_before": relay.connections,
            "restart_count_before": r.restart_count,
            "refused_before": relay.refused,
        }
        if relay.connections == 0:
            evidence["error"] = (
                "the frontend never connected through the relay: the cut would not be seen"
            )
        t_ns = time.time_ns()
        evidence["reset"] = relay.cut()
        return FaultRecord(
            action="partition", service=r.service, pod=r.name, t_ns=t_ns, evidence=evidence
        )

    def heal_partition(self, fault: FaultRecord) -> FaultRecord:
        """End the cut: the relay forwards new connections again."""
        rpc_port = int(str(fault.evidence["worker_rpc"]).rpartition(":")[2])
        relay = self._relays.get(rpc_port)
        if relay is None:
            return fault
        fault.evidence["refused_during_cut"] = relay.refused - fault.evidence["refused_before"]
        fault.evidence["relayed_connections_at_heal"] = relay.connections
        fault.resumed_ns = time.time_ns()
        relay.heal()
        return fault

    def _wait_reconnected(self, fault: FaultRecord, deadline: float) -> None:
        rpc_port = int(str(fault.evidence["worker_rpc"]).rpartition(":")[2])
        relay = self._relays.get(rpc_port)
        at_heal = fault.evidence.get("relayed_connections_at_heal")
        if relay is None or at_heal is None:
            return
        while relay.connections <= at_heal and time.monotonic() < deadline:
            if self._stop.is_set():  # torn down: no frontend will come back
                break
            time.sleep(0.02)
        if relay.connections > at_heal:
            fault.evidence["reconnected_ns"] = time.time_ns()

    def run_command(self, pod: Pod, argv: list[str], timeout: float) -> CommandResult:
        """Run ``argv`` with the replica's environment and working directory (no shell)."""
        import subprocess

        r = self._replica(pod)
        try:
            done = subprocess.run(
                list(argv),
                env=r.spec.env,
                cwd=r.spec.cwd or self._state_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return CommandResult(
                None,
                _text(exc.stdout),
                _text(exc.stderr),
                error=f"timed out after {timeout:g}s (killed)",
            )
        except OSError as exc:  # like exec in a container: not found is exit 127
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            return CommandResult(code, "", f"{argv[0]}: {exc.strerror}\n")
        return CommandResult(done.returncode, _text(done.stdout), _text(done.stderr))

    def delete_pod(self, pod: Pod, force: bool) -> FaultRecord:
        """Delete the replica (SIGKILL if ``force``, else SIGTERM + grace); a new name replaces it."""
        r = self._replica(pod)
        self._scrape_metrics(r, suffix=".before_delete")
        evidence = {"restart_count_before": r.restart_count, "pids": [p for p, _ in r.processes()]}
        t_ns = time.time_ns()
        new = self._sup().delete_replica(r.name, force=force, grace=30.0)
        self._replica_ports(new)
        evidence.update({"old_pod": r.name, "new_pod": new.name, "force": force})
        return FaultRecord(
            action="delete_pod",
            service=r.service,
            pod=r.name,
            t_ns=t_ns,
            signal="SIGKILL" if force else "SIGTERM",
            pids=evidence["pids"],
            evidence=evidence,
        )

    def verify_fault(self, fault: FaultRecord, timeout: float) -> FaultRecord:
        """Wait for the fault's effect (process gone + restart, or replacement ready)."""
        deadline = time.monotonic() + timeout
        r = self._sup().get(fault.pod)
        if fault.action == "terminate_process":
            return self._verify_terminate(fault, r, deadline)
        if fault.action == "delete_pod":
            return self._verify_delete(fault, r, deadline)
        if fault.action == "stall_process":
            return judge_stall(fault)
        if fault.action == "reset_connections":
            return judge_reset(fault)
        if fault.action == "partition":
            self._wait_reconnected(fault, deadline)
            return judge_partition(fault)
        raise PlatformError(f"local platform: cannot verify {fault.action!r}")

    def _verify_terminate(self, fault: FaultRecord, r: Replica, deadline: float) -> FaultRecord:
        before = fault.evidence.get("restart_count_before", 0)
        main_hit = fault.evidence.get("main_pid_before") in fault.pids
        while time.monotonic() < deadline:
            gone = not any(_pid_alive(p) for p in fault.pids)
            if gone and (not main_hit or r.restart_count > before):
                break
            time.sleep(0.02)
        else:
            fault.evidence["pids_alive"] = [p for p in fault.pids if _pid_alive(p)]
            fault.evidence["restart_count_after"] = r.restart_count
            return fault
        fault.verified = True
        fault.verified_ns = time.time_ns()
        fault.evidence.update(
            {
                "pids_gone": fault.pids,
                "restart_count_after": r.restart_count,
                "main_pid_after": r.pid,
                "last_exit_code": r.last_exit_code,
                "last_signal": r.last_signal,
                "last_terminated_ns": r.last_terminated_ns,
            }
        )
        if not main_hit:
            fault.skipped_reason = (
                "killed a subprocess, not the main process: the container does not restart "
                "(known limitation, REFERENCE.md §2)"
            )
            return fault
        while time.monotonic() < deadline and not r.ready:
            time.sleep(0.02)
        if r.ready:
            fault.pod_recovered_ns = r.ready_ns
            fault.evidence["restarted_started_ns"] = r.started_ns
        return fault

    def _verify_delete(self, fault: FaultRecord, old: Replica, deadline: float) -> FaultRecord:
        new_name = fault.evidence.get("new_pod")
        new = self._sup().get(new_name) if new_name else None
        while time.monotonic() < deadline:
            old_gone = old.deleted and not old.running and not any(map(_pid_alive, fault.pids))
            if old_gone and new is not None and new.ready:
                break
            time.sleep(0.02)
        else:
            fault.evidence["old_pod_running"] = old.running
            return fault
        assert new is not None
        fault.verified = True
        fault.verified_ns = time.time_ns()
        fault.pod_recovered_ns = new.ready_ns
        fault.evidence.update(
            {"new_pod_created_ns": new.created_ns, "old_exit": old.last_exit_code}
        )
        return fault

    # -- logs and upgrades ----------------------------------------------------------------------
    def wait_for_log_pattern(self, service: str, pattern: str, timeout: float) -> int:
        """Block until a current log line of ``service`` matches ``pattern``; its epoch ns."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for r in self._sup().replicas(service):
                try:
                    text = r.log_path.read_text(errors="replace")
                except OSError:
                    continue
                for line in text.splitlines():
                    if regex.search(line):
                        return _line_time_ns(line)
            if time.monotonic() >= deadline:
                raise PlatformError(
                    f"local platform: no log line of {service} matched {pattern!r} "
                    f"within {timeout:.0f}s"
                )
            time.sleep(_POLL_S)

    def rolling_upgrade(self, services: list[str], timeout: float) -> None:
        """Replace the replicas of ``services`` one by one, each waited ready (new names)."""
        deadline = time.monotonic() + timeout
        sup = self._sup()
        for service in services:
            for old in sup.replicas(service):
                new = sup.restart_replica(old.name, grace=30.0)
                self._replica_ports(new)
                while not new.ready:
                    if time.monotonic() >= deadline:
                        raise PlatformError(
                            f"local platform: rolling upgrade of {service}: {new.name} not "
                            f"ready within {timeout:.0f}s; last log lines:\n{_tail(new.log_path)}"
                        )
                    time.sleep(_POLL_S)

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every running replica's /metrics: the frontend's HTTP port, a worker's system port."""
        sup = self.supervisor
        if sup is None:
            return []
        targets = []
        for r in sup.replicas():
            ports = self._replica_ports(r)
            port = ports.get("http") or ports.get("system")
            if port and not r.deleted:
                targets.append(
                    ScrapeTarget(r.service, r.name, functools.partial(_fetch_metrics, port), r.pid)
                )
        return targets

    def _scrape_metrics(self, r: Replica, suffix: str = "") -> None:
        ports = self._replica_ports(r)
        port = ports.get("http") or ports.get("system")
        if not port or not r.running:
            return
        try:
            status, body = _http_get(port, "/metrics")
        except (OSError, http.client.HTTPException):
            return
        if status == 200:
            r.log_path.with_name(f"{r.name}{suffix}{METRICS_LOG_SUFFIX}").write_bytes(body)

    def _status(self, r: Replica) -> dict:
        return {
            "name": r.name,
            "service": r.service,
            "role": r.role,
            "index": r.index,
            "command": r.spec.argv,
            "ports": self._replica_ports(r),
            "created_ns": r.created_ns,
            "started_ns": r.started_ns,
            "ready_ns": r.ready_ns,
            "ready": r.ready,
            "running": r.running,
            "deleted": r.deleted,
            "pid": r.pid,
            "restart_count": r.restart_count,
            "last_state": {
                "exit_code": r.last_exit_code,
                "signal": r.last_signal,
                "terminated_ns": r.last_terminated_ns,
            },
            "history": list(r.history),
        }

    def collect_logs(self, dest: Path) -> None:
        """Write ``<Service>/<pod>.log``, ``.previous.log``, ``.metrics.log`` and ``.yaml``."""
        import yaml

        dest = Path(dest)
        if self.supervisor is None or self._state_dir is None:
            if self._final_logs is not None and self._final_logs.resolve() != dest.resolve():
                for src in self._final_logs.glob("*/*-*.*"):
                    target = dest / src.parent.name / src.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)
            return
        for r in self.supervisor.all_replicas():
            self._scrape_metrics(r)
            out = dest / r.service
            out.mkdir(parents=True, exist_ok=True)
            for src in r.log_path.parent.glob(f"{r.name}.*"):
                shutil.copy2(src, out / src.name)
            (out / f"{r.name}{POD_YAML_SUFFIX}").write_text(
                yaml.safe_dump(self._status(r), sort_keys=False), encoding="utf-8"
            )
            (out / f"{r.name}{POD_EVENTS_SUFFIX}").write_text(_events_text(r), encoding="utf-8")

    # -- teardown -------------------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop every process, close the proxy, keep the logs in the run dir; idempotent."""
        with self._lock:
            stopped = sorted(self._stopped)
        self._continue(stopped)  # nothing ftctl froze stays frozen, whatever happens next
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
        relays, self._relays = self._relays, {}
        for relay in relays.values():  # healed and gone: no cut outlives the run
            relay.heal()
            relay.close()
        sup, self.supervisor = self.supervisor, None
        if sup is not None:
            for r in sup.replicas():  # last /metrics while they still answer
                with contextlib.suppress(Exception):
                    self._scrape_metrics(r)
            sup.stop_all(grace=5.0)
            if self._run_dir is not None:
                # The logs live in a temp dir that goes away now: keep them with the results.
                self.supervisor = sup
                try:
                    self.collect_logs(self._run_dir)
                finally:
                    self.supervisor = None
                self._final_logs = self._run_dir
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
        self._torn_down = True

    def leftover_processes(self) -> list[tuple[int, str]]:
        """Processes still carrying this run's FTCTL_RUN_ID (for tests and cleanup)."""
        marker = f"FTCTL_RUN_ID={self.run_id}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0") and _pid_alive(int(entry)):
                found.append((int(entry), proc_cmdline(int(entry)) or ""))
        return found


_EVENT_REASONS = {
    "started": "Started",
    "ready": "Ready",
    "exited": "Killing",
    "restarting": "BackOff",
    "deleting": "Killing",
    "deleted": "Deleted",
    "failed": "Failed",
}


def _events_text(r: Replica) -> str:
    """Kubernetes-like event lines from the replica's history (``.events.log``)."""
    lines = []
    for h in r.history:
        stamp = datetime.fromtimestamp(h["t_ns"] / 1e9, tz=UTC)
        detail = " ".join(f"{k}={v}" for k, v in h.items() if k not in ("t_ns", "state"))
        reason = _EVENT_REASONS.get(h["state"], h["state"])
        lines.append(f"{stamp.isoformat()} {reason} {r.name} {detail}".rstrip())
    return "\n".join(lines) + "\n"


def _line_time_ns(line: str) -> int:
    """The UTC timestamp a Dynamo log line starts with, else now."""
    match = _TIMESTAMP.match(line)
    if match:
        with contextlib.suppress(ValueError):
            stamp = datetime.fromisoformat(match.group(1) + "+00:00")
            return int(stamp.timestamp() * 1e9)
    return time.time_ns()
