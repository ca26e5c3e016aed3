"""Scenario expansion: matrix names, roles, events, checks, token overflow, applicability."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from ftctl.errors import ScenarioError
from ftctl.scenario import load_tests
from ftctl.scenario.model import Check, Event, Service

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "scenario_files" / "kubernetes"
LOCAL = REPO / "scenario_files" / "local"

# REFERENCE.md §2, written out by hand so the expectation does not come from the catalog.
GENERIC = [
    "none",
    "frontend",
    "frontend_pod",
    "decode_worker",
    "decode_worker_pod",
    "prefill_worker",
    "prefill_worker_pod",
]
SPECIFIC = {
    "vllm": ["vllm_decode_engine_core", "vllm_prefill_engine_core"],
    "sglang": [
        "sglang_decode_scheduler",
        "sglang_decode_detokenizer",
        "sglang_prefill_scheduler",
        "sglang_prefill_detokenizer",
    ],
    "trtllm": ["trtllm_decode_engine_core", "trtllm_prefill_engine_core"],
}
PARALLEL = [(1, 1), (1, 2), (2, 1), (4, 1)]


def _upstream_names() -> set[str]:
    names = set()
    for backend in ("vllm", "sglang", "trtllm"):
        for topo in ("agg", "disagg"):
            for tp, dp in PARALLEL:
                for failure in GENERIC + SPECIFIC[backend]:
                    if topo == "agg" and "prefill" in failure:
                        continue
                    if topo == "agg":
                        names.add(f"{backend}-agg-tp-{tp}-dp-{dp}-{failure}")
                    else:
                        names.add(
                            f"{backend}-disagg-prefill-tp-{tp}-decode-tp-{tp}-dp-{dp}-{failure}"
                        )
        for topo in ("agg", "disagg"):
            names.add(f"{backend}_{topo}_token_overflow_2x")
            names.add(f"{backend}-{topo}-rolling-upgrade")
    return names


@pytest.fixture(scope="module")
def kube_tests():
    return {t.name: t for t in load_tests([KUBE])}


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    if text.startswith(BASE):
        text = BASE + textwrap.dedent(text[len(BASE) :])
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
apiVersion: ftctl/v1
kind: Scenario
metadata: {name: t}
"""


def test_kubernetes_folder_expands_to_the_upstream_matrix(kube_tests):
    expected = _upstream_names()
    assert set(kube_tests) == expected
    assert len(kube_tests) == len(expected) == 204


def test_moe_tests_appear_only_with_include_custom_build(kube_tests):
    assert not any("moe" in n for n in kube_tests)
    with_moe = {t.name for t in load_tests([KUBE], include_custom_build=True)}
    moe = with_moe - set(kube_tests)
    agg = [f for f in GENERIC + SPECIFIC["vllm"] if "prefill" not in f]
    expected = {f"vllm-moe-agg-tp-1-dp-2-{f}" for f in agg} | {
        f"vllm-moe-disagg-tp-1-dp-2-{f}" for f in GENERIC + SPECIFIC["vllm"]
    }
    assert moe == expected


def test_moe_keeps_one_replica_because_the_engine_runs_data_parallel():
    tests = load_tests([KUBE / "moe.yaml"], include_custom_build=True, keyword="agg and none")
    assert [s.replicas for s in tests[0].deployment.services] == [1, 1]
    assert tests[0].deployment.dp == 2


def test_matrix_order_follows_cells_then_catalog_order(kube_tests):
    names = list(kube_tests)
    assert names[:6] == [
        "vllm-agg-tp-1-dp-1-none",
        "vllm-agg-tp-1-dp-1-frontend",
        "vllm-agg-tp-1-dp-1-frontend_pod",
        "vllm-agg-tp-1-dp-1-decode_worker",
        "vllm-agg-tp-1-dp-1-decode_worker_pod",
        "vllm-agg-tp-1-dp-1-vllm_decode_engine_core",
    ]


def test_roles_resolve_from_the_manifest_per_backend(kube_tests):
    agg = kube_tests["trtllm-agg-tp-1-dp-1-none"].deployment
    assert agg.services == (
        Service("Frontend", "frontend", 1),
        Service("TRTLLMWorker", "decode", 1),
    )
    dis = kube_tests["sglang-disagg-prefill-tp-1-decode-tp-1-dp-2-none"].deployment
    assert dis.services == (
        Service("Frontend", "frontend", 2),
        Service("decode", "decode", 2),
        Service("prefill", "prefill", 2),
    )
    assert dis.manifest == (REPO / "scenario_files/manifests/sglang/disagg.yaml").resolve()


