"""The aiperf client running the real aiperf against the loopback fake OpenAI server.

Marker ``aiperf``: needs ``.venv-aiperf`` (``make install``). aiperf takes ~8 s to start on
this machine, so each test runs few clients and few requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ftctl.clients.aiperf import AiperfLoad, find_aiperf
from ftctl.clients.base import LoadTarget
from ftctl.errors import ClientError
from ftctl.scenario.model import LoadSpec, TokenDist
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.aiperf

REPO = Path(__file__).resolve().parent.parent.parent


def _aiperf() -> str | None:
    try:
        return find_aiperf()
    except ClientError:
        return None


AIPERF = _aiperf()
if AIPERF is None and os.environ.get("CI"):  # `make test` installs aiperf
    raise RuntimeError("aiperf missing in CI: `make install` should have created .venv-aiperf")
if AIPERF is None:
    pytestmark = [pytestmark, pytest.mark.skip(reason="aiperf missing: run `make install`")]


def build_tokenizer(out: Path) -> Path:
    """A small offline byte-level BPE folder with a chat template (REFERENCE.md §6)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    words = "the quick brown fox jumps over a lazy dog model server request token".split()
    corpus = [" ".join(words[(i * 7 + k) % len(words)] for k in range(10)) for i in range(200)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
    files = {
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "model_max_length": 32768,
            "chat_template": template,
        },
        "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"},
        "config.json": {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": tok.get_vocab_size(),
        },
    }
    for name, data in files.items():
        (out / name).write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    shipped = REPO / "ftctl" / "data" / "tokenizer"
    if (shipped / "tokenizer.json").exists():
        return shipped
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture
def server():
    with FakeLLM() as s:
        yield s


