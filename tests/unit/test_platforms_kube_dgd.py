"""Building the DynamoGraphDeployment from a test: generated, templated, overridden, on a copy."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml

from ftctl.errors import ScenarioError
from ftctl.platforms.kube.dgd import build_dgd, dns_name, role_of, set_flag, set_service_env
from ftctl.scenario.model import Deployment, ServiceOverride, TestCase
from tests.builders import build_test


def _test(**dep) -> TestCase:
    return build_test(
        dep.pop("name", "vllm-agg-tp-1-dp-1-decode_worker"),
        scenario="vllm agg",
        source="x.yaml",
        platform="kubernetes",
        deployment=Deployment(**dep),
    )


def _args(svc: dict) -> list[str]:
    return svc["extraPodSpec"]["mainContainer"]["args"]


TEMPLATE = {
    "apiVersion": "nvidia.com/v1alpha1",
    "kind": "DynamoGraphDeployment",
    "metadata": {"name": "vllm-disagg"},
    "spec": {
        "services": {
            "Frontend": {"componentType": "frontend", "replicas": 1},
            "VllmDecodeWorker": {
                "componentType": "worker",
                "subComponentType": "decode",
                "replicas": 1,
                "resources": {"limits": {"gpu": "1"}},
                "extraPodSpec": {
                    "mainContainer": {
                        "image": "old",
                        "command": ["/bin/sh", "-c"],
                        "args": [
                            "python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B --is-decode-worker"
                        ],
                    }
                },
            },
            "VllmPrefillWorker": {
                "componentType": "worker",
                "subComponentType": "prefill",
                "replicas": 1,
                "extraPodSpec": {
                    "mainContainer": {
                        "image": "old",
                        "args": ["--model", "Qwen/Qwen3-0.6B", "--is-prefill-worker"],
                    }
                },
            },
        }
    },
}


def test_generated_agg_graph_has_frontend_and_decode_worker_with_run_labels():
    dgd = build_dgd(_test(), run_id="r1")
    services = dgd["spec"]["services"]
    assert set(services) == {"Frontend", "VllmDecodeWorker"}
    assert services["Frontend"]["componentType"] == "frontend"
    assert _args(services["VllmDecodeWorker"])[:2] == ["--model", "Qwen/Qwen3-0.6B"]
    assert dgd["metadata"]["name"] == "ftctl-vllm-agg"
    assert dgd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ftctl"
    assert dgd["metadata"]["labels"]["ftctl.io/run-id"] == "r1"
    assert dgd["metadata"]["labels"]["ftctl.io/test"] == "vllm-agg-tp-1-dp-1-decode_worker"


def test_dp_sets_replicas_and_tp_sets_flag_and_gpu_limit():
    dgd = build_dgd(_test(dp=2, tp=4, topology="disagg"), run_id="r")
    services = dgd["spec"]["services"]
    assert {s["replicas"] for s in services.values()} == {2}
    for name in ("VllmDecodeWorker", "VllmPrefillWorker"):
        args = _args(services[name])
        assert args[args.index("--tensor-parallel-size") + 1] == "4"
        assert services[name]["resources"]["limits"]["gpu"] == "4"


def test_sglang_uses_its_own_service_names_and_tp_flag():
    dgd = build_dgd(_test(backend="sglang", topology="disagg", tp=2), run_id="r")
    assert set(dgd["spec"]["services"]) == {"Frontend", "decode", "prefill"}
    args = _args(dgd["spec"]["services"]["prefill"])
    assert args[args.index("--tp") + 1] == "2"
    assert args[args.index("--disaggregation-mode") + 1] == "prefill"


def test_template_is_copied_not_mutated_and_shell_args_stay_quoted(tmp_path: Path):
    path = tmp_path / "disagg.yaml"
    path.write_text(yaml.safe_dump(TEMPLATE))
    pristine = copy.deepcopy(TEMPLATE)
    test = _test(
        topology="disagg",
        manifest=path,
        image="registry/img:1",
        max_model_len=1024,
        model="org/model with space",
        overrides=(
            ("VllmPrefillWorker", ServiceOverride(replicas=3, env=(("DYN_LOG", "debug"),))),
        ),
    )
    dgd = build_dgd(test, run_id="r")
    assert yaml.safe_load(path.read_text()) == pristine
    decode = dgd["spec"]["services"]["VllmDecodeWorker"]
    tokens = shlex.split(_args(decode)[0])
    assert tokens[tokens.index("--model") + 1] == "org/model with space"
    assert tokens[tokens.index("--max-model-len") + 1] == "1024"
    assert decode["extraPodSpec"]["mainContainer"]["image"] == "registry/img:1"
    prefill = dgd["spec"]["services"]["VllmPrefillWorker"]
    assert prefill["replicas"] == 3
    assert prefill["envs"] == [{"name": "DYN_LOG", "value": "debug"}]
    assert dgd["metadata"]["name"] == "vllm-disagg"
    # Building twice gives the same result: nothing leaked between builds.
    assert (
        build_dgd(_test(topology="disagg", manifest=path), run_id="r")["spec"]["services"][
            "VllmDecodeWorker"
        ]["extraPodSpec"]["mainContainer"]["args"]
        == TEMPLATE["spec"]["services"]["VllmDecodeWorker"]["extraPodSpec"]["mainContainer"]["args"]
    )


def test_template_that_is_not_a_dgd_names_the_file(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Pod\nspec: {}\n")
    with pytest.raises(ScenarioError, match="bad.yaml"):
        build_dgd(_test(manifest=path), run_id="r")


def test_roles_come_from_component_types_then_names():
    assert role_of("X", {"componentType": "frontend"}) == "frontend"
    assert role_of("X", {"componentType": "worker", "subComponentType": "prefill"}) == "prefill"
    assert role_of("X", {"componentType": "worker"}) == "decode"
    assert role_of("VllmPrefillWorker", {}) == "prefill"


def test_set_flag_replaces_both_spellings_and_appends_when_absent():
    assert set_flag(["--tp", "1"], "--tp", "2") == ["--tp", "2"]
    assert set_flag(["--tp=1"], "--tp", "2") == ["--tp=2"]
    assert set_flag([], "--tp", "2") == ["--tp", "2"]


def test_rollout_patch_sets_one_env_and_keeps_the_others():
    manifest = {"spec": {"services": {"W": {"envs": [{"name": "A", "value": "1"}]}}}}
    patch = set_service_env(manifest, "W", "FTCTL_ROLLOUT", "7")
    assert patch["spec"]["services"]["W"]["envs"] == [
        {"name": "A", "value": "1"},
        {"name": "FTCTL_ROLLOUT", "value": "7"},
    ]


def test_dns_name_is_a_valid_label():
    assert dns_name("vllm_Agg TP-1!!", 63) == "vllm-agg-tp-1"
    assert len(dns_name("x" * 100, 52)) == 52


def test_dry_run_plan_shows_the_dgd_and_the_pods_each_fault_hits():
    from ftctl.platforms.kubernetes import dry_run_plan
    from ftctl.scenario.model import Event

    test = _test(dp=2)
    test = TestCase(
        **{
            **test.__dict__,
            "events": (
                Event(
                    kind="terminate_process",
                    services=("VllmDecodeWorker",),
                    process="dynamo.vllm",
                    signal="SIGKILL",
                    pods="random",
                ),
                Event(kind="delete_pod", services=("Frontend",), force=True, pods=(1,)),
            ),
        }
    )
    text = dry_run_plan(test)
    manifest = yaml.safe_load(text)
    assert manifest["spec"]["services"]["VllmDecodeWorker"]["replicas"] == 2
    assert (
        "# terminate_process 'dynamo.vllm' with SIGKILL: service VllmDecodeWorker, "
        "1 random pod of 2" in text
    )
    assert "# delete_pod (force): service Frontend, pod index 1" in text


def test_kubernetes_platform_implements_every_platform_method():
    from ftctl.platforms.base import Platform
    from ftctl.platforms.kubernetes import KubernetesPlatform

    wanted = {n for n in vars(Platform) if not n.startswith("_")} - {"name"}
    assert wanted <= set(dir(KubernetesPlatform))
    assert KubernetesPlatform.name == "kubernetes"


def test_a_users_manifest_without_the_grove_annotation_is_not_given_one(tmp_path: Path):
    from ftctl.platforms.kubernetes import dry_run_plan

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(TEMPLATE))
    test = _test(topology="disagg", manifest=path)
    assert "annotations" not in build_dgd(test, run_id="r")["metadata"]
    assert "# operator path: the operator's default (Grove" in dry_run_plan(test)
    # ftctl's own generated manifest chooses the DynamoComponentDeployment path, and says so.
    generated = _test()
    assert build_dgd(generated, run_id="r")["metadata"]["annotations"] == {
        "nvidia.com/enable-grove": "false"
    }
    assert "set by ftctl's generated manifest" in dry_run_plan(generated)
