"""Request bodies: seeded synthetic prompts, sampled lengths, prompt lists, both endpoints."""

from __future__ import annotations

import json
import random

from ftctl.clients.prompts import PayloadMaker, sample_length
from ftctl.scenario.model import LoadSpec, TokenDist


def _bodies(spec: LoadSpec, client: int, n: int) -> list[dict]:
    maker = PayloadMaker(spec, "m", client)
    return [json.loads(maker.make()[0]) for _ in range(n)]


def test_same_seed_and_client_give_the_same_prompts():
    spec = LoadSpec(seed=3)
    assert _bodies(spec, 1, 3) == _bodies(spec, 1, 3)
    assert _bodies(spec, 1, 3) != _bodies(spec, 2, 3)


def test_output_length_with_stddev_is_sampled_and_positive():
    spec = LoadSpec(output_tokens=TokenDist(20, 5.0), streaming=False)
    lengths = [b["max_tokens"] for b in _bodies(spec, 0, 200)]
    assert len(set(lengths)) > 5 and min(lengths) >= 1
    assert 17 <= sum(lengths) / len(lengths) <= 23
    assert all(b["min_tokens"] == b["max_tokens"] for b in _bodies(spec, 0, 20))


def test_length_never_drops_below_one():
    rng = random.Random(1)
    assert min(sample_length(rng, TokenDist(1, 10.0)) for _ in range(100)) == 1


def test_prompts_list_is_sampled_instead_of_synthetic_text():
    spec = LoadSpec(prompts=("alpha", "beta"))
    contents = {b["messages"][0]["content"] for b in _bodies(spec, 0, 30)}
    assert contents == {"alpha", "beta"}


def test_completions_endpoint_sends_a_prompt_and_streaming_asks_for_usage():
    spec = LoadSpec(endpoint="/v1/completions", streaming=True, input_tokens=TokenDist(4))
    (body,) = _bodies(spec, 0, 1)
    assert "messages" not in body and len(body["prompt"].split()) == 4
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
