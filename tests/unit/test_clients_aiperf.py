"""Unit tests of the aiperf client: argv mapping, finding aiperf, the attempt policy.

The load handle is driven against a stand-in ``aiperf`` executable (a real process writing
aiperf's per-request export), so attempts, stop() and kill() are exercised without the
8-second start-up of the real tool (that is tests/integration/test_aiperf_client.py).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ftctl.clients import aiperf as mod
from ftctl.clients.aiperf import (
    AiperfLoad,
    aiperf_argv,
    aiperf_env,
    attempt_outcome,
    find_aiperf,
    needs_rerun,
)
from ftctl.clients.base import LoadTarget
from ftctl.errors import ClientError, ExitStatus
from ftctl.scenario.model import LoadSpec, TokenDist

TARGET = LoadTarget("http://127.0.0.1:8123", "tiny", Path("/tok"))
ART = Path("/out/client_2/attempt_0")


def flag(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in ``argv`` (None when absent)."""
    return argv[argv.index(name) + 1] if name in argv else None


# -- argv ------------------------------------------------------------------------------------


def test_argv_maps_model_tokenizer_url_and_artifact_dir():
    argv = aiperf_argv(LoadSpec(), TARGET, ART, 2, aiperf="/x/aiperf")
    assert argv[:2] == ["/x/aiperf", "profile"]
    assert flag(argv, "--model") == "tiny"
    assert flag(argv, "--tokenizer") == "/tok"
    assert flag(argv, "--url") == "http://127.0.0.1:8123"
    assert flag(argv, "--artifact-dir") == str(ART)
    assert flag(argv, "--ui-type") == "none"
    assert {"--no-server-metrics", "--no-gpu-telemetry", "--use-server-token-count"} <= set(argv)


def test_argv_never_has_failed_request_threshold_or_warmup():
    for spec in (
        LoadSpec(),
        LoadSpec(duration=60, requests_per_client=None),
        LoadSpec(arrival="poisson", request_rate=5.0),
        LoadSpec(prompts=("a", "b")),
    ):
        argv = aiperf_argv(spec, TARGET, ART, 0)
        assert not any(a.startswith("--failed-request") for a in argv)
        # aiperf 0.13 rejects --warmup-request-count 0; absent means no warmup.
        assert not any(a.startswith("--warmup") for a in argv)


def test_argv_endpoint_type_follows_the_endpoint():
    assert flag(aiperf_argv(LoadSpec(), TARGET, ART, 0), "--endpoint-type") == "chat"
    completions = LoadSpec(endpoint="/v1/completions")
    assert flag(aiperf_argv(completions, TARGET, ART, 0), "--endpoint-type") == "completions"
    custom = aiperf_argv(LoadSpec(endpoint="/custom/chat"), TARGET, ART, 0)
    assert flag(custom, "--custom-endpoint") == "/custom/chat"


def test_argv_streaming_flag_only_when_streaming():
    assert "--streaming" in aiperf_argv(LoadSpec(streaming=True), TARGET, ART, 0)
    assert "--streaming" not in aiperf_argv(LoadSpec(streaming=False), TARGET, ART, 0)


def test_argv_request_count_or_duration():
    argv = aiperf_argv(LoadSpec(requests_per_client=7), TARGET, ART, 0)
    assert flag(argv, "--request-count") == "7"
    assert "--benchmark-duration" not in argv
    spec = LoadSpec(requests_per_client=None, duration=90.0, timeout=12.0)
    argv = aiperf_argv(spec, TARGET, ART, 0)
    assert flag(argv, "--benchmark-duration") == "90"
    assert flag(argv, "--benchmark-grace-period") == "12"
    assert "--request-count" not in argv


def test_argv_without_count_or_duration_is_a_client_error():
    with pytest.raises(ClientError, match="requests_per_client or duration"):
        aiperf_argv(LoadSpec(requests_per_client=None), TARGET, ART, 0)


def test_closed_loop_has_concurrency_and_no_rate_unless_set():
    argv = aiperf_argv(LoadSpec(concurrency=3), TARGET, ART, 0)
    assert flag(argv, "--concurrency") == "3"
    assert "--request-rate" not in argv
    argv = aiperf_argv(LoadSpec(concurrency=3, request_rate=0.5), TARGET, ART, 0)
    assert flag(argv, "--concurrency") == "3"
    assert flag(argv, "--request-rate") == "0.5"
    assert flag(argv, "--arrival-pattern") == "constant"