def records(attempt_dir: Path) -> list[dict]:
    lines = (attempt_dir / "profile_export.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def spec(**kw) -> LoadSpec:
    base = dict(
        clients=1,
        requests_per_client=6,
        concurrency=1,
        input_tokens=TokenDist(32, 0),
        output_tokens=TokenDist(8, 0),
        retry_delay=0.2,
        timeout=10.0,
    )
    base.update(kw)
    return LoadSpec(**base)


def run(load_spec: LoadSpec, server: FakeLLM, tokenizer: Path, out: Path) -> AiperfLoad:
    target = LoadTarget(server.url, server.behavior.model, tokenizer)
    load = AiperfLoad(load_spec, target, out)
    load.start()
    return load


def when(predicate, action, timeout: float = 60.0) -> threading.Thread:
    """Run ``action`` once ``predicate`` holds (polled on a thread)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_run_without_failure_counts_match_aiperf_summary(server, tokenizer, tmp_path):
    load = run(spec(clients=2, requests_per_client=8, concurrency=2), server, tokenizer, tmp_path)
    assert load.wait_sending(120)
    sending_ns = time.time_ns()
    assert load.wait(120)
    for i in range(2):
        attempt = tmp_path / f"client_{i}" / "attempt_0"
        recs = records(attempt)
        summary = json.loads((attempt / "profile_export_aiperf.json").read_text())
        assert len(recs) == 8 == summary["request_count"]["avg"]
        assert "error_request_count" not in summary
        assert not any("error" in r for r in recs)
        assert (attempt / "genai_perf.log").stat().st_size > 0
    assert {c: [(a.ok, a.failed) for a in v] for c, v in load.attempts().items()} == {
        0: [(8, 0)],
        1: [(8, 0)],
    }
    assert len(server.served) == 16 and {s.status for s in server.served} == {200}
    firsts = [a[0].first_request_ns for a in load.attempts().values()]
    assert min(firsts) <= min(s.received_ns for s in server.served)  # sent before received
    for attempts, first in zip(load.attempts().values(), firsts, strict=True):
        # The start-up marker comes right before the first request.
        assert attempts[0].start_ns < first <= sending_ns + 1_000_000_000


def test_first_attempt_failing_every_request_gets_a_second_attempt(server, tokenizer, tmp_path):
    server.behavior.mode = "http_503"
    second = tmp_path / "client_0" / "attempt_1"
    when(second.exists, lambda: setattr(server.behavior, "mode", "ok"))
    load = run(spec(retries=3), server, tokenizer, tmp_path)
    assert load.wait(120)
    attempts = load.attempts()[0]
    assert [(a.ok, a.failed) for a in attempts] == [(0, 6), (6, 0)]
    # aiperf exits non-zero without a summary when every request failed: tolerated.
    assert attempts[0].returncode != 0
    assert not (tmp_path / "client_0" / "attempt_0" / "profile_export_aiperf.json").exists()
    errors = [r["error"]["code"] for r in records(tmp_path / "client_0" / "attempt_0")]
    assert errors == [503] * 6


def test_fault_window_failures_carry_epoch_ns_inside_the_window(server, tokenizer, tmp_path):
    server.behavior.ttft_s = 0.03
    window: dict[str, int] = {}

    def open_window() -> None:
        now = time.time_ns()
        window["from"], window["until"] = now, now + 600_000_000
        server.behavior.fail_from_ns, server.behavior.fail_until_ns = (
            window["from"],
            window["until"],
        )
        server.behavior.mode = "http_503"

    when(lambda: len(server.served) >= 5, open_window)
    load = run(spec(requests_per_client=40), server, tokenizer, tmp_path)
    assert load.wait(120)
    recs = records(tmp_path / "client_0" / "attempt_0")
    failed = [r for r in recs if "error" in r]
    server_503 = [s for s in server.served if s.status == 503]
    assert failed and len(failed) == len(server_503)
    assert len(recs) - len(failed) >= 5
    for r in failed:
        meta = r["metadata"]
        # aiperf stamps an HTTP error's end as its start (ftctl's parser knows: see
        # results.metrics.unknown_end), so only the send time can be checked: no later than the
        # window closed, and no earlier than it opened less a loopback transit.
        assert meta["request_end_ns"] == meta["request_start_ns"]
        assert window["from"] - 50_000_000 <= meta["request_start_ns"] < window["until"]
        assert r["error"]["code"] == 503
    assert len(load.attempts()[0]) == 1  # a partial outage is not rerun


def test_token_overflow_is_mostly_rejected_then_normal_prompts_succeed(server, tokenizer, tmp_path):
    # The fake counts words; 2048 tokens of aiperf's corpus are several hundred words with
    # any tokenizer here, 64 tokens far fewer than 200.
    server.behavior.max_context = 200
    overflow = run(
        spec(input_tokens=TokenDist(2048, 0), requests_per_client=5, retries=1),
        server,
        tokenizer,
        tmp_path / "overflow",
    )
    assert overflow.wait(120)
    recs = records(tmp_path / "overflow" / "client_0" / "attempt_0")
    codes = [r.get("error", {}).get("code") for r in recs]
    assert len(codes) == 5 and codes.count(400) >= 0.9 * len(codes)

    # Recovery phase with given prompts: exercises aiperf's --input-file path too.
    prompts = ("what is the model", "say hello to the server", "count to three")
    recovery = run(
        spec(prompts=prompts, requests_per_client=5),
        server,
        tokenizer,
        tmp_path / "rec",
    )
    assert recovery.wait(120)
    assert [(a.ok, a.failed) for a in recovery.attempts()[0]] == [(5, 0)]
    served_words = [s.prompt_words for s in server.served[-5:]]
    assert served_words == [4, 5, 3, 4, 5]  # the prompts, in order, cycled


def group_members(pgids: list[int]) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    return [
        int(pid)
        for pid, pgid, stat in (line.split() for line in out.splitlines())
        if int(pgid) in pgids and not stat.startswith("Z")
    ]


def test_stop_mid_run_keeps_the_records_and_leaves_no_process(server, tokenizer, tmp_path):
    server.behavior.ttft_s = 0.05
    load = run(spec(requests_per_client=None, duration=120.0), server, tokenizer, tmp_path)
    pgids = load.pids()
    deadline = time.monotonic() + 60
    while len(server.served) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(pgids)) > 2  # aiperf runs a tree of service processes
    load.stop()
    assert load.wait(30)
    members = group_members(pgids)
    deadline = time.monotonic() + 5
    while members and time.monotonic() < deadline:
        time.sleep(0.1)
        members = group_members(pgids)
    assert members == []
    attempts = load.attempts()[0]
    assert len(attempts) == 1 and attempts[0].stopped
    # aiperf flushed its exports on SIGINT: every request the server answered is recorded
    # (give or take the one in flight at the signal).
    assert len(server.served) >= 6
    assert abs(attempts[0].ok + attempts[0].failed - len(server.served)) <= 1
    assert os.path.exists(tmp_path / "client_0" / "attempt_0" / "profile_export_aiperf.json")