def test_process_kill_expands_to_start_wait_kill_and_completion(kube_tests):
    test = kube_tests["vllm-agg-tp-2-dp-1-decode_worker"]
    assert test.events == (
        Event(kind="start_load", load="default"),
        Event(kind="wait", duration=30.0),
        Event(
            kind="terminate_process",
            services=("VllmDecodeWorker",),
            process="dynamo.vllm",
            signal="SIGKILL",
            pods=(0,),
            failure="decode_worker",
            at=30.0,
        ),
        Event(kind="wait_for_load_completion", load="default"),
    )
    assert test.deployment.tp == 2


def test_backend_is_substituted_in_the_process_and_frontend_gets_sigint(kube_tests):
    kill = kube_tests["sglang-disagg-prefill-tp-1-decode-tp-1-dp-1-prefill_worker"].events[2]
    assert (kill.services, kill.process, kill.signal) == (("prefill",), "dynamo.sglang", "SIGKILL")
    front = kube_tests["trtllm-agg-tp-1-dp-1-frontend"].events[2]
    assert (front.services, front.process, front.signal) == (
        ("Frontend",),
        "dynamo.frontend",
        "SIGINT",
    )


def test_pod_delete_is_forced_on_the_target_service(kube_tests):
    ev = kube_tests["vllm-disagg-prefill-tp-1-decode-tp-1-dp-1-decode_worker_pod"].events[2]
    assert (ev.kind, ev.services, ev.force, ev.pods) == (
        "delete_pod",
        ("VllmDecodeWorker",),
        True,
        (0,),
    )


def test_threshold_rules_pick_profiles_and_stage1_is_added_for_faults(kube_tests):
    single = kube_tests["vllm-agg-tp-1-dp-1-decode_worker"]
    assert single.thresholds_profile == "single_worker"
    assert single.checks == (
        Check(kind="fault_verified", source="stage1"),
        Check(kind="success_rate", min=0.10, phase="overall", source="profile:single_worker"),
        Check(kind="recovery_time", max=180.0, source="profile:single_worker"),
    )
    ha = kube_tests["vllm-agg-tp-1-dp-2-frontend_pod"]
    assert ha.thresholds_profile == "high_availability"
    assert [(c.kind, c.min, c.max) for c in ha.checks] == [
        ("fault_verified", None, None),
        ("success_rate", 0.90, None),
        ("recovery_time", None, 60.0),
    ]
    base = kube_tests["sglang-agg-tp-1-dp-2-none"]
    assert base.thresholds_profile == "baseline"
    assert [(c.kind, c.min, c.max) for c in base.checks] == [
        ("success_rate", 1.0, None),
        ("max_errors", None, 0),
    ]
    assert base.failure is None


def test_token_overflow_runs_two_loads_against_a_1024_context(kube_tests):
    test = kube_tests["vllm_disagg_token_overflow_2x"]
    assert test.deployment.max_model_len == 1024
    assert test.deployment.tp == 2
    overflow, recovery = test.loads
    assert (overflow.name, overflow.input_tokens.mean, overflow.result_dir) == (
        "overflow",
        2048,
        "vllm_disagg_token_overflow_2x_overflow",
    )
    assert (recovery.name, recovery.input_tokens.mean, recovery.result_dir) == (
        "recovery",
        512,
        "vllm_disagg_token_overflow_2x_recovery",
    )
    for spec in test.loads:
        assert (spec.clients, spec.requests_per_client, spec.output_tokens.mean) == (3, 15, 50)
    assert [(e.kind, e.load) for e in test.events] == [
        ("start_load", "overflow"),
        ("wait_for_load_completion", "overflow"),
        ("start_load", "recovery"),
        ("wait_for_load_completion", "recovery"),
    ]
    # Both phases are judged: the oversized prompts mostly rejected, the normal ones served.
    assert [(c.kind, c.load, c.min, c.max) for c in test.checks] == [
        ("success_rate", "overflow", None, 0.10),
        ("success_rate", "recovery", 0.90, None),
    ]


def test_a_per_load_limit_of_a_load_the_test_lacks_is_dropped(tmp_path):
    path = write(tmp_path, BASE + "deployment: {backend: vllm}\nthresholds: token_overflow\n")
    (test,) = load_tests([path])
    assert test.checks == ()


