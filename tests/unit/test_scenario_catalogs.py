"""The shipped FailureCatalog and Thresholds, user catalogs, and their errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ftctl.errors import ScenarioError
from ftctl.scenario import load_catalogs, load_tests
from ftctl.scenario.catalogs import select_profile

REPO = Path(__file__).resolve().parents[2]

# REFERENCE.md §2: name → (target role, action, process, signal, backends).
UPSTREAM = {
    "none": (None, "none", None, None, ("all",)),
    "frontend": ("frontend", "terminate_process", "dynamo.frontend", "SIGINT", ("all",)),
    "frontend_pod": ("frontend", "delete_pod", None, None, ("all",)),
    "decode_worker": ("decode", "terminate_process", "dynamo.{backend}", "SIGKILL", ("all",)),
    "decode_worker_pod": ("decode", "delete_pod", None, None, ("all",)),
    "prefill_worker": ("prefill", "terminate_process", "dynamo.{backend}", "SIGKILL", ("all",)),
    "prefill_worker_pod": ("prefill", "delete_pod", None, None, ("all",)),
    "vllm_decode_engine_core": (
        "decode",
        "terminate_process",
        "VLLM::EngineCore",
        "SIGKILL",
        ("vllm",),
    ),
    "vllm_prefill_engine_core": (
        "prefill",
        "terminate_process",
        "VLLM::EngineCore",
        "SIGKILL",
        ("vllm",),
    ),
    "sglang_decode_scheduler": (
        "decode",
        "terminate_process",
        "sglang::scheduler",
        "SIGKILL",
        ("sglang",),
    ),
    "sglang_decode_detokenizer": (
        "decode",
        "terminate_process",
        "sglang::detokenizer",
        "SIGKILL",
        ("sglang",),
    ),
    "sglang_prefill_scheduler": (
        "prefill",
        "terminate_process",
        "sglang::scheduler",
        "SIGKILL",
        ("sglang",),
    ),
    "sglang_prefill_detokenizer": (
        "prefill",
        "terminate_process",
        "sglang::detokenizer",
        "SIGKILL",
        ("sglang",),
    ),
    "trtllm_decode_engine_core": (
        "decode",
        "terminate_process",
        "TRTLLM::EngineCore",
        "SIGKILL",
        ("trtllm",),
    ),
    "trtllm_prefill_engine_core": (
        "prefill",
        "terminate_process",
        "TRTLLM::EngineCore",
        "SIGKILL",
        ("trtllm",),
    ),
    "token_overflow": (None, "token_overflow", None, None, ("all",)),
}


def test_shipped_catalog_holds_every_upstream_failure():
    cat = load_catalogs()
    for name, (target, action, process, signal, backends) in UPSTREAM.items():
        f = cat.failures[name]
        assert (f.target, f.action, f.process, f.backends) == (target, action, process, backends)
        if signal:
            assert f.signal == signal


def test_shipped_catalog_is_reachable_through_the_scenario_files_symlinks():
    for name in ("failures.yaml", "thresholds.yaml"):
        link = REPO / "scenario_files" / name
        assert link.resolve() == (REPO / "ftctl" / "data" / name).resolve()


def test_prefill_failures_apply_to_disagg_only():
    cat = load_catalogs()
    for name, f in cat.failures.items():
        assert ("disagg",) == f.topologies if "prefill" in name else "agg" in f.topologies


def test_engine_subprocess_kills_cannot_apply_on_local():
    cat = load_catalogs()
    local = {n for n, f in cat.failures.items() if "local" in f.platforms}
    assert not any(("engine_core" in n or "::" in (cat.failures[n].process or "")) for n in local)


@pytest.mark.parametrize(
    ("failure", "dp", "expected"),
    [
        ("none", 2, "baseline"),
        ("decode_worker", 2, "high_availability"),
        ("decode_worker", 1, "single_worker"),
        ("token_overflow", 1, "token_overflow"),
        ("rolling_upgrade", 1, "baseline"),
    ],
)
def test_rules_pick_the_first_matching_profile(failure, dp, expected):
    cat = load_catalogs()
    got = select_profile(
        cat,
        failure=failure,
        action="x",
        backend="vllm",
        topology="agg",
        tp=1,
        dp=dp,
        decode_replicas=dp,
        platform="local",
    )
    assert got == expected


@pytest.mark.parametrize(
    ("dp", "decode_replicas", "expected"), [(1, 2, "high_availability"), (2, 1, "single_worker")]
)
def test_high_availability_is_chosen_by_decode_replicas_not_dp(dp, decode_replicas, expected):
    got = select_profile(
        load_catalogs(),
        failure="decode_worker",
        action="terminate_process",
        backend="vllm",
        topology="agg",
        tp=1,
        dp=dp,
        decode_replicas=decode_replicas,
        platform="kubernetes",
    )
    assert got == expected


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_user_thresholds_file_replaces_the_shipped_profiles(tmp_path):
    thresholds = _write(
        tmp_path,
        "th.yaml",
        """\
        apiVersion: ftctl/v1
        kind: Thresholds
        profiles:
          strict: {success_rate: {min: 0.999}, recovery_time: {max: 5s}}
        rules:
          - {profile: strict}
        """,
    )
    tests = load_tests(
        [REPO / "scenario_files/local/agg-worker-kill.yaml"], thresholds_file=thresholds
    )
    assert tests[0].thresholds_profile == "strict"
    assert [(c.kind, c.min, c.max) for c in tests[0].checks] == [
        ("fault_verified", None, None),
        ("success_rate", 0.999, None),
        ("recovery_time", None, 5.0),
    ]


def test_rule_naming_an_unknown_profile_points_at_it(tmp_path):
    path = _write(
        tmp_path,
        "th.yaml",
        """\
        apiVersion: ftctl/v1
        kind: Thresholds
        profiles:
          a: {success_rate: {min: 1}}
        rules:
          - {profile: b}
        """,
    )
    with pytest.raises(
        ScenarioError, match=r"th.yaml:6:15: rules\[0\].profile: unknown profile 'b'"
    ):
        load_catalogs(thresholds_file=path)


def test_duplicate_failure_names_in_a_catalog_are_an_error(tmp_path):
    path = _write(
        tmp_path,
        "f.yaml",
        """\
        apiVersion: ftctl/v1
        kind: FailureCatalog
        failures:
          - {name: x, action: none}
          - {name: x, action: none}
        """,
    )
    with pytest.raises(ScenarioError, match=r"f.yaml:5:12: failures\[1\].name: duplicate"):
        load_catalogs(failures_file=path)


def test_terminate_process_entry_needs_a_process(tmp_path):
    path = _write(
        tmp_path,
        "f.yaml",
        """\
        apiVersion: ftctl/v1
        kind: FailureCatalog
        failures:
          - {name: x, action: terminate_process, target: decode}
        """,
    )
    with pytest.raises(ScenarioError, match=r"failures\[0\].process: missing required field"):
        load_catalogs(failures_file=path)