def test_open_loop_splits_the_total_rate_and_sets_no_concurrency_cap():
    spec = LoadSpec(arrival="poisson", request_rate=10.0, clients=4, concurrency=1)
    argv = aiperf_argv(spec, TARGET, ART, 0)
    assert flag(argv, "--request-rate") == "2.5"
    assert flag(argv, "--arrival-pattern") == "poisson"
    # A cap would queue arrivals behind it (REFERENCE.md §3 pitfall).
    assert "--concurrency" not in argv
    constant = aiperf_argv(replace(spec, arrival="constant"), TARGET, ART, 0)
    assert flag(constant, "--arrival-pattern") == "constant"


def test_open_loop_without_a_rate_is_a_client_error():
    with pytest.raises(ClientError, match="request_rate"):
        aiperf_argv(LoadSpec(arrival="constant"), TARGET, ART, 0)


def test_argv_synthetic_tokens_and_seed_per_client():
    spec = LoadSpec(
        input_tokens=TokenDist(2048, 0), output_tokens=TokenDist(50, 5.5), seed=100, timeout=30
    )
    argv = aiperf_argv(spec, TARGET, ART, 3)
    assert flag(argv, "--synthetic-input-tokens-mean") == "2048"
    assert flag(argv, "--synthetic-input-tokens-stddev") == "0"
    assert flag(argv, "--output-tokens-mean") == "50"
    assert flag(argv, "--output-tokens-stddev") == "5.5"
    assert flag(argv, "--random-seed") == "103"
    assert flag(argv, "--request-timeout-seconds") == "30"
    extra = [argv[i + 1] for i, a in enumerate(argv) if a == "--extra-inputs"]
    assert extra == ["temperature:0", "ignore_eos:true"]
    assert "--input-file" not in argv


def test_argv_prompts_go_through_an_input_file():
    argv = aiperf_argv(LoadSpec(prompts=("hi",)), TARGET, ART, 2)
    assert flag(argv, "--input-file") == "/out/client_2/prompts.jsonl"
    assert flag(argv, "--custom-dataset-type") == "single_turn"
    assert "--synthetic-input-tokens-mean" not in argv


def test_argv_without_a_tokenizer_folder_names_the_model():
    # On a real cluster there is no local folder: aiperf resolves the model id itself.
    argv = aiperf_argv(LoadSpec(), LoadTarget("http://127.0.0.1:1", "org/model"), ART, 0)
    assert flag(argv, "--tokenizer") == "org/model"