def test_token_overflow_does_not_leak_its_context_limit(kube_tests):
    # REFERENCE §9.7: upstream mutated shared specs; here no other test sees max_model_len.
    leaked = [
        n for n, t in kube_tests.items() if t.deployment.max_model_len and "overflow" not in n
    ]
    assert leaked == []
    test = kube_tests["vllm_agg_token_overflow_2x"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        test.deployment.max_model_len = 1  # type: ignore[misc]


def test_rolling_upgrade_rolls_every_worker_and_stops_the_load(kube_tests):
    test = kube_tests["trtllm-disagg-rolling-upgrade"]
    assert [s.replicas for s in test.deployment.services] == [1, 2, 2]
    kinds = [(e.kind, e.duration, e.services) for e in test.events]
    assert kinds == [
        ("start_load", None, ()),
        ("wait", 30.0, ()),
        ("rolling_upgrade", None, ("TRTLLMDecodeWorker", "TRTLLMPrefillWorker")),
        ("wait", 30.0, ()),
        ("stop_load", None, ()),
        ("wait_for_load_completion", None, ()),
    ]
    assert test.events[2].timeout == 1800.0
    assert test.loads[0].duration == 3600.0 and test.loads[0].requests_per_client is None


def test_local_platform_drops_engine_kills_from_failure_all():
    names = {t.name for t in load_tests([KUBE / "matrix.yaml"], platform="local")}
    assert not any("engine_core" in n or "scheduler" in n or "detokenizer" in n for n in names)
    assert len(names) == 3 * (4 * 5 + 4 * 7)


def test_named_failure_that_cannot_apply_on_the_platform_is_skipped_with_reason(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm, topology: agg}
        failures: [{type: vllm_decode_engine_core, at: 5s}]
        """,
    )
    (test,) = load_tests([path], platform="local")
    assert test.name == "t-vllm_decode_engine_core"
    assert "local" in test.skip_reason
    (kube,) = load_tests([path], platform="kubernetes")
    assert kube.skip_reason is None


def test_matrix_failure_list_drops_inapplicable_and_skips_platform_misfits(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm}
        matrix:
          topology: [agg, disagg]
          failure: [prefill_worker, vllm_decode_engine_core]
          at: 12s
        """,
    )
    tests = load_tests([path], platform="local")
    assert [(t.name, t.skip_reason is not None) for t in tests] == [
        ("vllm-agg-tp-1-dp-1-vllm_decode_engine_core", True),
        ("vllm-disagg-prefill-tp-1-decode-tp-1-dp-1-prefill_worker", False),
        ("vllm-disagg-prefill-tp-1-decode-tp-1-dp-1-vllm_decode_engine_core", True),
    ]
    assert tests[1].events[1] == Event(kind="wait", duration=12.0)


def test_roles_come_from_a_custom_manifest(tmp_path):
    (tmp_path / "dgd.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: nvidia.com/v1alpha1
            kind: DynamoGraphDeployment
            spec:
              services:
                Web: {componentType: frontend}
                Gen: {componentType: worker, subComponentType: decode}
                Pre: {componentType: worker, subComponentType: prefill}
            """
        )
    )
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm, topology: disagg, dp: 2, manifest: dgd.yaml,
                     services: {Pre: {replicas: 3}}}
        failures: [{type: prefill_worker_pod, pods: [2]}]
        """,
    )
    (test,) = load_tests([path])
    assert test.deployment.services == (
        Service("Web", "frontend", 2),
        Service("Gen", "decode", 2),
        Service("Pre", "prefill", 3),
    )
    assert test.events[2].services == ("Pre",) and test.events[2].pods == (2,)


def test_sglang_subprocess_kills_get_no_recovery_threshold_by_default(kube_tests):
    # REFERENCE §2: killing an SGLang subprocess leaves a zombie and no restart (upstream
    # "does not expect to recover"); the main-process kill of the same graph keeps its limit.
    for failure in ("sglang_decode_scheduler", "sglang_decode_detokenizer"):
        test = kube_tests[f"sglang-agg-tp-1-dp-1-{failure}"]
        assert [c.kind for c in test.checks] == ["fault_verified", "success_rate"]
        assert "does not expect to recover" in test.failure.known_limitation
    main = kube_tests["sglang-agg-tp-1-dp-1-decode_worker"]
    assert ("recovery_time", 180.0) in [(c.kind, c.max) for c in main.checks]
    assert main.failure.known_limitation is None


