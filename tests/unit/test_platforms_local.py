"""LocalPlatform's graph building: command lines, environment and ports (no Dynamo started)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftctl.platforms.local import TOKENIZER_DIR, LocalPlatform, default_services
from ftctl.scenario.model import (
    Deployment,
    LocalOptions,
    Service,
    ServiceOverride,
    TestCase,
)
from tests.builders import build_test

LOOPBACK_ENV = {
    "DYN_DISCOVERY_BACKEND": "file",
    "DYN_REQUEST_PLANE": "tcp",
    "DYN_EVENT_PLANE": "zmq",
    "DYN_TCP_RPC_HOST": "127.0.0.1",
    "DYN_EVENT_PLANE_HOST": "127.0.0.1",
    "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1",
    "DYN_SYSTEM_HOST": "127.0.0.1",
}


def make_test(deployment: Deployment, events: tuple = ()) -> TestCase:
    return build_test("unit", source="unit", deployment=deployment, events=events)


@pytest.fixture
def deployed(tmp_path):
    """Deploy with a stand-in interpreter (``sleep``) and return the replicas' specs."""
    made = []

    def deploy(deployment: Deployment, events: tuple = ()):
        # `sleep -m ...` fails at once; the long restart delay keeps it from churning.
        platform = LocalPlatform(python=shutil.which("sleep") or "/bin/sleep")
        platform.deploy(make_test(deployment, events), tmp_path / f"run{len(made)}")
        made.append(platform)
        return platform, {r.name: r for r in platform.supervisor.replicas()}

    yield deploy
    for p in made:
        p.teardown()
        assert p.leftover_processes() == []


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_agg_vllm_graph_maps_options_to_frontend_and_mocker_flags(deployed):
    dep = Deployment(
        backend="vllm",
        topology="agg",
        model="Org/model-x",
        services=(Service("Frontend", "frontend", 1), Service("VllmDecodeWorker", "decode", 2)),
        local=LocalOptions(migration_limit=3, speedup_ratio=2.5, restart_delay=30.0),
        max_model_len=1024,
    )
    platform, replicas = deployed(dep)
    fe = [r for r in replicas.values() if r.role == "frontend"]
    workers = [r for r in replicas.values() if r.role == "decode"]
    assert len(fe) == 1 and len(workers) == 2
    argv = fe[0].spec.argv
    assert argv[1:5] == ["-m", "ftctl.platforms.local_launch", "dynamo.frontend", "--"]
    assert _arg(argv, "--http-host") == "127.0.0.1"
    assert _arg(argv, "--migration-limit") == "3"
    for w in workers:
        argv = w.spec.argv
        assert argv[3] == "dynamo.vllm"
        assert _arg(argv, "--engine-type") == "vllm"
        assert _arg(argv, "--disaggregation-mode") == "agg"
        assert _arg(argv, "--model-name") == "Org/model-x"
        assert _arg(argv, "--model-path") == str(TOKENIZER_DIR)
        assert _arg(argv, "--speedup-ratio") == "2.5"
        assert _arg(argv, "--max-model-len") == "1024"
        assert 0 < int(w.spec.env["DYN_SYSTEM_PORT"]) < 32768  # Dynamo reads it as an i16
    ports = [int(_arg(fe[0].spec.argv, "--http-port"))] + [
        int(w.spec.env["DYN_SYSTEM_PORT"]) for w in workers
    ]
    assert len(set(ports)) == 3


def test_every_process_gets_the_loopback_environment_and_run_marker(deployed):
    dep = Deployment(local=LocalOptions(restart_delay=30.0), services=())
    platform, replicas = deployed(dep)
    for r in replicas.values():
        env = r.spec.env
        assert {k: env[k] for k in LOOPBACK_ENV} == LOOPBACK_ENV
        assert env["FTCTL_RUN_ID"] == platform.run_id
        assert Path(env["HOME"]).parent == Path(env["DYN_FILE_KV"]).parent
        assert "--migration-limit" not in r.spec.argv


