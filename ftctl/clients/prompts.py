"""Request payloads of the legacy client: prompts, sampled token lengths, JSON bodies."""

from __future__ import annotations

import random

import orjson

from ftctl.scenario.model import LoadSpec, TokenDist

_DIGITS = "0123456789"


def sample_length(rng: random.Random, dist: TokenDist) -> int:
    """A token length drawn from ``dist`` (normal, rounded, at least 1)."""
    if dist.stddev <= 0:
        return max(1, int(dist.mean))
    return max(1, round(rng.gauss(dist.mean, dist.stddev)))


def synthetic_prompt(rng: random.Random, words: int) -> str:
    """``words`` random digits joined by spaces (upstream: one token per word, roughly)."""
    return " ".join(rng.choices(_DIGITS, k=words))


def sample_request(spec: LoadSpec, rng: random.Random) -> tuple[str, int]:
    """The next (prompt, requested output length) of a client's seeded stream: a scenario
    prompt, or a synthetic one of a sampled length. HTTP and gRPC draw the same sequence."""
    if spec.prompts:
        prompt = rng.choice(spec.prompts)
    else:
        prompt = synthetic_prompt(rng, sample_length(rng, spec.input_tokens))
    return prompt, sample_length(rng, spec.output_tokens)


class PayloadMaker:
    """Builds request bodies for one logical client; seeded, so a run is reproducible."""

    def __init__(self, spec: LoadSpec, model: str, client: int) -> None:
        self.spec = spec
        self.model = model
        # One stream per client: the same seed gives the same prompts whatever the process split.
        self.rng = random.Random(spec.seed * 1_000_003 + client)
        self.chat = "chat" in spec.endpoint

    def make(self) -> tuple[bytes, int]:
        """One request body (JSON bytes) and its requested output length."""
        spec = self.spec
        prompt, osl = sample_request(spec, self.rng)
        body: dict = {"model": self.model}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        body.update(
            max_tokens=osl,
            min_tokens=osl,
            temperature=spec.temperature,
            ignore_eos=True,
            stream=spec.streaming,
        )
        if spec.streaming:
            # Ask for the usage chunk so output_tokens is the server's count, not ours.
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body), osl