def test_two_decode_replicas_at_dp_1_are_high_availability(tmp_path):
    # Upstream picks the profile by decode-worker replicas: from an override or the manifest.
    (tmp_path / "dgd.yaml").write_text(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nspec:\n  services:\n"
        "    Frontend: {componentType: frontend, replicas: 1}\n"
        "    Gen: {componentType: worker, subComponentType: decode, replicas: 2}\n"
    )
    from_manifest = write(
        tmp_path,
        BASE + "deployment: {backend: vllm, manifest: dgd.yaml}\n"
        "failures: [{type: decode_worker}]\n",
        "m.yaml",
    )
    from_override = write(
        tmp_path,
        BASE + "deployment: {backend: vllm, services: {decode: {replicas: 2}}}\n"
        "failures: [{type: decode_worker}]\n",
        "o.yaml",
    )
    for path in (from_manifest, from_override):
        (test,) = load_tests([path])
        assert test.deployment.dp == 1
        assert [s.replicas for s in test.deployment.services_for("decode")] == [2]
        assert test.thresholds_profile == "high_availability"
        assert ("recovery_time", 60.0) in [(c.kind, c.max) for c in test.checks]


def test_explicit_checks_replace_the_profile_but_keep_stage1(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm}
        failures: [{type: decode_worker, at: 1s}]
        checks:
          - {kind: latency, stat: p99, max: 2s, phase: after}
          - {kind: service_log_not_contains, service: decode, pattern: panicked}
        """,
    )
    (test,) = load_tests([path])
    assert test.thresholds_profile is None
    assert test.checks == (
        Check(kind="fault_verified", source="stage1"),
        Check(kind="latency", stat="p99", max=2.0, phase="after"),
        Check(kind="service_log_not_contains", service="VllmDecodeWorker", pattern="panicked"),
    )


def test_checks_count_attempts_when_asked_and_requests_by_default(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm}
        failures: [{type: decode_worker, at: 1s}]
        checks:
          - {kind: success_rate, min: 0.9}
          - {kind: success_rate, min: 0.8, of: attempts, phase: after}
          - {kind: max_failed_attempts, max: 20}
        """,
    )
    (test,) = load_tests([path])
    assert test.checks[1:] == (
        Check(kind="success_rate", min=0.9),
        Check(kind="success_rate", min=0.8, of="attempts", phase="after"),
        Check(kind="max_failed_attempts", max=20),
    )
    assert test.checks[1].of == "requests"


def test_a_failed_attempts_check_needs_its_max_and_of_names_a_known_count(tmp_path):
    for bad in ("{kind: max_failed_attempts}", "{kind: success_rate, min: 0.9, of: retries}"):
        path = write(
            tmp_path,
            BASE + f"deployment: {{backend: vllm}}\nchecks: [{bad}]\n",
        )
        with pytest.raises(ScenarioError):
            load_tests([path])


