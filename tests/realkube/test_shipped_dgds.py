"""Every DGD ftctl builds for a shipped scenario is stored by the real apiserver unchanged.

The real CRD prunes fields its schema does not know without an error; a pruned (or defaulted,
or changed) field here is a bug in ftctl's DGD builder, and the assertion names its path.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ftctl.platforms.kube.client import DGD_GROUP, DGD_PLURAL, DGD_VERSION
from ftctl.platforms.kube.dgd import build_dgd, role_of, set_service_env
from ftctl.scenario import load_tests
from ftctl.scenario.model import TestCase
from tests.realkube.compare import differences, merge_patch

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenario_files"
IMAGE = "registry.example/ftctl/dynamo:override-1"
RUN_ID = "realkube-20261203-000000"


def shipped_tests() -> list[TestCase]:
    """All shipped tests as `ftctl run --platform kubernetes` would load them (MoE included)."""
    tests: list[TestCase] = []
    for folder in sorted(p for p in SCENARIOS.iterdir() if p.is_dir() and p.name != "manifests"):
        tests += load_tests([folder], include_custom_build=True, platform="kubernetes")
    return tests


def with_image(test: TestCase) -> TestCase:
    """The test as `ftctl run --image IMAGE` makes it (runner.run_scenarios)."""
    return test.with_run_options(image=IMAGE)


CASES = [(t, False) for t in shipped_tests()] + [(t, True) for t in shipped_tests()]
IDS = [f"{t.source.file.split('/')[-1]}:{t.name}{'+image' if img else ''}" for t, img in CASES]


def _apply_and_read(real_kube, manifest: dict) -> dict:
    custom, ns = real_kube.custom, real_kube.namespace
    name = manifest["metadata"]["name"]
    custom.create_namespaced_custom_object(
        DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, copy.deepcopy(manifest)
    )
    try:
        return custom.get_namespaced_custom_object(DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, name)
    finally:
        custom.delete_namespaced_custom_object(DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, name)


def _assert_unchanged(sent: dict, stored: dict, what: str) -> None:
    diffs = differences(sent["spec"], stored["spec"])
    for key in ("name", "labels", "annotations"):
        diffs += differences(sent["metadata"].get(key), stored["metadata"].get(key), key)
    assert not diffs, f"{what}: the real apiserver did not store the DGD as sent:\n" + "\n".join(
        f"  {d}" for d in diffs
    )


def test_every_shipped_kubernetes_scenario_loads():
    names = {t.scenario for t, _ in CASES}
    assert {"upstream-matrix", "vllm-moe", "rolling-upgrade", "token-overflow-agg"} <= names
    assert len(CASES) >= 2 * 219


@pytest.mark.parametrize(("test", "image"), CASES, ids=IDS)
def test_shipped_dgd_is_accepted_and_stored_unchanged(real_kube, test: TestCase, image: bool):
    test = with_image(test) if image else test
    sent = build_dgd(test, RUN_ID)
    if image:
        mains = [s["extraPodSpec"]["mainContainer"] for s in sent["spec"]["services"].values()]
        assert {m["image"] for m in mains} == {IMAGE}
    stored = _apply_and_read(real_kube, sent)
    _assert_unchanged(sent, stored, f"{test.name} ({test.source.file})")


ROLLING = [t for t, image in CASES if not image and t.scenario == "rolling-upgrade"]


@pytest.mark.parametrize("test", ROLLING, ids=[t.name for t in ROLLING])
def test_rolling_upgrade_patch_is_stored_unchanged(real_kube, test: TestCase):
    custom, ns = real_kube.custom, real_kube.namespace
    sent = build_dgd(test, RUN_ID)
    name = sent["metadata"]["name"]
    custom.create_namespaced_custom_object(
        DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, copy.deepcopy(sent)
    )
    try:
        expected = sent
        for service, spec in sent["spec"]["services"].items():
            if role_of(service, spec) == "frontend":
                continue
            patch = set_service_env(expected, service, "FTCTL_ROLLOUT", "1")
            custom.patch_namespaced_custom_object(
                DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, name, patch
            )
            expected = merge_patch(expected, patch)
        stored = custom.get_namespaced_custom_object(DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, name)
    finally:
        custom.delete_namespaced_custom_object(DGD_GROUP, DGD_VERSION, ns, DGD_PLURAL, name)
    assert expected is not sent, "no worker service was patched"
    _assert_unchanged(expected, stored, f"{test.name} after the rollout patches")