def test_disagg_sglang_defaults_to_decode_and_prefill_services(deployed):
    dep = Deployment(
        backend="sglang", topology="disagg", dp=2, local=LocalOptions(restart_delay=30.0)
    )
    assert [(s.name, s.role, s.replicas) for s in default_services(dep)] == [
        ("Frontend", "frontend", 2),
        ("decode", "decode", 2),
        ("prefill", "prefill", 2),
    ]
    platform, replicas = deployed(dep)
    modes = sorted(
        (r.service, r.spec.argv[3], _arg(r.spec.argv, "--disaggregation-mode"))
        for r in replicas.values()
        if r.role != "frontend"
    )
    assert modes == [
        ("decode", "dynamo.sglang", "decode"),
        ("decode", "dynamo.sglang", "decode"),
        ("prefill", "dynamo.sglang", "prefill"),
        ("prefill", "dynamo.sglang", "prefill"),
    ]
    assert [p.index for p in platform.pods("prefill")] == [0, 1]


def test_service_overrides_set_replicas_args_and_env(deployed):
    override = ServiceOverride(replicas=3, args=("--block-size", "16"), env=(("DYN_LOG", "debug"),))
    dep = Deployment(
        services=(Service("Frontend", "frontend", 1), Service("VllmDecodeWorker", "decode", 1)),
        overrides=(("VllmDecodeWorker", override),),
        local=LocalOptions(restart_delay=30.0),
    )
    platform, replicas = deployed(dep)
    workers = [r for r in replicas.values() if r.service == "VllmDecodeWorker"]
    assert len(workers) == 3
    assert all(r.spec.argv[-2:] == ["--block-size", "16"] for r in workers)
    assert all(r.spec.env["DYN_LOG"] == "debug" for r in workers)


def test_only_the_workers_a_partition_names_get_a_fixed_request_port_and_a_relay(deployed):
    from ftctl.scenario.model import Event

    dep = Deployment(
        topology="disagg",
        local=LocalOptions(restart_delay=30.0),
        services=(
            Service("Frontend", "frontend", 1),
            Service("VllmDecodeWorker", "decode", 2),
            Service("VllmPrefillWorker", "prefill", 1),
        ),
    )
    cut = Event(kind="partition", services=("VllmDecodeWorker",), duration=1.0)
    platform, replicas = deployed(dep, (cut,))
    relayed = {
        r.service: int(r.spec.env["DYN_TCP_RPC_PORT"])
        for r in replicas.values()
        if "DYN_TCP_RPC_PORT" in r.spec.env
    }
    assert set(relayed) == {"VllmDecodeWorker"}
    decode = [r for r in replicas.values() if r.service == "VllmDecodeWorker"]
    assert sorted(platform._relays) == sorted(int(r.spec.env["DYN_TCP_RPC_PORT"]) for r in decode)
    plain, _ = deployed(dep)
    assert plain._relays == {}


def test_worker_records_in_the_discovery_store_are_pointed_at_their_relay(deployed):
    from ftctl.scenario.model import Event

    dep = Deployment(
        local=LocalOptions(restart_delay=30.0),
        services=(Service("Frontend", "frontend", 1), Service("VllmDecodeWorker", "decode", 1)),
    )
    cut = Event(kind="partition", services=("VllmDecodeWorker",), duration=1.0)
    platform, _ = deployed(dep, (cut,))
    ((rpc_port, relay),) = platform._relays.items()
    folder = platform._state_dir / "kv" / "v1" / "instances"
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "dynamo%2Fbackend%2Fgenerate%2F1"
    other = folder / "dynamo%2Fbackend%2Fgenerate%2F2"
    record.write_text(json.dumps({"transport": {"tcp": f"127.0.0.1:{rpc_port}/1/dynamo/b/g"}}))
    other.write_text(json.dumps({"transport": {"tcp": "127.0.0.1:1/2/dynamo/b/g"}}))
    platform._rewrite_discovery()
    assert f"127.0.0.1:{relay.address[1]}/1/" in record.read_text()
    assert "127.0.0.1:1/2/" in other.read_text()  # a record of no relayed worker is left alone
    assert platform.discovery_rewrites >= 1  # (the readiness poller may have done it first)
    assert sorted(p.name for p in folder.iterdir()) == sorted([record.name, other.name])