def test_explicit_events_resolve_roles_and_plan_times(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: sglang, topology: disagg}
        loads: {main: {clients: 2}}
        events:
          - {kind: start_load, load: main}
          - {kind: wait, duration: 250ms}
          - {kind: terminate_process, services: [workers], process: "dynamo.{backend}", pods: all}
          - {kind: wait_for_recovery, timeout: 5m}
          - {kind: wait_for_log_pattern, service: frontend, pattern: added model, timeout: 1m}
          - {kind: wait_for_load_completion, load: main}
        """,
    )
    (test,) = load_tests([path])
    assert test.name == "t-custom"
    kill = test.events[2]
    assert (kill.services, kill.process, kill.signal, kill.pods, kill.at) == (
        ("decode", "prefill"),
        "dynamo.sglang",
        "SIGKILL",
        "all",
        0.25,
    )
    assert test.events[3].timeout == 300.0
    assert test.events[4].service == "Frontend"
    assert test.checks[0] == Check(kind="fault_verified", source="stage1")


def test_legacy_client_takes_upstream_legacy_defaults(tmp_path):
    path = write(tmp_path, BASE + "deployment: {}\nload: {client: legacy}\n")
    (test,) = load_tests([path])
    spec = test.load()
    assert (spec.requests_per_client, spec.retries, spec.request_rate) == (100, 1, 1.0)
    path = write(tmp_path, BASE + "deployment: {}\n", name="b.yaml")
    spec = load_tests([path])[0].load()
    assert (spec.client, spec.clients, spec.requests_per_client, spec.retries) == (
        "aiperf",
        10,
        150,
        3,
    )


def test_duplicate_test_names_across_files_are_an_error(tmp_path):
    write(tmp_path, BASE + "deployment: {}\n", name="a.yaml")
    write(tmp_path, BASE + "deployment: {}\n", name="b.yaml")
    with pytest.raises(ScenarioError, match=r"duplicate test name 't-none' \(also from"):
        load_tests([tmp_path])


def test_folder_takes_only_scenarios_and_refuses_a_folder_without_any(tmp_path):
    with pytest.raises(ScenarioError, match="no Scenario documents in this folder"):
        load_tests([REPO / "scenario_files"])
    (tmp_path / "failures.yaml").write_text((REPO / "ftctl/data/failures.yaml").read_text())
    (tmp_path / "dgd.yaml").write_text("apiVersion: nvidia.com/v1alpha1\nkind: X\n")
    write(tmp_path, BASE + "deployment: {}\n", name="z.yaml")
    assert [t.name for t in load_tests([tmp_path])] == ["t-none"]


def test_keyword_and_custom_build_select_tests():
    tests = load_tests([KUBE], keyword="trtllm and disagg and not pod and dp-2")
    assert {t.name for t in tests} == {
        f"trtllm-disagg-prefill-tp-1-decode-tp-1-dp-2-{f}"
        for f in ["none", "frontend", "decode_worker", "prefill_worker"] + SPECIFIC["trtllm"]
    }


def test_demo_scenario_matches_the_brief():
    (test,) = load_tests([LOCAL / "demo.yaml"])
    dep = test.deployment
    assert (test.platform, dep.backend, dep.topology, dep.dp) == ("local", "vllm", "agg", 1)
    assert dep.service_for("decode").replicas == 2
    assert dep.local.migration_limit == 0
    spec = test.load()
    assert spec.client == "legacy"
    assert 30 <= spec.requests_per_client / spec.request_rate <= 50
    kill = next(e for e in test.events if e.kind == "terminate_process")
    assert (kill.at, kill.signal, kill.failure) == (15.0, "SIGKILL", "decode_worker")


def test_every_local_scenario_loads_with_short_load():
    tests = load_tests([LOCAL])
    assert len(tests) == len(list(LOCAL.glob("*.yaml")))  # one test per shipped scenario
    # A run of the folder must be able to pass: negative controls live in expected-fail/.
    assert not [t.name for t in tests if "expected-fail" in t.tags]
    (off,) = load_tests([LOCAL / "expected-fail"])
    assert "expected-fail" in off.tags
    for test in tests:
        spec = test.load()
        assert spec.client == "legacy"
        assert spec.requests_per_client / spec.request_rate <= 60, test.name
        assert test.skip_reason is None


def test_hand_written_timeline_with_a_kill_is_not_judged_as_a_baseline(tmp_path):
    path = write(
        tmp_path,
        BASE
        + """\
        deployment: {backend: vllm}
        events:
          - {kind: start_load}
          - {kind: delete_pod, services: [decode]}
          - {kind: wait_for_load_completion}
        """,
    )
    (test,) = load_tests([path])
    assert test.thresholds_profile == "single_worker"
    assert test.events[1].pods == "all" and test.events[1].at == 0.0


def test_every_local_scenario_says_what_it_tests():
    for path in sorted(LOCAL.glob("*.yaml")):
        (test,) = load_tests([path])
        assert len(test.description) >= 30, path.name


def test_the_migration_pair_differs_only_in_migration_and_judges_every_attempt():
    (on,) = load_tests([LOCAL / "agg-migration.yaml"])
    (off,) = load_tests([LOCAL / "expected-fail" / "agg-migration-off.yaml"])
    assert (on.deployment.local.migration_limit, off.deployment.local.migration_limit) == (3, 0)
    # Nothing but migration may save a request: no client retries in either.
    assert on.load().retries == off.load().retries == 0
    assert on.load() == off.load() and on.events == off.events and on.checks == off.checks
    kinds = {(c.kind, c.max) for c in on.checks}
    assert ("zero_errors", None) in kinds and ("max_failed_attempts", 0) in kinds
    assert on.deployment.service_for("decode").replicas == 2


def test_dp2_names_how_many_failed_attempts_the_surviving_replica_may_cost():
    (test,) = load_tests([LOCAL / "agg-dp2.yaml"])
    (limit,) = [c for c in test.checks if c.kind == "max_failed_attempts"]
    assert limit.max == 12 and "at most 12 failed attempts" in test.description
