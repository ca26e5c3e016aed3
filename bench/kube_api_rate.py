"""API requests per minute of a worker-kill run through `ftctl run --platform kubernetes`.

Runs the kube e2e worker-kill scenario (tests/kube/test_e2e_kube.py) against the loopback fake
API server and counts what the fake received (``FakeCluster.request_log``) from the start of
`ftctl run` to its exit, by kind. "polling" is what waits used to poll: pod lists and gets and
DGD gets and lists (not watches); the rest is the watches themselves, the data plane
(port-forwards, exec), kubelet stats scrapes, logs and events.

Modes:
  before  ftctl as of --before-rev (default: the merge base with main), exported with
          `git archive` into a temporary folder: polling every 0.25 s
  after   this tree: watches
  poll    this tree with FTCTL_KUBE_WATCH=0: the fallback, polling every 2 s

    python bench/kube_api_rate.py                       # before, after, poll
    python bench/kube_api_rate.py --modes after --repeat 3
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.kube.fake_apiserver import FakeApiServer, FakeCluster  # noqa: E402
from tests.kube.tokenizer import make_tokenizer, repo_tokenizer  # noqa: E402

NS = "fault-tolerance-test"
POLLING = ("pod list", "pod get", "dgd get", "dgd list")
SCENARIO = {
    "apiVersion": "ftctl/v1",
    "kind": "Scenario",
    "metadata": {"name": "kube-kill"},
    "deployment": {"backend": "vllm", "model": "tiny"},
    "load": {
        "client": "legacy",
        "clients": 2,
        "requests_per_client": 40,
        "request_rate": 4,
        "input_tokens": 16,
        "output_tokens": 8,
        "retries": 0,
    },
    "failures": [{"at": "4s", "type": "decode_worker"}],
    "checks": [{"kind": "fault_verified"}, {"kind": "min_requests", "min": 60}],
}


def kind_of(method: str, path: str, query: str) -> str:
    """A request's kind, e.g. 'pod list', 'pod watch', 'dgd get', 'port-forward'."""
    watch = "watch=true" in query or "watch=1" in query
    if re.search(r"/pods/[^/]+/portforward$", path):
        return "port-forward"
    if re.search(r"/pods/[^/]+/exec$", path):
        return "exec"
    if re.search(r"/pods/[^/]+/log$", path):
        return "pod log"
    if "/proxy/" in path and "/nodes/" in path:
        return "kubelet stats"
    if path.endswith("/pods"):
        return "pod watch" if watch else ("pod list" if method == "GET" else f"pod {method}")
    if re.search(r"/pods/[^/]+$", path):
        return "pod get" if method == "GET" else f"pod {method.lower()}"
    if path.endswith("/dynamographdeployments"):
        return "dgd watch" if watch else ("dgd list" if method == "GET" else "dgd create")
    if re.search(r"/dynamographdeployments/[^/]+$", path):
        return "dgd get" if method == "GET" else f"dgd {method.lower()}"
    if "/events" in path:
        return "events"
    if path in ("/api", "/apis", "/version") or re.fullmatch(r"/apis?/[^/]+(/[^/]+)?", path):
        return "discovery"
    return f"{method} {path}"


def export_rev(rev: str, dest: Path) -> Path:
    """The tree of ``rev`` (git archive), for the 'before' figure; no worktree is touched."""
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "ftctl"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_once(cluster: FakeCluster, kubeconfig: Path, work: Path, root: Path, env: dict) -> dict:
    import yaml

    scenario = work / "kube-kill.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    out = work / f"out-{time.monotonic_ns()}"
    argv = [
        sys.executable, "-m", "ftctl", "run", str(scenario), "--platform", "kubernetes",
        "--kubeconfig", str(kubeconfig), "--namespace", NS, "--skip-service-restart",
        "--output-dir", str(out),
    ]  # fmt: skip
    start = len(cluster.request_log)
    t0 = time.monotonic()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
        env={**os.environ, **env, "PYTHONPATH": str(root)},
    )
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"ftctl run exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    log = cluster.request_log[start:]
    kinds = Counter(kind_of(m, p, q) for _, m, p, q in log)
    return {"seconds": seconds, "total": len(log), "kinds": kinds}


def report(mode: str, runs: list[dict]) -> dict:
    seconds = sum(r["seconds"] for r in runs)
    total = sum(r["total"] for r in runs)
    kinds: Counter = sum((r["kinds"] for r in runs), Counter())
    polling = sum(kinds[k] for k in POLLING)
    per_min = 60.0 / seconds
    print(
        f"\n{mode}: {total} requests in {seconds:.1f}s = {total * per_min:.0f}/min; "
        f"polling {polling} = {polling * per_min:.0f}/min ({len(runs)} run(s))"
    )
    for kind, n in kinds.most_common():
        mark = "  (polling)" if kind in POLLING else ""
        print(f"  {kind:<16} {n:>5}  {n * per_min:7.1f}/min{mark}")
    return {"polling_per_min": polling * per_min, "total_per_min": total * per_min}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="before,after,poll", help="comma-separated")
    parser.add_argument("--before-rev", default=None, help="git rev of 'before' (merge base)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory(prefix="kube-api-rate-") as tmp:
        work = Path(tmp)
        tokenizer = repo_tokenizer() or make_tokenizer(work / "tokenizer")
        cluster = FakeCluster(work, tokenizer, restart_delay=0.5)
        server = FakeApiServer(cluster).start()
        kubeconfig = server.write_kubeconfig(work / "kubeconfig")
        figures = {}
        try:
            for mode in modes:
                env: dict[str, str] = {}
                root = REPO
                if mode == "before":
                    rev = (
                        args.before_rev
                        or subprocess.run(
                            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout.strip()
                    )
                    root = export_rev(rev, work / "before")
                    print(f"before = {rev[:12]}")
                elif mode == "poll":
                    env["FTCTL_KUBE_WATCH"] = "0"
                elif mode != "after":
                    raise SystemExit(f"unknown mode {mode!r}")
                runs = [run_once(cluster, kubeconfig, work, root, env) for _ in range(args.repeat)]
                figures[mode] = report(mode, runs)
        finally:
            server.stop()
    if "before" in figures and "after" in figures:
        b, a = figures["before"], figures["after"]
        ratio = a["polling_per_min"] / b["polling_per_min"] if b["polling_per_min"] else 0.0
        print(
            f"\npolling requests/min: before {b['polling_per_min']:.0f}, after "
            f"{a['polling_per_min']:.0f} ({ratio:.2f} of before; goal <= 0.20); total/min "
            f"before {b['total_per_min']:.0f}, after {a['total_per_min']:.0f}"
        )


if __name__ == "__main__":
    main()
