"""Open-loop load shapes: when each arrival of a ``ramp``, ``steps`` or ``burst`` load is due.

A shape is a rate over time, r(t) req/s from the load's start. Arrivals are placed by time
rescaling: the k-th arrival of a unit-rate process (k for constant arrivals, a sum of k
exponential draws for Poisson ones) is mapped through the inverse of the cumulative rate
N(t) = ∫₀ᵗ r(s) ds, so constant arrivals of a ramp are exactly N(t_k) = k and Poisson ones
are an inhomogeneous Poisson process of intensity r(t). After its last segment a shape keeps
its last rate until the load ends (its requests or duration). A burst adds ``requests``
arrivals, all due at ``at``, to the load's ``request_rate`` stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ftctl.scenario.model import LoadShape


@dataclass(frozen=True)
class Segment:
    """Rate going linearly from ``rate_from`` to ``rate_to`` over [start_s, start_s + length_s)."""

    start_s: float
    length_s: float  # math.inf: the open-ended last segment
    rate_from: float
    rate_to: float

    def count(self, t: float) -> float:
        """Arrivals due in [start_s, start_s + t) (t within the segment)."""
        slope = (self.rate_to - self.rate_from) / self.length_s if self.length_s != math.inf else 0
        return self.rate_from * t + slope * t * t / 2

    def time_of(self, n: float) -> float:
        """The t in the segment at which ``count(t) == n``."""
        if self.length_s == math.inf or self.rate_to == self.rate_from:
            return n / self.rate_from
        slope = (self.rate_to - self.rate_from) / self.length_s
        # slope/2 t² + rate_from t − n = 0, the root in [0, length]
        disc = self.rate_from**2 + 2 * slope * n
        return (-self.rate_from + math.sqrt(max(0.0, disc))) / slope


def segments(shape: LoadShape, base_rate: float | None) -> list[Segment]:
    """The rate segments of ``shape`` (a burst's are the constant ``base_rate``)."""
    out: list[Segment] = []
    t = 0.0
    if shape.kind == "ramp":
        out.append(
            Segment(0.0, shape.duration or 0.0, shape.rate_from or 0.0, shape.rate_to or 0.0)
        )
        last = shape.rate_to or 0.0
        t = shape.duration or 0.0
    elif shape.kind == "steps":
        for rate, length in shape.steps:
            out.append(Segment(t, length, rate, rate))
            t += length
        last = shape.steps[-1][0]
    else:
        last = base_rate or 0.0
    out = [s for s in out if s.length_s > 0]
    out.append(Segment(t, math.inf, last, last))
    return out


def rate_at(shape: LoadShape, base_rate: float | None, t: float) -> float:
    """r(t) of ``shape`` in req/s (the burst itself is not a rate)."""
    for seg in segments(shape, base_rate):
        if t < seg.start_s + seg.length_s:
            frac = (t - seg.start_s) / seg.length_s if seg.length_s != math.inf else 0.0
            return seg.rate_from + (seg.rate_to - seg.rate_from) * frac
    return 0.0


def time_of(segs: list[Segment], n: float) -> float:
    """The time (s from the start) by which ``n`` arrivals are due: N⁻¹(n)."""
    done = 0.0
    for seg in segs:
        whole = seg.count(seg.length_s) if seg.length_s != math.inf else math.inf
        if n <= done + whole:
            if seg.rate_from == 0 and seg.rate_to == 0:
                return math.inf
            return seg.start_s + seg.time_of(n - done)
        done += whole
    return math.inf


def offsets(shape: LoadShape, base_rate: float | None, arrival: str, seed: int) -> Iterator[float]:
    """Every arrival's offset from the load start (s), in order; infinite.

    Constant arrivals are due at N⁻¹(0) = 0, N⁻¹(1), N⁻¹(2), … (the first at once, as the
    plain open loop sends it), Poisson ones at N⁻¹ of a unit-rate Poisson process from 0
    (seeded): the same sequence in every worker process of one load.
    """
    rng = random.Random(seed)
    segs = segments(shape, base_rate)
    burst = [shape.burst_at] * shape.burst_requests if shape.kind == "burst" else []
    level = 0.0
    pending = burst
    while True:
        due = time_of(segs, level)
        while pending and pending[0] <= due:
            yield pending.pop(0)
        if due == math.inf:
            yield from pending
            return
        yield due
        level += 1.0 if arrival != "poisson" else rng.expovariate(1.0)