def test_write_prompts_file_is_single_turn_jsonl(tmp_path):
    path = mod.write_prompts_file(("a b", 'say "hi"'), tmp_path / "p.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [{"text": "a b"}, {"text": 'say "hi"'}]


def test_aiperf_env_drops_pythonpath_and_offline_flags():
    env = aiperf_env(
        {"PATH": "/bin", "PYTHONPATH": "/repo", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    )
    assert env == {"PATH": "/bin"}


# -- find_aiperf ------------------------------------------------------------------------------


def make_exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No aiperf anywhere: no env, no repo venv, an empty PATH."""
    monkeypatch.delenv(mod.ENV_AIPERF, raising=False)
    monkeypatch.setattr(mod, "REPO_AIPERF", tmp_path / "no-venv" / "bin" / "aiperf")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return tmp_path


def test_find_aiperf_prefers_explicit_over_env_venv_and_path(nowhere, monkeypatch):
    explicit = make_exe(nowhere / "explicit" / "aiperf")
    env = make_exe(nowhere / "env" / "aiperf")
    venv = make_exe(nowhere / "venv" / "aiperf")
    on_path = make_exe(nowhere / "empty-path" / "aiperf")
    monkeypatch.setenv(mod.ENV_AIPERF, str(env))
    monkeypatch.setattr(mod, "REPO_AIPERF", venv)
    assert find_aiperf(str(explicit)) == str(explicit)
    assert find_aiperf() == str(env)
    monkeypatch.delenv(mod.ENV_AIPERF)
    assert find_aiperf() == str(venv)
    venv.unlink()
    assert find_aiperf() == str(on_path)


def test_find_aiperf_with_a_broken_explicit_path_does_not_fall_through(nowhere):
    make_exe(nowhere / "empty-path" / "aiperf")
    with pytest.raises(ClientError, match="--aiperf"):
        find_aiperf(str(nowhere / "missing" / "aiperf"))


def test_find_aiperf_with_a_broken_env_path_names_the_variable(nowhere, monkeypatch):
    monkeypatch.setenv(mod.ENV_AIPERF, str(nowhere / "missing"))
    with pytest.raises(ClientError, match=mod.ENV_AIPERF):
        find_aiperf()


def test_missing_aiperf_is_exit_3_and_says_make_install(nowhere):
    with pytest.raises(ClientError, match="make install") as info:
        find_aiperf()
    assert info.value.exit_code == ExitStatus.INFRA == 3


# -- attempt policy ------------------------------------------------------------------------------


def record(ok: bool, phase: str = "profiling", start_ns: int = 1) -> dict:
    rec = {
        "metadata": {
            "request_start_ns": start_ns,
            "request_end_ns": start_ns + 1000,
            "benchmark_phase": phase,
            "was_cancelled": False,
        },
        "metrics": {"request_latency": {"value": 1.0, "unit": "ms"}},
    }
    if not ok:
        rec["error"] = {"code": 503, "type": "Service Unavailable", "message": "no instances"}
    return rec


def write_attempt(directory: Path, outcomes: list[bool], truncated: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record(ok), separators=(",", ":")) for ok in outcomes]
    text = "\n".join(lines) + "\n"
    if truncated:
        text += '{"metadata":{"request_st'
    (directory / "profile_export.jsonl").write_text(text)
    return directory


def test_attempt_outcome_counts_errors_and_skips_a_truncated_line(tmp_path):
    d = write_attempt(tmp_path / "a", [True] * 7 + [False] * 3, truncated=True)
    assert attempt_outcome(d) == (7, 3)


def test_attempt_outcome_ignores_warmup_records(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    recs = [record(False, phase="warmup"), record(True), record(False)]
    (d / "profile_export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert attempt_outcome(d) == (1, 1)


def test_attempt_without_records_file_counts_nothing_and_is_rerun(tmp_path):
    assert attempt_outcome(tmp_path) == (0, 0)
    assert needs_rerun(0, 0)


def test_rerun_threshold_is_ninety_percent_failed():
    assert needs_rerun(1, 9)  # exactly 90 %
    assert needs_rerun(0, 5)
    assert not needs_rerun(2, 8)  # 80 %
    assert not needs_rerun(10, 0)


# -- the load handle against a stand-in aiperf (a real process) ---------------------------------

FAKE_AIPERF = r'''#!{python}
"""Stand-in aiperf: writes profile_export.jsonl per FAKE_PLAN; a child shares its group."""
import json, os, signal, subprocess, sys, tempfile, time
argv = sys.argv
art = argv[argv.index("--artifact-dir") + 1]
attempt = int(os.path.basename(art).split("_")[1])
count = int(argv[argv.index("--request-count") + 1]) if "--request-count" in argv else 5
plan = os.environ["FAKE_PLAN"].split(",")
mode = plan[min(attempt, len(plan) - 1)]
os.makedirs(os.path.join(art, "logs"), exist_ok=True)
# Like aiperf: a dataset folder in the temp folder that it never removes.
mmap = os.path.join(tempfile.gettempdir(), "aiperf_mmap_%d" % os.getpid())
os.makedirs(mmap)
open(os.path.join(mmap, "dataset.dat"), "w").close()
with open(os.path.join(art, "mmap.path"), "w") as f:
    f.write(mmap)
time.sleep(float(os.environ.get("FAKE_START_DELAY", "0")) * int(art.rsplit("client_", 1)[1].split("/")[0]))
if mode != "mute":
    with open(os.path.join(art, "logs", "aiperf.log"), "w") as f:
        f.write("x - system_controller - INFO - AIPerf System is PROFILING\n")
# Handlers first: the test signals as soon as child.pid exists.
interrupted = []
signal.signal(signal.SIGINT, signal.SIG_IGN if mode == "stubborn" else lambda *_: interrupted.append(1))
# The child ignores SIGINT, like a busy aiperf service: only the group sweep ends it.
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(300)"])
with open(os.path.join(art, "child.pid"), "w") as f:
    f.write(str(child.pid))
out = open(os.path.join(art, "profile_export.jsonl"), "w")
def rec(ok):
    r = {{"metadata": {{"request_start_ns": time.time_ns(), "request_end_ns": time.time_ns(),
          "benchmark_phase": "profiling", "was_cancelled": False}}, "metrics": {{}}}}
    if not ok:
        r["error"] = {{"code": 503, "type": "Service Unavailable", "message": "x"}}
    out.write(json.dumps(r, separators=(",", ":")) + "\n"); out.flush()
def on_int(*_):
    rec(True); out.close(); sys.exit(0)
if mode != "stubborn":
    signal.signal(signal.SIGINT, on_int)
    if interrupted:
        on_int()
if mode in ("hang", "stubborn"):
    rec(True)
    while True:
        time.sleep(1)
for i in range(count):
    rec(mode == "ok" or (mode == "mostly_fail" and i == 0))
out.close()
sys.exit(0 if mode != "fail" else 1)
'''


@pytest.fixture
def fake_aiperf(tmp_path):
    path = tmp_path / "bin" / "aiperf"
    path.parent.mkdir()
    path.write_text(FAKE_AIPERF.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent is gone or has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def any_alive(pids: list[int]) -> bool:
    """True if one of ``pids`` still runs 30 s from now (SIGKILL delivery and reaping are
    asynchronous; the bound is far past what a loaded machine needs, never a speed claim)."""
    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def child_pids(out: Path) -> list[int]:
    return [int(p.read_text()) for p in out.glob("client_*/attempt_*/child.pid")]


def run_load(fake_aiperf, tmp_path, monkeypatch, plan, **spec_kw) -> AiperfLoad:
    monkeypatch.setenv("FAKE_PLAN", plan)
    spec = LoadSpec(**{"clients": 2, "requests_per_client": 10, "retry_delay": 0.0, **spec_kw})
    load = AiperfLoad(spec, TARGET, tmp_path / "out", aiperf=fake_aiperf)
    load.start()
    return load


def test_mostly_failed_attempt_is_rerun_until_one_succeeds(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "fail,mostly_fail,ok", retries=3)
    assert load.wait(30)
    for client, attempts in load.attempts().items():
        assert [(a.ok, a.failed) for a in attempts] == [(0, 10), (1, 9), (10, 0)]
        assert [a.rerun for a in attempts] == [True, True, False]
        assert attempts[0].returncode == 1  # judged by records, not by the exit code
        saved = json.loads((tmp_path / f"out/client_{client}/attempt_2/attempt.json").read_text())
        assert saved["ok"] == 10 and saved["attempt"] == 2
    assert load.progress().ok == 20  # the current (last) attempt of each client
    assert not any_alive(child_pids(tmp_path / "out"))


def test_aiperf_leaves_nothing_in_the_temp_folder(fake_aiperf, tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "fail,ok", retries=2)
    assert load.wait(30)
    written = [Path(p.read_text()) for p in (tmp_path / "out").glob("client_*/attempt_*/mmap.path")]
    assert len(written) == 4  # two clients, two attempts each: every one wrote its folder
    assert all(system_tmp in p.parents for p in written)  # ...under the system temp folder
    assert list(system_tmp.iterdir()) == []  # ...and none of them is left there


def test_attempts_stop_at_the_configured_number(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "fail", retries=2, clients=1)
    assert load.wait(30)
    assert len(load.attempts()[0]) == 2
    assert sorted(p.name for p in (tmp_path / "out/client_0").iterdir()) == [
        "attempt_0",
        "attempt_1",
    ]


def test_a_good_attempt_is_not_rerun(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "ok", clients=3)
    assert load.wait(30)
    assert {c: len(a) for c, a in load.attempts().items()} == {0: 1, 1: 1, 2: 1}
    assert (tmp_path / "out/client_2/attempt_0/genai_perf.log").exists()


def wait_for_children(out: Path, n: int) -> None:
    deadline = time.monotonic() + 15
    while len(child_pids(out)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(child_pids(out)) == n


def test_stop_interrupts_with_sigint_and_starts_no_further_attempt(
    fake_aiperf, tmp_path, monkeypatch
):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "hang", retries=3)
    wait_for_children(tmp_path / "out", 2)
    load.stop()
    assert load.wait(20)
    for attempts in load.attempts().values():
        assert len(attempts) == 1 and attempts[0].stopped
        assert attempts[0].returncode == 0  # exited through its SIGINT handler
        assert attempts[0].ok >= 1  # the record written on SIGINT at least
    assert not any_alive(child_pids(tmp_path / "out"))


def test_stop_kills_an_aiperf_that_ignores_sigint_after_the_grace(
    fake_aiperf, tmp_path, monkeypatch
):
    monkeypatch.setattr(mod, "STOP_GRACE_S", 0.5)
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "stubborn", clients=1)
    wait_for_children(tmp_path / "out", 1)
    load.stop()
    assert load.wait(20)
    assert load.attempts()[0][0].returncode == -9
    assert not any_alive(child_pids(tmp_path / "out"))


def test_kill_ends_every_process_group_at_once(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "stubborn", clients=2)
    wait_for_children(tmp_path / "out", 2)
    pids = load.pids()
    assert len(pids) == 2
    load.kill()
    load.kill()  # idempotent
    assert load.wait(30)  # a bound for a hang, not a speed claim (it failed once at 5 s)
    assert not any_alive(pids + child_pids(tmp_path / "out"))


def test_progress_callback_errors_do_not_break_the_load(fake_aiperf, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PLAN", "ok")
    seen = []

    def broken(progress):
        seen.append(progress)
        raise RuntimeError("display died")

    spec = LoadSpec(clients=1, requests_per_client=4)
    load = AiperfLoad(spec, TARGET, tmp_path / "out", on_progress=broken, aiperf=fake_aiperf)
    load.start()
    assert load.wait(30)
    assert seen and seen[-1].ok == 4
    assert load.attempts()[0][0].ok == 4


def test_start_without_aiperf_raises_before_spawning(nowhere):
    load = AiperfLoad(LoadSpec(clients=1), TARGET, nowhere / "out")
    with pytest.raises(ClientError):
        load.start()
    assert not (nowhere / "out").exists()


def test_wait_sending_sees_every_client_past_start_up(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "hang", clients=2)
    try:
        assert load.wait_sending(20)
        assert load.sending() == 2
    finally:
        load.kill()


def test_wait_sending_is_false_when_clients_end_without_sending(fake_aiperf, tmp_path, monkeypatch):
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "mute", clients=1, retries=1)
    assert not load.wait_sending(20)
    assert load.sending() == 0


def test_relative_output_and_tokenizer_paths_are_made_absolute(fake_aiperf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_PLAN", "ok")
    target = LoadTarget("http://127.0.0.1:1", "m", Path("tok"))
    load = AiperfLoad(
        LoadSpec(clients=1, requests_per_client=3), target, Path("out"), aiperf=fake_aiperf
    )
    load.start()
    assert load.wait(30)
    argv = load.attempts()[0][0].argv
    assert flag(argv, "--tokenizer") == str(tmp_path / "tok")
    assert flag(argv, "--artifact-dir") == str(tmp_path / "out" / "client_0" / "attempt_0")
    assert attempt_outcome(tmp_path / "out" / "client_0" / "attempt_0") == (3, 0)


def test_wait_sending_reports_each_client_that_starts_sending(fake_aiperf, tmp_path, monkeypatch):
    # Client i writes aiperf's "PROFILING" line i × 0.6 s after it started.
    monkeypatch.setenv("FAKE_START_DELAY", "0.6")
    load = run_load(fake_aiperf, tmp_path, monkeypatch, "hang", clients=3)
    seen: list[tuple[int, int]] = []
    try:
        assert load.wait_sending(20, on_wait=lambda sending, total: seen.append((sending, total)))
    finally:
        load.kill()
    assert seen[-1] == (3, 3)
    assert seen[0][0] < 3  # the first look came before the last client was up
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert {total for _, total in seen} == {3}


def test_a_warmup_becomes_aiperfs_warmup_request_count():
    argv = aiperf_argv(LoadSpec(warmup=3), TARGET, ART, 0)
    assert argv[argv.index("--warmup-request-count") + 1] == "3"
