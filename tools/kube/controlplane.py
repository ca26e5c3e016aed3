"""A real control plane on loopback: etcd + kube-apiserver 1.20.2 with the real DGD CRD.

Used by the ``real_apiserver`` tests (tests/realkube) and by humans:

    .venv/bin/python -m tools.kube.controlplane up      # start in the background
    .venv/bin/python -m tools.kube.controlplane down    # stop it, remove its data

Binaries come from tools/kube/build.py's cache. Everything listens on 127.0.0.1 on free ports;
the kubeconfig carries a bearer token and ``insecure-skip-tls-verify`` (the apiserver's serving
certificate is self-signed). Authorization is AlwaysAllow. There is no scheduler, controller or
kubelet: pods stay Pending.

Teardown happens on every exit path: ``stop()`` from the context manager, an atexit hook, and
the children get SIGTERM from the kernel if this process dies (PR_SET_PDEATHSIG). Each child
runs in its own process group, which is what gets killed. Temp folders are removed, and stale
ones of dead runs are swept on the next start.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.kube.build import KUBE_VERSION, apiserver_ok, cache_dir, etcd_ok
from tools.kube.crd import adapt_for_1_20

REPO = Path(__file__).resolve().parents[2]
DGD_CRD = REPO / "tests" / "data" / "crds" / "nvidia.com_dynamographdeployments.yaml"
STATE_DIR = REPO / "out" / "kube"  # `make kube-up` keeps its state here (git-ignored)
WORK_PREFIX = "ftctl-kube-"
_PR_SET_PDEATHSIG = 1
try:
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)  # loaded before fork: preexec_fn only calls
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


class ControlPlaneError(Exception):
    """The control plane could not be started; the message is one line naming the step."""


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together while they are chosen)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_group(pid: int, expect: str, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid`` if it still runs ``expect``; SIGKILL if it lingers.

    ``expect`` is the binary path the process was started with: the check keeps a recycled pid
    (an unrelated process) from being signalled.
    """
    if not _cmdline(pid).startswith(expect):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _cmdline(pid).startswith(expect):
        time.sleep(0.05)
    if _cmdline(pid).startswith(expect):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def sweep_stale(tmp_root: Path | None = None) -> list[Path]:
    """Remove work folders of earlier runs whose processes are all gone (a SIGKILLed pytest)."""
    removed = []
    root = tmp_root or Path(tempfile.gettempdir())
    for work in root.glob(f"{WORK_PREFIX}*"):
        pids_file = work / "pids.json"
        if not pids_file.is_file():
            continue
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            continue
        if not any(_alive(int(p)) for p in pids.values()):
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed


