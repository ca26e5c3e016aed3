"""ftctl validate / list / plan: output, JSON, selection, errors, and fast imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

KUBE = str(REPO / "scenario_files" / "kubernetes")
LOCAL = str(REPO / "scenario_files" / "local")
DEMO = str(REPO / "scenario_files" / "local" / "demo.yaml")


def test_validate_prints_ok_per_file_with_its_kind():
    out = run_cli(
        "validate",
        DEMO,
        str(REPO / "scenario_files" / "failures.yaml"),
        str(REPO / "scenario_files" / "thresholds.yaml"),
    ).stdout.splitlines()
    assert [line.split()[0] for line in out] == ["OK", "OK", "OK"]
    assert [line.rsplit(" ", 1)[1] for line in out] == [
        "(Scenario)",
        "(FailureCatalog)",
        "(Thresholds)",
    ]


def test_validate_every_shipped_document():
    files = sorted((REPO / "scenario_files").glob("*/*.yaml")) + [
        REPO / "scenario_files" / "failures.yaml",
        REPO / "scenario_files" / "thresholds.yaml",
    ]
    files = [f for f in files if "manifests" not in f.parts]
    out = run_cli("validate", *map(str, files)).stdout.splitlines()
    assert len(out) == len(files) >= 15


def test_list_prints_upstream_names_and_a_count():
    lines = run_cli("list", KUBE).stdout.splitlines()
    assert lines[-1] == "204 tests"
    out = _names(KUBE)
    assert "vllm-agg-tp-1-dp-1-decode_worker" in out
    assert "sglang-disagg-prefill-tp-2-decode-tp-2-dp-1-prefill_worker_pod" in out
    assert len(out) == 204
    assert not any("moe" in line for line in out)
    assert not any(line.startswith("sglang") and "vllm_" in line for line in out)
    assert not any("-agg-" in line and "prefill" in line for line in out)


def test_list_json_is_machine_readable_and_honours_custom_build():
    rows = json.loads(run_cli("list", KUBE, "--json", "--include-custom-build").stdout)
    assert len(rows) == 219
    moe = [r for r in rows if "custom_build" in r["tags"]]
    assert len(moe) == 15
    row = next(r for r in rows if r["name"] == "trtllm-agg-tp-4-dp-1-trtllm_decode_engine_core")
    assert (row["backend"], row["tp"], row["dp"], row["failure"], row["skipped"]) == (
        "trtllm",
        4,
        1,
        "trtllm_decode_engine_core",
        False,
    )


def test_list_k_selects_by_expression():
    out = _names(KUBE, "-k", "vllm and dp-2 and not disagg")
    assert out == [
        "vllm-agg-tp-1-dp-2-none",
        "vllm-agg-tp-1-dp-2-frontend",
        "vllm-agg-tp-1-dp-2-frontend_pod",
        "vllm-agg-tp-1-dp-2-decode_worker",
        "vllm-agg-tp-1-dp-2-decode_worker_pod",
        "vllm-agg-tp-1-dp-2-vllm_decode_engine_core",
    ]


def test_list_shows_skipped_tests_with_their_reason(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "apiVersion: ftctl/v1\nkind: Scenario\nmetadata: {name: s}\n"
        "deployment: {backend: sglang}\nfailures: [{type: sglang_decode_scheduler}]\n"
    )
    out = run_cli("list", str(path)).stdout.splitlines()
    assert out[0].startswith("s-sglang_decode_scheduler  [skipped: sglang_decode_scheduler")
    assert "local platform" in out[0]
    assert out[-1] == "1 tests (1 skipped)"


def test_list_marks_sglang_subprocess_kills_as_a_known_limitation(repo):
    out = run_cli(
        "list", str(repo / "scenario_files" / "kubernetes"), "-k", "sglang-agg-tp-1-dp-1"
    ).stdout.splitlines()
    marked = [line for line in out if "[known limitation: no recovery_time threshold]" in line]
    assert [line.split()[0] for line in marked] == [
        "sglang-agg-tp-1-dp-1-sglang_decode_scheduler",
        "sglang-agg-tp-1-dp-1-sglang_decode_detokenizer",
    ]
    assert out[-1] == "7 tests"
    assert out[-2].startswith(
        "known limitation (sglang_decode_scheduler, sglang_decode_detokenizer): "
        "upstream does not expect to recover"
    )


def test_list_failures_and_thresholds_tables():
    out = run_cli("list", "--failures", "--thresholds").stdout
    for word in ("vllm_decode_engine_core", "TRTLLM::EngineCore", "high_availability", "3m"):
        assert word in out
    assert '{"decode_replicas": {"min": 2}}  high_availability' in out
    assert "2 decode replicas at dp 1 are high availability" in out
    data = json.loads(run_cli("list", "--failures", "--thresholds", "--json").stdout)
    assert data["failures"][0]["name"] == "none"
    assert data["thresholds"]["profiles"]["single_worker"]["recovery_time_max_s"] == 180.0


def test_malformed_k_expression_exits_2():
    result = run_cli("list", KUBE, "-k", "vllm and", expect=2)
    assert "-k" in result.stderr and "Traceback" not in result.stderr


def test_unknown_platform_exits_2():
    run_cli("list", LOCAL, "--platform", "docker", expect=2)


def test_plan_shows_deployment_timeline_kill_argv_and_checks():
    out = run_cli("plan", KUBE, "-k", "vllm-agg-tp-1-dp-2-decode_worker and not pod").stdout
    assert out.count("(platform kubernetes, from") == 1  # one test
    assert out.count("kind: DynamoGraphDeployment") == 1
    for text in (
        "vllm-agg-tp-1-dp-2-decode_worker  (platform kubernetes",
        "VllmDecodeWorker       decode    replicas 2",
        "t=30s  terminate_process VllmDecodeWorker",
        "match command line containing 'dynamo.vllm'",
        'kill argv ["kill", "-s", "KILL", "<pid>"]',
        "(selected by nvidia.com/dynamo-graph-deployment-name=fault-tolerance-test, then "
        "nvidia.com/dynamo-component=VllmDecodeWorker (DynamoComponentDeployment path) or "
        "nvidia.com/selector=fault-tolerance-test-vllmdecodeworker[-ldr|-wkr] (Grove path))",
        '# operator path: DynamoComponentDeployment (nvidia.com/enable-grove: "false", set by '
        "the manifest",
        "fault_verified  (stage1)",
        "success_rate >= 0.9 (overall)  (profile:high_availability)",
        "recovery_time <= 1m  (profile:high_availability)",
    ):
        assert text in out, text


def test_plan_json_carries_the_same_facts():
    (plan,) = json.loads(
        run_cli("plan", KUBE, "-k", "sglang-agg-tp-1-dp-1-frontend_pod", "--json").stdout
    )
    delete = next(e for e in plan["events"] if e["kind"] == "delete_pod")
    assert delete["t_s"] == 30.0 and delete["grace_period_s"] == 0
    assert delete["pod_selection"][0]["service"] == "Frontend"
    frontend = json.loads(
        run_cli("plan", KUBE, "-k", "sglang-agg-tp-1-dp-1-frontend", "--json").stdout
    )
    kill = next(e for p in frontend for e in p["events"] if e["kind"] == "terminate_process")
    # SIGINT to the frontend, the argv the platform execs (ps -ww: whole command lines)
    assert kill["kill_argv"] == ["kill", "-s", "INT", "<pid>"]
    assert kill["find_argv"] == ["ps", "-ww", "-eo", "pid,args"]


def test_plan_of_the_demo_runs_without_a_platform():
    out = run_cli("plan", DEMO).stdout
    assert "demo-decode_worker  (platform local" in out
    assert "t=15s  terminate_process VllmDecodeWorker" in out


def test_plan_with_nothing_selected_exits_2():
    run_cli("plan", DEMO, "-k", "nothing-matches", expect=2)


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["list", KUBE], ["validate", DEMO]],
    ids=["version", "help", "list", "validate"],
)
def test_fast_commands_do_not_import_numpy_or_kubernetes(args):
    code = (
        "import sys\n"
        f"sys.argv = ['ftctl', *{args!r}]\n"
        "from ftctl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'kubernetes', 'matplotlib') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert result.stderr.strip().endswith("HEAVY="), result.stderr


def test_list_without_paths_uses_the_scenario_files_folders(monkeypatch):
    monkeypatch.chdir(REPO)
    out = run_cli("list").stdout.splitlines()
    assert "demo-decode_worker" in out and "vllm-agg-tp-1-dp-1-none" in out


def test_list_without_paths_elsewhere_is_a_usage_error(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    result = run_cli("list", expect=2)
    assert "give scenario files or folders" in result.stderr


def test_validate_uses_a_catalog_given_in_the_same_call(tmp_path: Path):
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(
        "apiVersion: ftctl/v1\nkind: FailureCatalog\nfailures:\n"
        "  - {name: none, action: none}\n"
        "  - {name: stall_decode, action: terminate_process, target: decode,"
        " process: dynamo.vllm, signal: SIGSTOP}\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "apiVersion: ftctl/v1\nkind: Scenario\nmetadata: {name: s}\n"
        "deployment: {backend: vllm}\nfailures: [{type: stall_decode, at: 5s}]\n"
    )
    run_cli("validate", str(scenario), expect=2)  # unknown to the shipped catalog
    out = run_cli("validate", str(catalog), str(scenario)).stdout
    assert out.count("OK ") == 2
    plan = json.loads(run_cli("plan", str(scenario), "--failures", str(catalog), "--json").stdout)
    kill = plan[0]["events"][2]
    assert (kill["signal"], kill["kill_argv"]) == ("SIGSTOP", ["kill", "-19", "<pid>"])
    dry = json.loads(
        run_cli("run", str(scenario), "--dry-run", "--failures", str(catalog), "--json").stdout
    )
    assert dry == plan


def test_run_with_storage_class_says_it_has_no_effect(tmp_path: Path):
    result = run_cli(
        "run",
        DEMO,
        "--storage-class",
        "nfs",
        "-k",
        "no-such-test",
        "--output-dir",
        str(tmp_path),
        expect=2,  # nothing selected: the note comes before any work
    )
    assert "--storage-class has no effect" in result.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--namespace", "team-a"), "--namespace"),
        (("--kubeconfig", "/nowhere"), "--kubeconfig"),
        (("--context", "c"), "--context"),
        (("--skip-service-restart",), "--skip-service-restart"),
    ],
)
def test_a_kubernetes_option_on_the_local_platform_is_a_usage_error_naming_it(tmp_path, args, flag):
    out = tmp_path / "results"
    scenario = REPO / "scenario_files" / "local" / "agg-frontend-kill.yaml"
    result = run_cli("run", str(scenario), *args, "--output-dir", str(out), expect=2)
    assert result.stderr.startswith(f"ftctl: error: {flag}: the local platform does not take")
    assert not out.exists()  # refused before anything is written or started


def test_plan_shows_a_success_rate_upper_bound_of_the_overflow_load():
    overflow = str(REPO / "scenario_files" / "kubernetes" / "token-overflow-agg.yaml")
    out = run_cli("plan", overflow, "-k", "vllm").stdout
    assert "success_rate <= 0.1 (overall) [load overflow]  (profile:token_overflow)" in out
    assert "success_rate >= 0.9 (overall) [load recovery]  (profile:token_overflow)" in out


def _names(*args):
    return [row["name"] for row in json.loads(run_cli("list", *args, "--json").stdout)]


def test_k_and_m_select_custom_build_tests_by_their_tag():
    every = set(_names(KUBE, "--include-custom-build"))
    stock = set(_names(KUBE))
    custom = every - stock
    assert custom and all("moe" in name for name in custom)
    assert set(_names(KUBE, "-m", "custom_build")) == custom
    assert set(_names(KUBE, "-k", "custom_build")) == custom
    assert set(_names(KUBE, "-m", "not custom_build")) == stock


def test_k_takes_an_upstream_node_id():
    assert _names(KUBE, "-k", "test_fault_scenario[vllm-agg-tp-1-dp-1-none]") == [
        "vllm-agg-tp-1-dp-1-none"
    ]


def test_list_says_why_tests_are_left_out(tmp_path):
    every = len(_names(KUBE, "--include-custom-build"))
    stock = len(_names(KUBE))
    out = run_cli("list", KUBE).stdout
    assert f"left out: {every - stock} tests tagged custom_build" in out
    # A matrix over vllm and sglang, agg only: each backend-specific failure is dropped from
    # the other backend's cells, the prefill ones (disagg only) from every cell.
    scenario = Path(KUBE) / "matrix.yaml"
    text = scenario.read_text()
    text = text.replace("backend: [vllm, sglang, trtllm]", "backend: [vllm, sglang]")
    text = text.replace("topology: [agg, disagg]", "topology: [agg]")
    text = text.replace("../manifests/", str(Path(KUBE).parent / "manifests") + "/")
    (tmp_path / "m.yaml").write_text(text)
    out = run_cli("list", str(tmp_path / "m.yaml")).stdout
    cells = 4  # the parallel settings per backend
    assert f"vllm_decode_engine_core: applies to vllm only, not sglang ({cells} cells)" in out, out
    assert f"prefill_worker: applies to disagg only, not agg ({2 * cells} cells)" in out


def test_dry_run_shows_the_image_and_client_type_it_would_run():
    out = run_cli("run", DEMO, "--dry-run", "--image", "my/img:1", "--client-type", "aiperf").stdout
    assert "    image: my/img:1" in out
    assert "    default: aiperf, 4 clients" in out
    plain = run_cli("run", DEMO, "--dry-run").stdout
    assert "image:" not in plain and "    default: legacy, 4 clients" in plain


def test_plan_shows_service_overrides_and_warns_on_non_loopback_binds(tmp_path):
    text = (
        Path(DEMO)
        .read_text()
        .replace(
            "    VllmDecodeWorker: {replicas: 2}",
            "    VllmDecodeWorker: {replicas: 2}\n"
            '    Frontend: {args: ["--http-host", "0.0.0.0"], env: {DYN_SYSTEM_HOST: "10.1.2.3",'
            ' DYN_LOG: "debug"}}',
        )
    )
    scenario = tmp_path / "demo.yaml"
    scenario.write_text(text)
    result = run_cli("plan", str(scenario))
    assert '      args: ["--http-host", "0.0.0.0"]' in result.stdout
    assert "      env: DYN_LOG=debug" in result.stdout
    assert "      env: DYN_SYSTEM_HOST=10.1.2.3" in result.stdout
    warned = [line for line in result.stdout.splitlines() if line.startswith("      ! ")]
    assert warned == [
        "      ! binds 0.0.0.0 (--http-host): not loopback, reachable from other machines",
        "      ! binds 10.1.2.3 (DYN_SYSTEM_HOST): not loopback, reachable from other machines",
    ]
    assert result.stderr.count("ftctl: warning: demo-decode_worker: Frontend binds") == 2
    loopback = text.replace('"0.0.0.0"', '"127.0.0.1"').replace('"10.1.2.3"', '"localhost"')
    scenario.write_text(loopback)
    assert "!" not in run_cli("plan", str(scenario)).stdout
