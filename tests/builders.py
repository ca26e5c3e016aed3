"""Builders the tests share: a TestCase whose fields a test does not care about are defaulted,
and the small legacy load the unit runs drive against a fake server."""

from __future__ import annotations

from typing import Any

from ftctl.scenario.model import Deployment, LoadSpec, Source, TestCase, TokenDist


def build_test(
    name: str = "unit",
    *,
    platform: str = "local",
    deployment: Deployment | None = None,
    source: str = "tests",
    scenario: str | None = None,
    **fields: Any,
) -> TestCase:
    """A TestCase: no loads, events or checks, no failure, unless ``fields`` give them."""
    defaults: dict[str, Any] = {
        "loads": (),
        "failure": None,
        "events": (),
        "checks": (),
        "thresholds_profile": None,
    }
    return TestCase(
        name=name,
        scenario=scenario or name,
        source=Source(source),
        description="",
        tags=(),
        platform=platform,
        deployment=deployment or Deployment(),
        **{**defaults, **fields},
    )


def small_load(**overrides: Any) -> LoadSpec:
    """A short non-streaming legacy load: 8-word prompts, 4 tokens, 5 s per attempt."""
    fields: dict[str, Any] = {
        "client": "legacy",
        "clients": 1,
        "requests_per_client": 40,
        "request_rate": 20.0,
        "retries": 0,
        "streaming": False,
        "timeout": 5.0,
        "input_tokens": TokenDist(8),
        "output_tokens": TokenDist(4),
    }
    return LoadSpec(**{**fields, **overrides})