@dataclass
class Binaries:
    apiserver: Path
    etcd: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        folder = cache_dir()
        found = cls(folder / "kube-apiserver", folder / "etcd")
        if not apiserver_ok(found.apiserver) or not etcd_ok(found.etcd):
            raise ControlPlaneError(
                f"step 'find binaries' failed: no kube-apiserver {KUBE_VERSION} and etcd in "
                f"{folder}; build them with `python3 tools/kube/build.py` (make kube-build)"
            )
        return found


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback; ``with ControlPlane() as cp:`` or start()/stop().

    Args:
        binaries: where the two binaries are (default: the build cache).
        crd: the CRD to install (default: the real DGD CRD, adapted for 1.20); None for none.
        detached: for ``up``: no atexit stop and no parent-death signal, so the processes
            outlive this one; ``down`` stops them from the state file.
        log: where progress lines go.
    """

    binaries: Binaries | None = None
    crd: Path | None = DGD_CRD
    detached: bool = False
    log: Any = print
    work: Path | None = None
    token: str = ""
    etcd_url: str = ""
    server: str = ""
    crd_changes: list[str] = field(default_factory=list)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        assert self.work is not None, "not started"
        return self.work / "kubeconfig"

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> ControlPlane:
        """Start both, wait for /readyz, write the kubeconfig, install the CRD."""
        binaries = self.binaries or Binaries.from_cache()
        sweep_stale()
        if not self.detached:
            atexit.register(self.stop)
        try:
            for attempt in range(1, attempts + 1):
                try:
                    self._start_once(binaries)
                    break
                except _PortTaken:
                    self._stop_processes()
                    if attempt == attempts:
                        raise ControlPlaneError(
                            "step 'start' failed: ports taken on every attempt"
                        ) from None
            if self.crd is not None:
                self.install_crd(self.crd)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_once(self, binaries: Binaries) -> None:
        if self.work is None:
            self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
            self._write_pids()
            self._make_credentials()
        client, peer, secure = free_ports(3)
        self.etcd_url = f"http://127.0.0.1:{client}"
        shutil.rmtree(self.work / "etcd-data", ignore_errors=True)
        self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=ftctl",
                f"--data-dir={self.work / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=ftctl=http://127.0.0.1:{peer}",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
        )
        self._wait("etcd", f"{self.etcd_url}/health", lambda body: b'"true"' in body, 30.0)
        self.server = f"https://127.0.0.1:{secure}"
        sa_key = str(self.work / "sa.key")
        self._spawn(
            "kube-apiserver",
            [
                str(binaries.apiserver),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure}",
                "--insecure-port=0",
                f"--cert-dir={self.work / 'certs'}",
                f"--token-auth-file={self.work / 'tokens.csv'}",
                "--authorization-mode=AlwaysAllow",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                "--logtostderr=true",
                "--v=0",
            ],
        )
        self._wait("kube-apiserver", f"{self.server}/readyz", lambda body: body == b"ok", 90.0)
        self._write_kubeconfig()
        self.log(f"kube: kube-apiserver {KUBE_VERSION} ready at {self.server}")

    def stop(self) -> None:
        """Kill both process groups and remove the work folder; safe to call twice."""
        self._stop_processes()
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _stop_processes(self) -> None:
        # The apiserver first: it would log etcd connection errors for a while otherwise.
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10.0)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5.0)
            # Anything the child left in its group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    # -- pieces -------------------------------------------------------------------------------

    def _write_pids(self) -> None:
        assert self.work is not None
        pids = {name: proc.pid for name, proc in self._procs.items()}
        pids["owner"] = os.getpid()
        (self.work / "pids.json").write_text(json.dumps(pids))

    def _make_credentials(self) -> None:
        assert self.work is not None
        self.token = secrets.token_hex(24)
        (self.work / "tokens.csv").write_text(
            f"{self.token},ftctl-admin,ftctl-admin,system:masters\n"
        )
        if shutil.which("openssl") is None:
            raise ControlPlaneError("step 'generate service-account key' failed: no openssl")
        done = subprocess.run(
            ["openssl", "genrsa", "-out", str(self.work / "sa.key"), "2048"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise ControlPlaneError(f"step 'generate service-account key' failed: {last}")

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.work is not None
        with (self.work / f"{name}.log").open("ab") as out:
            self._procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=None if self.detached else _die_with_parent,
            )
        self._write_pids()

    def _log_tail(self, name: str, lines: int = 3) -> str:
        assert self.work is not None
        try:
            text = (self.work / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def _wait(self, name: str, url: str, ready, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + timeout
        context = _unverified() if url.startswith("https") else None
        while True:
            proc = self._procs[name]
            if proc.poll() is not None:
                tail = self._log_tail(name)
                if "address already in use" in tail:
                    raise _PortTaken(name)
                raise ControlPlaneError(
                    f"step 'start {name}' failed: exited {proc.returncode}: {tail}"
                )
            try:
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=2.0, context=context) as answer:
                    if ready(answer.read()):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"step 'start {name}' failed: not ready after {timeout:.0f} s: "
                    f"{self._log_tail(name)}"
                )
            time.sleep(0.1)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ftctl-real",
                    "cluster": {"server": self.server, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "ftctl-admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": "ftctl-real", "context": {"cluster": "ftctl-real", "user": "ftctl-admin"}}
            ],
            "current-context": "ftctl-real",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def api_client(self):
        """A kubernetes ApiClient for this control plane (imports the client lazily)."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def install_crd(self, path: Path, timeout: float = 30.0) -> dict[str, Any]:
        """Create the CRD of ``path`` (adapted for 1.20) and wait until its resource is served."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            original = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ControlPlaneError(f"step 'read CRD' failed: {path}: {exc}") from exc
        crd, self.crd_changes = adapt_for_1_20(original)
        for change in self.crd_changes:
            self.log(f"kube: CRD adapted for 1.20: {change}")
        name = crd["metadata"]["name"]
        version = crd["spec"]["versions"][0]["name"]
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        with warnings.catch_warnings(), self.api_client() as api:
            warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning, loopback only
            ext = client.ApiextensionsV1Api(api)
            try:
                ext.create_custom_resource_definition(crd)
            except ApiException as exc:
                raise ControlPlaneError(
                    f"step 'install CRD {name}' failed: {exc.status} {exc.body}"
                ) from exc
            custom = client.CustomObjectsApi(api)
            deadline = time.monotonic() + timeout
            while True:
                got = ext.read_custom_resource_definition(name)
                established = any(
                    c.type == "Established" and c.status == "True"
                    for c in (got.status.conditions or [])
                )
                if established:
                    try:
                        custom.list_cluster_custom_object(group, version, plural, limit=1)
                        break
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                if time.monotonic() > deadline:
                    raise ControlPlaneError(
                        f"step 'install CRD {name}' failed: not served after {timeout:.0f} s"
                    )
                time.sleep(0.1)
        self.log(f"kube: CRD {name} installed ({len(self.crd_changes)} change(s) for 1.20)")
        return crd


class _PortTaken(Exception):
    """A freshly picked port was taken before the child bound it; pick again."""


# -- `make kube-up` / `make kube-down` --------------------------------------------------------


def up(state_dir: Path) -> int:
    state = state_dir / "state.json"
    if state.is_file():
        print(f"ftctl-kube: error: already up (state in {state}); run `make kube-down` first")
        return 1
    plane = ControlPlane(detached=True, log=lambda line: print(line, flush=True))
    try:
        plane.start()
    except ControlPlaneError as exc:
        print(f"ftctl-kube: error: {exc}", file=sys.stderr)
        return 1
    assert plane.work is not None
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = state_dir / "kubeconfig"
    shutil.copy2(plane.kubeconfig, kubeconfig)
    state.write_text(
        json.dumps(
            {
                "work": str(plane.work),
                "server": plane.server,
                "pids": {n: p.pid for n, p in plane._procs.items()},
                "argv0": {n: str(p.args[0]) for n, p in plane._procs.items()},
            },
            indent=2,
        )
    )
    print(f"export KUBECONFIG={kubeconfig}")
    return 0


def down(state_dir: Path) -> int:
    state = state_dir / "state.json"
    if not state.is_file():
        print("ftctl-kube: nothing is up")
        return 0
    data = json.loads(state.read_text())
    for name in ("kube-apiserver", "etcd"):
        pid = data["pids"].get(name)
        if pid:
            kill_group(int(pid), data["argv0"][name])
    work = Path(data["work"])
    if work.name.startswith(WORK_PREFIX):
        shutil.rmtree(work, ignore_errors=True)
    (state_dir / "kubeconfig").unlink(missing_ok=True)
    state.unlink()
    print(f"ftctl-kube: stopped {data['server']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    args = parser.parse_args(argv)
    return up(args.state_dir) if args.command == "up" else down(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
