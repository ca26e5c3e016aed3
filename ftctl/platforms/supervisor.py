"""Kubelet-like supervision of local processes as "pods" (shared by the local platform and the kube fake)."""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import string
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from ftctl.layout import LOG_SUFFIX, PREVIOUS_LOG_SUFFIX

_NAME_ALPHABET = string.ascii_lowercase + string.digits
_STABLE_S = 10.0  # a container that lived this long resets the crash-loop backoff
_MAX_BACKOFF_S = 30.0


@dataclass
class ProcessSpec:
    """What to run for a replica's main container."""

    argv: list[str]  # exec'd directly, never through a shell
    env: dict[str, str]  # full environment for the process
    cwd: Path | None = None


def _pod_suffix() -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of ``pid`` from /proc/<pid>/stat, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        return None


def proc_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` joined by spaces (like ``ps``), or None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None  # zombies and kernel threads have an empty cmdline
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _session_members(sid: int) -> list[int]:
    out = []
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st is not None and st[1] == sid:
            out.append(pid)
    return out


def _session_and_descendants(root: int) -> list[int]:
    """Pids in ``root``'s session plus its descendants (in case one called setsid)."""
    table: dict[int, tuple[int, int]] = {}
    for pid in _all_pids():
        st = _proc_stat(pid)
        if st is not None:
            table[pid] = st
    found = {pid for pid, (_, sid) in table.items() if sid == root}
    if root in table:
        found.add(root)
    changed = True
    while changed:  # close over the parent → child relation
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(found)


class Replica:
    """One "pod": a supervised main process, restarted when it dies."""

    def __init__(
        self,
        supervisor: Supervisor,
        name: str,
        service: str,
        role: str,
        index: int,
        spec: ProcessSpec,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.service = service
        self.role = role
        self.index = index
        self.spec = spec
        self.restart_count = 0
        self.created_ns = time.time_ns()
        self.started_ns: int | None = None
        self.ready_ns: int | None = None
        self.running = False
        self.pid: int | None = None
        self.last_exit_code: int | None = None  # Kubernetes style: 128 + signal when killed
        self.last_signal: int | None = None  # the signal that ended the last container
        self.last_terminated_ns: int | None = None
        self.deleted = False
        service_dir = log_dir / service
        service_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = service_dir / f"{name}{LOG_SUFFIX}"
        self.previous_log_path = service_dir / f"{name}{PREVIOUS_LOG_SUFFIX}"
        self.history: list[dict] = []
        self._supervisor = weakref.ref(supervisor)
        self._lock = threading.RLock()
        self._stop = threading.Event()  # set: do not restart any more
        self._proc: subprocess.Popen | None = None
        self._spawned = threading.Event()
        self._quick_deaths = 0
        self._spawn_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"supervise-{name}", daemon=True)

    # -- public ---------------------------------------------------------------------------------
    def processes(self) -> list[tuple[int, str]]:
        """(pid, cmdline) of the main process and its descendants, read from /proc."""
        pid = self.pid
        if pid is None:
            return []
        out = []
        for p in _session_and_descendants(pid):
            cmd = proc_cmdline(p)
            if cmd is not None:
                out.append((p, cmd))
        return out

    def mark_ready(self) -> None:
        """Record that the current container serves (the owner judges readiness)."""
        with self._lock:
            if self.ready_ns is None and self.running:
                self.ready_ns = time.time_ns()
                self._record("ready")

    @property
    def ready(self) -> bool:
        """Whether the current container was marked ready and still runs."""
        return self.running and self.ready_ns is not None

    def __repr__(self) -> str:
        return (
            f"Replica({self.name!r}, pid={self.pid}, restarts={self.restart_count}, "
            f"running={self.running}, deleted={self.deleted})"
        )

    # -- supervision ----------------------------------------------------------------------------
    def _record(self, state: str, **extra: object) -> None:
        self.history.append({"t_ns": time.time_ns(), "state": state, **extra})

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.spec.argv,
                env=self.spec.env,
                cwd=self.spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: the pod's descendants die with it
                close_fds=True,
            )
        self._proc = proc
        self.pid = proc.pid
        self.started_ns = time.time_ns()
        self.ready_ns = None
        self.running = True
        self._record("started", pid=proc.pid)

    def _run(self) -> None:
        # Every container is forked from this thread, which outlives it: children that ask for
        # PR_SET_PDEATHSIG (tied to the forking *thread*) die with ftctl, not with a caller.
        try:
            with self._lock:
                if not self._stop.is_set():
                    self._spawn()
        except BaseException as exc:
            self._spawn_error = exc
            return
        finally:
            self._spawned.set()
        while True:
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()  # reaps: no zombie
            # The container is gone: everything else in it goes too (as a container's PID
            # namespace would take them).
            _killpg(proc.pid, signal.SIGKILL)
            with self._lock:
                now = time.time_ns()
                self.running = False
                self.ready_ns = None
                self.last_terminated_ns = now
                self.last_signal = -code if code < 0 else None
                self.last_exit_code = 128 - code if code < 0 else code
                self._record("exited", exit_code=self.last_exit_code, returncode=code)
                if self._stop.is_set():
                    return
                self._record("restarting")
            sup = self._supervisor()
            delay = sup.restart_delay if sup is not None else 0.0
            # CrashLoopBackOff, kubelet-like: a container that keeps dying young waits
            # twice as long each time (capped); one that ran a while restarts promptly.
            lived_s = (self.last_terminated_ns - (self.started_ns or 0)) / 1e9
            self._quick_deaths = self._quick_deaths + 1 if lived_s < _STABLE_S else 0
            delay = min(delay * 2 ** max(0, self._quick_deaths - 1), max(delay, _MAX_BACKOFF_S))
            if self._stop.wait(delay):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                # kubelet keeps the previous container's log; the new one starts empty.
                try:
                    os.replace(self.log_path, self.previous_log_path)
                except FileNotFoundError:
                    pass
                try:
                    self._spawn()
                except OSError as exc:
                    self._record("failed", error=str(exc))
                    return
                # Counted once the new container exists: a reader that sees the new count
                # also sees the new pid.
                self.restart_count += 1

    def _start(self) -> None:
        self._thread.start()
        self._spawned.wait()
        if self._spawn_error is not None:
            raise self._spawn_error

    def _terminate(self, force: bool, grace: float) -> None:
        """Stop supervising and end the whole process group (SIGTERM, then SIGKILL)."""
        with self._lock:  # after this no restart can spawn: _proc is the last container
            self._stop.set()
            proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)
            deadline = time.monotonic() + (0.0 if force else grace)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        _killpg(proc.pid, signal.SIGKILL)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        # Stragglers that left the process group but not the session. (A dead session id is
        # never reused while members remain, so this cannot hit a stranger.)
        for pid in _session_members(proc.pid):
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_LIVE: weakref.WeakSet[Supervisor] = weakref.WeakSet()


@atexit.register
def _stop_everything_at_exit() -> None:
    for sup in list(_LIVE):
        sup.stop_all(grace=2.0)


class Supervisor:
    """Runs replicas as supervised processes, kubelet-like; nothing outlives ``stop_all()``."""

    def __init__(self, log_dir: Path, restart_delay: float = 1.0) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.restart_delay = restart_delay
        self._lock = threading.RLock()
        self._replicas: list[Replica] = []  # every replica ever started, deleted ones too
        self._stopped = False
        _LIVE.add(self)

    def _new_name(self, service: str) -> str:
        taken = {r.name for r in self._replicas}
        while True:
            name = f"{service}-{_pod_suffix()}"
            if name not in taken:
                return name

    def start_replica(self, service: str, role: str, spec: ProcessSpec, index: int = 0) -> Replica:
        """Start one replica of ``service`` under a fresh ``<Service>-<5 chars>`` name."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("supervisor is stopped")
            replica = Replica(
                self, self._new_name(service), service, role, index, spec, self.log_dir
            )
            self._replicas.append(replica)
            try:
                replica._start()
            except BaseException:
                self._replicas.remove(replica)
                raise
            return replica

    def replicas(self, service: str | None = None) -> list[Replica]:
        """Live (not deleted) replicas, ordered by service start then index."""
        with self._lock:
            live = [r for r in self._replicas if not r.deleted]
        if service is not None:
            live = [r for r in live if r.service == service]
        return sorted(live, key=lambda r: (r.service, r.index, r.created_ns))

    def all_replicas(self) -> list[Replica]:
        """Every replica ever started, deleted ones included, in start order."""
        with self._lock:
            return list(self._replicas)

    def get(self, name: str) -> Replica:
        """The replica called ``name`` (deleted ones included); KeyError if unknown."""
        with self._lock:
            for r in self._replicas:
                if r.name == name:
                    return r
        raise KeyError(name)

    def delete_replica(self, name: str, force: bool, grace: float = 30.0) -> Replica:
        """Kill the replica's process group, mark it deleted, start and return a replacement."""
        old = self.get(name)
        with self._lock:
            if old.deleted:
                raise KeyError(f"{name} is already deleted")
            old.deleted = True
        old._record("deleting", force=force)
        old._terminate(force=force, grace=grace)
        old._record("deleted")
        return self.start_replica(old.service, old.role, old.spec, old.index)

    def restart_replica(self, name: str, grace: float = 30.0) -> Replica:
        """Rolling-upgrade step: stop the replica gracefully; a new-named replacement starts."""
        return self.delete_replica(name, force=False, grace=grace)

    def stop_all(self, grace: float = 5.0) -> None:
        """Terminate and reap every replica; idempotent."""
        with self._lock:
            self._stopped = True
            targets = list(self._replicas)
        for r in targets:
            r._stop.set()  # no restart may race the shutdown
        for r in targets:  # SIGTERM everything first so graceful shutdowns overlap
            proc = r._proc
            if proc is not None and proc.poll() is None:
                _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for r in targets:
            r._terminate(force=False, grace=max(0.0, deadline - time.monotonic()))
