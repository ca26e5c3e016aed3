"""Regenerate the real aiperf fixtures under tests/data/results/aiperf/ (run it by hand).

Runs the real aiperf (``.venv-aiperf/bin/aiperf``) against the in-process fake OpenAI server
(``tests/fake_llm.py``) and keeps only the files the parser reads. Three result directories:

- ``ok``: 2 clients, no fault, every request succeeds;
- ``fault``: 3 clients; the server answers 503 in a 0.1 s window, ``events.jsonl`` carries the
  ``fault_injected`` time (= start of the window), so some requests fail;
- ``retry``: 1 client whose ``attempt_0`` failed entirely and ``attempt_1`` succeeded.

Usage: ``PYTHONPATH=. .venv/bin/python tools/make_aiperf_fixtures.py [OUT_DIR]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_llm import FakeLLM  # noqa: E402

AIPERF = os.environ.get("FTCTL_AIPERF") or str(REPO / ".venv-aiperf" / "bin" / "aiperf")
KEEP = ("profile_export.jsonl", "profile_export_aiperf.json")
MODEL = "fake-model"


def make_tokenizer(directory: Path) -> Path:
    """A small byte-level BPE tokenizer folder aiperf accepts (REFERENCE §6); no download."""
    committed = REPO / "ftctl" / "data" / "tokenizer"
    if (committed / "tokenizer.json").exists():
        return committed
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    words = "the quick brown fox jumps over the lazy dog tok token model request".split()
    tok.train_from_iterator([" ".join(words)] * 200, trainer=trainer)
    tok.save(str(directory / "tokenizer.json"))
    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "model_max_length": 4096,
                "chat_template": template,
            }
        )
    )
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>"})
    )
    (directory / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "vocab_size": 1000,
                "hidden_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "max_position_embeddings": 4096,
                "bos_token_id": 0,
                "eos_token_id": 1,
            }
        )
    )
    (directory / "generation_config.json").write_text(json.dumps({"bos_token_id": 0}))
    return directory


def run_aiperf(url: str, tokenizer: Path, artifact_dir: Path, requests: int) -> int:
    """One aiperf client process (concurrency 1, streaming), as the aiperf client runs it."""
    argv = [
        AIPERF,
        "profile",
        "--model",
        MODEL,
        "--url",
        url,
        "--endpoint-type",
        "chat",
        "--streaming",
        "--tokenizer",
        str(tokenizer),
        "--concurrency",
        "1",
        "--request-count",
        str(requests),
        "--synthetic-input-tokens-mean",
        "20",
        "--synthetic-input-tokens-stddev",
        "0",
        "--output-tokens-mean",
        "8",
        "--output-tokens-stddev",
        "0",
        "--random-seed",
        "100",
        "--ui-type",
        "none",
        "--no-server-metrics",
        "--no-gpu-telemetry",
        "--artifact-dir",
        str(artifact_dir),
    ]
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    log = artifact_dir.parent / f"{artifact_dir.name}.stdout"
    artifact_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode


def run_clients(
    url: str, tokenizer: Path, test_dir: Path, clients: int, requests: int, attempt: int = 0
) -> None:
    """Run ``clients`` aiperf processes at once, each into client_i/attempt_<attempt>."""
    threads = [
        threading.Thread(
            target=run_aiperf,
            args=(url, tokenizer, test_dir / f"client_{i}" / f"attempt_{attempt}", requests),
        )
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def prune(test_dir: Path) -> None:
    """Keep only the files the parser reads."""
    for path in sorted(test_dir.rglob("*"), reverse=True):
        if path.is_file() and path.name not in KEEP and path.name != "events.jsonl":
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def events(test_dir: Path, rows: list[dict]) -> None:
    with (test_dir / "events.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "data" / "results" / "aiperf"
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = make_tokenizer(Path(tmp) / "tokenizer")
        with FakeLLM() as server:
            server.behavior.ttft_s = 0.01
            server.behavior.itl_s = 0.005

            ok = Path(tmp) / "ok"
            t0 = time.time_ns()
            run_clients(server.url, tokenizer, ok, clients=2, requests=8)
            events(
                ok,
                [
                    {"t_ns": t0 - 2_000_000_000, "kind": "deploy_start"},
                    {"t_ns": t0 - 500_000_000, "kind": "ready"},
                    {"t_ns": t0, "kind": "load_start"},
                    {"t_ns": time.time_ns(), "kind": "load_end"},
                ],
            )

            fault = Path(tmp) / "fault"
            t0 = time.time_ns()
            # The fault window opens once the load is flowing (aiperf takes seconds to start):
            # requests in it get HTTP 503, as Dynamo answers while a killed worker is still
            # listed. (aiperf 0.13 counts a stream that ends with an SSE error event as a
            # success, so the 503 mode is the one that shows up as failed requests.)
            server.behavior.ttft_s, server.behavior.itl_s = 0.02, 0.01
            served_before = len(server.served)
            runner = threading.Thread(
                target=run_clients, args=(server.url, tokenizer, fault, 3, 30)
            )
            runner.start()
            while len(server.served) < served_before + 30 and runner.is_alive():
                time.sleep(0.005)
            t_f = time.time_ns()
            server.behavior.fail_from_ns, server.behavior.fail_until_ns = t_f, t_f + 100_000_000
            server.behavior.mode = "http_503"
            runner.join()
            first = min(s.received_ns for s in server.served[served_before:])
            events(
                fault,
                [
                    {"t_ns": t0 - 3_000_000_000, "kind": "deploy_start"},
                    {"t_ns": t0 - 1_000_000_000, "kind": "ready"},
                    {"t_ns": first, "kind": "load_start"},
                    {"t_ns": t_f, "kind": "fault_injected", "service": "decode"},
                    {
                        "t_ns": t_f + 50_000_000,
                        "kind": "fault_verified",
                        "pod_recovered_ns": server.behavior.fail_until_ns,
                    },
                    {"t_ns": time.time_ns(), "kind": "load_end"},
                ],
            )

            retry = Path(tmp) / "retry"
            server.behavior.mode = "http_503"
            server.behavior.fail_from_ns = server.behavior.fail_until_ns = 0
            run_clients(server.url, tokenizer, retry, clients=1, requests=5, attempt=0)
            server.behavior.mode = "ok"
            run_clients(server.url, tokenizer, retry, clients=1, requests=10, attempt=1)

        for name in ("ok", "fault", "retry"):
            src = Path(tmp) / name
            prune(src)
            dst = out / name
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
            print(f"{dst}: {sum(p.stat().st_size for p in dst.rglob('*') if p.is_file())} bytes")


if __name__ == "__main__":
    main()
