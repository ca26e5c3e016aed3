"""Scenario documents → expanded, typed TestCases (matrix × failures, events, checks)."""

from __future__ import annotations

import json
import re
import string
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from ftctl.errors import ErrorCollector
from ftctl.scenario.catalogs import profile_checks, select_profile
from ftctl.scenario.durations import duration_at
from ftctl.scenario.model import (
    FAULT_EVENT_KINDS,
    ROLES,
    Catalogs,
    Check,
    Deployment,
    Event,
    FailureType,
    LoadShape,
    LoadSpec,
    LocalOptions,
    Observe,
    Service,
    ServiceOverride,
    Source,
    TestCase,
    TokenDist,
)
from ftctl.scenario.roles import fallback_roles, manifest_replicas, manifest_roles
from ftctl.scenario.schema import validate_schema
from ftctl.scenario.yamlio import Document, did_you_mean

DEFAULT_AT = 30.0  # upstream injects 30 s into the load
FAULT_KINDS = FAULT_EVENT_KINDS
# Upstream legacy-client defaults differ from aiperf's (REFERENCE §3).
LEGACY_DEFAULTS = {"requests_per_client": 100, "retries": 1, "request_rate": 1.0}
TEMPLATE_FIELDS = ("name", "backend", "topology", "tp", "dp", "failure")
SERVER_CHECKS = ("worker_removed_after_fault", "queue_drains_after_fault", "no_throughput_collapse")
DURATION_CHECKS = (
    "recovery_time",
    "latency",
    "worker_removed_after_fault",
    "queue_drains_after_fault",
)
# A test name becomes a folder under --output-dir: one path component, never hidden or "..".
TEST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")
TEST_NAME_MAX = 200
CLUSTER_PROMPTS_MAX = 90_000  # bytes of load.prompts a Job pod's env can carry with the rest


def _tokens(value: Any, default: TokenDist) -> TokenDist:
    if value is None:
        return default
    if isinstance(value, int):
        return TokenDist(mean=value, stddev=0.0)
    return TokenDist(mean=value["mean"], stddev=float(value.get("stddev", 0.0)))


def build_load(doc: Document, path: list, name: str, spec: dict) -> LoadSpec:
    """One LoadSpec from a ``load:`` mapping; upstream legacy defaults when client is legacy."""
    if "duration" in spec and "requests_per_client" in spec:
        raise doc.error([*path, "duration"], "set requests_per_client or duration, not both")
    legacy = spec.get("client") == "legacy"
    base = LoadSpec()
    kw: dict[str, Any] = {"name": name}
    for key in ("client", "clients", "concurrency", "arrival", "temperature", "streaming"):
        if key in spec:
            kw[key] = spec[key]
    _check_cluster_fields(doc, path, spec)
    local = (doc.data.get("deployment") or {}).get("local") or {}
    kserve = isinstance(local, dict) and local.get("kserve_grpc") is True
    protocol = spec.get("protocol", "grpc" if kserve else "http")
    if protocol == "grpc" and spec.get("client", base.client) != "legacy":
        raise doc.error(
            [*path, "protocol" if "protocol" in spec else "client"],
            "protocol 'grpc' (KServe v2) is spoken by the built-in client only; set client: legacy",
        )
    if kserve and protocol != "grpc":
        raise doc.error(
            [*path, "protocol"],
            "deployment.local.kserve_grpc starts a frontend that speaks KServe gRPC only; "
            "set protocol: grpc",
        )
    kw["protocol"] = protocol
    for key in (
        "placement",
        "pods",
        "image",
        "endpoint",
        "seed",
        "retries",
        "request_rate",
        "warmup",
    ):
        if key in spec:
            kw[key] = spec[key]
        elif legacy and key in LEGACY_DEFAULTS:
            kw[key] = LEGACY_DEFAULTS[key]
    if "duration" in spec:
        kw["duration"] = duration_at(doc, [*path, "duration"], spec["duration"])
        kw["requests_per_client"] = None
        if kw["duration"] <= 0:
            raise doc.error([*path, "duration"], "must be greater than 0")
    elif "requests_per_client" in spec:
        kw["requests_per_client"] = spec["requests_per_client"]
    elif legacy:
        kw["requests_per_client"] = LEGACY_DEFAULTS["requests_per_client"]
    for key in ("retry_delay", "timeout", "start_timeout"):
        if key in spec:
            kw[key] = duration_at(doc, [*path, key], spec[key])
    for key in ("timeout", "start_timeout"):
        if kw.get(key, 1.0) <= 0:
            raise doc.error([*path, key], "must be greater than 0")
    kw["input_tokens"] = _tokens(spec.get("input_tokens"), base.input_tokens)
    kw["output_tokens"] = _tokens(spec.get("output_tokens"), base.output_tokens)
    kw["prompts"] = tuple(spec.get("prompts", ()))
    if "shape" in spec:
        kw["shape"] = _shape(doc, [*path, "shape"], spec, kw)
    shaped = kw.get("shape") is not None and kw["shape"].kind != "burst"
    if kw.get("arrival", "closed") != "closed" and "request_rate" not in spec and not shaped:
        raise doc.error([*path, "arrival"], "open-loop arrival needs request_rate (total req/s)")
    return LoadSpec(**kw)


def _check_cluster_fields(doc: Document, path: list, spec: dict) -> None:
    """``placement: cluster`` (an Indexed Job of ``pods`` pods) and the fields only it takes."""
    if spec.get("placement") != "cluster":
        for key in ("pods", "image", "start_timeout"):
            if key in spec:
                raise doc.error(
                    [*path, key], "applies to placement: cluster only (a load run as a Job)"
                )
        return
    # What the in-cluster worker cannot run yet is refused, never silently run here instead.
    if spec.get("client", LoadSpec.client) != "legacy":
        raise doc.error(
            [*path, "client" if "client" in spec else "placement"],
            "placement: cluster runs the built-in client only (aiperf in Job pods is not "
            "supported yet); set client: legacy",
        )
    if spec.get("protocol", "http") != "http":
        raise doc.error(
            [*path, "protocol"], "placement: cluster speaks HTTP to the frontend Service only"
        )
    prompts = len(json.dumps(spec.get("prompts") or []).encode())
    if prompts > CLUSTER_PROMPTS_MAX:
        # The Job pods get the load in one env value (at most 128 KiB).
        raise doc.error(
            [*path, "prompts"],
            f"{prompts} bytes of prompts: a cluster load's pods get them in one environment "
            f"variable, which carries at most about {CLUSTER_PROMPTS_MAX}; use fewer or shorter",
        )
    pods = spec.get("pods", 1)
    clients = spec.get("clients", LoadSpec.clients)
    if pods > clients:
        raise doc.error(
            [*path, "pods"],
            f"{pods} pods for {clients} clients: every Job pod runs at least one client; "
            f"set pods <= clients",
        )


def check_placement(doc: Document, platform: str) -> None:
    """A cluster load needs the kubernetes platform (``--platform`` may change it).

    Raises:
        ScenarioError: at the load's ``placement``.
    """
    if platform == "kubernetes":
        return
    data = doc.data
    entries = (
        [(["loads", name], spec) for name, spec in (data.get("loads") or {}).items()]
        if "loads" in data
        else [(["load"], data.get("load") or {})]
    )
    for path, spec in entries:
        if isinstance(spec, dict) and spec.get("placement") == "cluster":
            raise doc.error(
                [*path, "placement"],
                f"placement: cluster runs the load as Kubernetes Jobs; the {platform} platform "
                "has no cluster (use platform: kubernetes, or placement: local)",
            )


def _shape(doc: Document, path: list, spec: dict, kw: dict) -> LoadShape:
    """``load.shape`` (ramp | steps | burst) for the built-in client's open loop."""
    if spec.get("client", "aiperf") != "legacy":
        raise doc.error(
            path,
            "load shapes are followed by the built-in client (client: legacy); aiperf has no "
            "option for a ramp, steps or a burst at a time",
        )
    if kw.get("arrival", "closed") == "closed":
        raise doc.error(path, "a load shape schedules arrivals: set arrival: constant or poisson")
    shape = spec["shape"]
    if "ramp" in shape:
        ramp = shape["ramp"]
        length = duration_at(doc, [*path, "ramp", "duration"], ramp["duration"])
        if length <= 0:
            raise doc.error([*path, "ramp", "duration"], "must be greater than 0")
        return LoadShape("ramp", rate_from=ramp["from"], rate_to=ramp["to"], duration=length)
    if "steps" in shape:
        steps = []
        for i, step in enumerate(shape["steps"]):
            length = duration_at(doc, [*path, "steps", i, "duration"], step["duration"])
            if length <= 0:
                raise doc.error([*path, "steps", i, "duration"], "must be greater than 0")
            steps.append((float(step["rate"]), length))
        return LoadShape("steps", steps=tuple(steps))
    burst = shape["burst"]
    if "request_rate" not in spec:
        raise doc.error(path, "a burst comes on top of the load's request_rate: set request_rate")
    at = duration_at(doc, [*path, "burst", "at"], burst["at"])
    return LoadShape("burst", burst_requests=burst["requests"], burst_at=at)


def _loads(doc: Document) -> tuple[LoadSpec, ...]:
    data = doc.data
    if "load" in data and "loads" in data:
        raise doc.error(["loads"], "use either load: or loads:, not both", key=True)
    if "loads" in data:
        found = ErrorCollector()
        loads = []
        for name, spec in data["loads"].items():
            with found.attempt():
                loads.append(build_load(doc, ["loads", name], name, spec))
        found.raise_if_any()
        return tuple(loads)
    return (build_load(doc, ["load"], "default", data.get("load") or {}),)


def _template(doc: Document, path: list, text: str, allowed: tuple[str, ...], **values) -> str:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text)]
    except ValueError as exc:
        raise doc.error(path, f"bad template: {exc} (write {{{{ for a literal brace)") from None
    for field in fields:
        if field is not None and field not in allowed:
            hint = did_you_mean(field, list(allowed))
            raise doc.error(
                path, f"unknown placeholder '{{{field}}}'{hint}; use {', '.join(allowed)}"
            )
    try:
        return text.format(**values)
    except (ValueError, IndexError) as exc:
        raise doc.error(path, f"bad template: {exc}") from None


class _Scenario(NamedTuple):
    """What every test of one Scenario document shares."""

    doc: Document
    catalogs: Catalogs
    loads: tuple[LoadSpec, ...]
    platform: str
    tags: tuple[str, ...]
    recovery_window: float
    has_matrix: bool
    observe: Observe


class _Cell:
    """One matrix cell: backend, topology, tp, dp."""

    def __init__(self, backend: str, topology: str, tp: int, dp: int) -> None:
        self.backend, self.topology, self.tp, self.dp = backend, topology, tp, dp


def _deployment(doc: Document, cell: _Cell, base_dir: Path, platform: str) -> Deployment:
    dep = doc.data["deployment"]
    manifest = None
    if "manifest" in dep:
        rel = _template(
            doc,
            ["deployment", "manifest"],
            dep["manifest"],
            TEMPLATE_FIELDS[1:3],
            backend=cell.backend,
            topology=cell.topology,
        )
        manifest = (base_dir / rel).resolve()
        if not manifest.is_file():
            raise doc.error(["deployment", "manifest"], f"manifest not found: {manifest}")
        roles = list(manifest_roles(manifest))
        if cell.topology == "disagg" and not any(r == "prefill" for _, r in roles):
            raise doc.error(
                ["deployment", "manifest"],
                "topology disagg needs a worker with subComponentType: prefill in the manifest",
            )
        if cell.topology == "agg":
            roles = [(s, r) for s, r in roles if r != "prefill"]
    else:
        if platform == "kubernetes" and doc.data.get("platform") == "kubernetes":
            raise doc.error(["deployment"], "the kubernetes platform needs deployment.manifest")
        roles = fallback_roles(cell.backend, cell.topology)
    names = [s for s, _ in roles]
    mode = dep.get("data_parallel", "replicas")
    # As the DGD is built: dp replicas every service when dp > 1, else the manifest's count.
    declared = manifest_replicas(manifest) if manifest is not None else {}
    replicas = {
        s: (cell.dp if mode == "replicas" and cell.dp > 1 else declared.get(s, 1)) for s in names
    }
    overrides: list[tuple[str, ServiceOverride]] = []
    for key, spec in (dep.get("services") or {}).items():
        path = ["deployment", "services", key]
        if key in names:
            targets = [key]
        elif key in ROLES:
            # A role key applies to every service of that role (none in agg for prefill).
            targets = [s for s, r in roles if r == key]
        else:
            hint = did_you_mean(key, names + list(ROLES))
            raise doc.error(
                path,
                f"no service '{key}' in this deployment ({', '.join(names)}; or a role "
                f"frontend|decode|prefill){hint}",
                key=True,
            )
        ov = ServiceOverride(
            replicas=spec.get("replicas"),
            args=tuple(spec.get("args", ())),
            env=tuple((str(k), str(v)) for k, v in (spec.get("env") or {}).items()),
            image=spec.get("image"),
        )
        for target in targets:
            overrides.append((target, ov))
            if ov.replicas is not None:
                replicas[target] = ov.replicas
    local = dep.get("local") or {}
    return Deployment(
        backend=cell.backend,
        topology=cell.topology,
        tp=cell.tp,
        dp=cell.dp,
        model=dep.get("model", Deployment.model),
        manifest=manifest,
        image=dep.get("image"),
        services=tuple(Service(name=s, role=r, replicas=replicas[s]) for s, r in roles),
        overrides=tuple(overrides),
        local=LocalOptions(
            migration_limit=local.get("migration_limit", 0),
            speedup_ratio=float(local.get("speedup_ratio", 1.0)),
            restart_delay=duration_at(
                doc, ["deployment", "local", "restart_delay"], local["restart_delay"]
            )
            if "restart_delay" in local
            else 1.0,
            router_mode=local.get("router_mode"),
            kserve_grpc=bool(local.get("kserve_grpc", False)),
        ),
        max_model_len=dep.get("max_model_len"),
        data_parallel=mode,
    )


def _cell_text(cell: _Cell) -> str:
    return f"{cell.backend} {cell.topology} tp {cell.tp} dp {cell.dp}"


def _inapplicable(f: FailureType, cell: _Cell) -> str | None:
    if not f.applies_to(cell.backend):
        return f"{f.name} applies to {', '.join(f.backends)} only, not {cell.backend}"
    if cell.topology not in f.topologies:
        return f"{f.name} applies to {', '.join(f.topologies)} only, not {cell.topology}"
    return None


def _platform_skip(f: FailureType, platform: str) -> str | None:
    if platform not in f.platforms:
        return f"{f.name} cannot apply on the {platform} platform (only {', '.join(f.platforms)})"
    return None


def _resolve_services(doc: Document, path: list, names: list[str], dep: Deployment) -> tuple:
    out: list[str] = []
    known = [s.name for s in dep.services]
    for i, name in enumerate(names):
        if name in known:
            out.append(name)
        elif name in (*ROLES, "workers") and dep.services_for(name):
            out.extend(s.name for s in dep.services_for(name))
        else:
            hint = did_you_mean(name, known + list(ROLES))
            raise doc.error([*path, i], f"no service '{name}' ({', '.join(known)}){hint}")
    return tuple(dict.fromkeys(out))


def _check_pods(doc: Document, path: list, pods, services, dep: Deployment) -> None:
    replicas = {s.name: s.replicas for s in dep.services}
    for name in services:
        n = replicas.get(name, 1)
        if n == 0:
            raise doc.error(path, f"service {name} has 0 replicas: nothing to hit")
        if not isinstance(pods, str) and max(pods) >= n:
            raise doc.error(
                [*path, "pods"], f"pod index {max(pods)} out of range: {name} has {n} replica(s)"
            )


RANKED_KINDS = ("terminate_process", "stall_process")


def _ranks(doc: Document, path: list, spec: dict, kind: str) -> tuple[int, ...] | None:
    """``rank: N`` / ``ranks: [..]`` of an event or a failures: item; None = every match."""
    if "rank" in spec and "ranks" in spec:
        raise doc.error([*path, "ranks"], "set rank or ranks, not both")
    key = "rank" if "rank" in spec else "ranks" if "ranks" in spec else None
    if key is None:
        return None
    if kind not in RANKED_KINDS:
        raise doc.error(
            [*path, key],
            f"{key} picks among matching processes: only for {', '.join(RANKED_KINDS)}",
        )
    value = spec[key]
    return (value,) if isinstance(value, int) else tuple(value)


def _fault_event(
    f: FailureType, dep: Deployment, at: float, item: dict, ranks: tuple[int, ...] | None = None
) -> Event | None:
    pods = item.get("pods", (0,))
    pods = tuple(pods) if isinstance(pods, list) else pods
    services = tuple(s.name for s in dep.services_for(f.target)) if f.target else ()
    if f.action == "terminate_process":
        return Event(
            kind="terminate_process",
            services=services[:1],
            process=(f.process or "").replace("{backend}", dep.backend),
            signal=item.get("signal", f.signal),
            pods=pods,
            failure=f.name,
            at=at,
            ranks=ranks,
        )
    if f.action == "stall_process":
        return Event(
            kind="stall_process",
            services=services[:1],
            process=(f.process or "").replace("{backend}", dep.backend),
            signal="SIGSTOP",
            duration=f.duration,
            pods=pods,
            failure=f.name,
            at=at,
            ranks=ranks,
        )
    if f.action == "partition":
        return Event(
            kind="partition",
            services=services[:1],
            duration=f.duration,
            pods=pods,
            failure=f.name,
            at=at,
        )
    if f.action == "reset_connections":
        return Event(
            kind="reset_connections", services=services[:1], pods=pods, failure=f.name, at=at
        )
    if f.action == "delete_pod":
        return Event(
            kind="delete_pod", services=services[:1], force=True, pods=pods, failure=f.name, at=at
        )
    if f.action == "rolling_upgrade":
        return Event(
            kind="rolling_upgrade",
            services=services,
            timeout=f.timeout or 1800.0,
            failure=f.name,
            at=at,
        )
    return None


def _shorthand_events(
    doc: Document, items: list[tuple[FailureType, float, dict, list]], dep: Deployment, loads
) -> tuple[tuple[Event, ...], Deployment, tuple[LoadSpec, ...], str]:
    """Events for ``failures:`` / matrix failures; token overflow also changes deployment/loads."""
    names = [lo.name for lo in loads]
    overflow = [it for it in items if it[0].action == "token_overflow"]
    if overflow:
        f, _, _, path = overflow[0]
        if len(items) > 1:
            raise doc.error(path, "token_overflow cannot be combined with other failures")
        if "default" not in names:
            raise doc.error(path, "token_overflow needs the load named 'default' (load:)")
        limit = dep.max_model_len or f.max_model_len or 1024
        dep = replace(dep, max_model_len=limit)
        return (), dep, loads, "token_overflow"
    if items and "default" not in names:
        raise doc.error(items[0][3], "failures: shorthand drives the load named 'default'")
    events: list[Event] = []
    if not items:
        events += [Event(kind="start_load", load=n) for n in names]
        events += [Event(kind="wait_for_load_completion", load=n) for n in names]
        return tuple(events), dep, loads, ""
    events.append(Event(kind="start_load", load="default"))
    now = 0.0
    for f, at, item, path in sorted(items, key=lambda it: it[1]):
        if f.target and not dep.services_for(f.target):
            raise doc.error(path, f"{f.name} targets {f.target}, and this deployment has none")
        if at > now:
            events.append(Event(kind="wait", duration=at - now))
            now = at
        ranks = _ranks(doc, path[:-1], item, f.action)
        if "duration" in item:
            if f.action not in ("stall_process", "partition"):
                raise doc.error(
                    [*path[:-1], "duration"], f"{f.name} has no duration (stall or partition only)"
                )
            length = duration_at(doc, [*path[:-1], "duration"], item["duration"])
            if length <= 0:
                raise doc.error([*path[:-1], "duration"], "must be greater than 0")
            f = replace(f, duration=length)
        ev = _fault_event(f, dep, at, item, ranks)
        if ev is not None:
            _check_pods(doc, path[:-1], ev.pods, ev.services, dep)
            events.append(ev)
        if "stop_load_after" in item:
            after = duration_at(doc, [*path[:-1], "stop_load_after"], item["stop_load_after"])
            events += [Event(kind="wait", duration=after), Event(kind="stop_load", load="default")]
            now += after
    events.append(Event(kind="wait_for_load_completion", load="default"))
    return tuple(events), dep, loads, ""


def _explicit_events(doc: Document, dep: Deployment, loads, catalogs: Catalogs):
    names = [lo.name for lo in loads]
    out: list[Event] = []
    now, started = 0.0, False
    for i, spec in enumerate(doc.data["events"]):
        path = ["events", i]
        kind = spec["kind"]
        if "load" in spec and spec["load"] not in names:
            hint = did_you_mean(spec["load"], names)
            raise doc.error([*path, "load"], f"no load '{spec['load']}'{hint}")
        if kind in ("start_load", "stop_load", "wait_for_load_completion") and "load" not in spec:
            if "default" not in names:
                raise doc.error(path, f"{kind} needs load: (no load named 'default')")
        if "failure" in spec and spec["failure"] not in catalogs.failures:
            hint = did_you_mean(spec["failure"], list(catalogs.failures))
            raise doc.error([*path, "failure"], f"unknown failure '{spec['failure']}'{hint}")
        services = ()
        if "services" in spec:
            services = _resolve_services(doc, [*path, "services"], spec["services"], dep)
        service = spec.get("service")
        if service is not None:
            service = _resolve_services(doc, [*path, "service"], [service], dep)[0]
        pods = spec.get("pods", "all")
        kw: dict[str, Any] = {
            "kind": kind,
            "load": spec.get("load", "default" if "load" in kind else None),
            "services": services,
            "process": spec.get("process", "").replace("{backend}", dep.backend) or None,
            "signal": spec.get(
                "signal",
                {"terminate_process": "SIGKILL", "stall_process": "SIGSTOP"}.get(kind),
            ),
            "pods": tuple(pods) if isinstance(pods, list) else pods,
            "force": spec.get("force", False),
            "service": service,
            "pattern": spec.get("pattern"),
            "failure": spec.get("failure"),
            "ranks": _ranks(doc, path, spec, kind),
            "argv": tuple(spec.get("argv", ())),
            "expect_exit": spec.get("expect_exit"),
            "label": spec.get("label"),
        }
        for key in ("argv", "expect_exit"):
            if key in spec and kind != "run_command":
                raise doc.error([*path, key], f"{key} belongs to run_command events")
        if "label" in spec and kind != "capture_metrics":
            raise doc.error([*path, "label"], "label belongs to capture_metrics events")
        for key in ("duration", "timeout"):
            if key in spec:
                kw[key] = duration_at(doc, [*path, key], spec[key])
        if kind == "stall_process" and kw["signal"] != "SIGSTOP":
            raise doc.error([*path, "signal"], "stall_process always sends SIGSTOP, then SIGCONT")
        if kind in (*FAULT_KINDS, "run_command"):
            _check_pods(doc, path, kw["pods"], services, dep)
        if kind == "start_load":
            started = True
        if kind in FAULT_KINDS or kind == "rolling_upgrade":
            kw["at"] = now if started else None
        out.append(Event(**kw))
        if kind == "wait" and started:
            now += kw["duration"]
    return tuple(out)


def _check_platform_events(doc: Document, events, dep: Deployment, platform: str) -> None:
    """Refuse, at load time, the events the chosen platform cannot carry out."""
    roles = {s.name: s.role for s in dep.services}
    for i, event in enumerate(events):
        if event.kind == "partition":
            front = [s for s in event.services if roles.get(s) == "frontend"]
            if front:
                raise doc.error(
                    ["events", i, "services"],
                    f"a partition cuts the frontend from workers: name worker services, not "
                    f"{front[0]}",
                )
            continue
        if event.kind != "reset_connections":
            continue
        if platform == "kubernetes":
            raise doc.error(
                ["events", i, "kind"],
                "reset_connections is not available on the kubernetes platform (no tool in the "
                "Dynamo images resets a pod's sockets); use the local platform",
            )
        workers = [s for s in event.services if roles.get(s) != "frontend"]
        if workers:
            raise doc.error(
                ["events", i, "services"],
                f"the local platform resets connections into frontends only (through its "
                f"endpoint proxy); {workers[0]} is not a frontend",
            )


def _overflow_loads(loads, f_limit: int, mult: float, test: str) -> tuple[LoadSpec, ...]:
    base = next(lo for lo in loads if lo.name == "default")
    over = replace(
        base,
        name="overflow",
        input_tokens=TokenDist(mean=int(f_limit * mult), stddev=0.0),
        result_dir=f"{test}_overflow",
        retries=0,  # rejections are the expected outcome: retrying them only costs time
    )
    rec = replace(base, name="recovery", result_dir=f"{test}_recovery")
    return (over, rec)


def _checks(
    doc: Document,
    dep: Deployment,
    loads,
    events,
    catalogs: Catalogs,
    *,
    failure: FailureType | None,
    platform: str,
) -> tuple[tuple[Check, ...], str | None]:
    names = [lo.name for lo in loads]
    fault = any(e.kind in FAULT_KINDS for e in events)
    checks: list[Check] = []
    profile_name: str | None = None
    if doc.data.get("checks"):
        for i, spec in enumerate(doc.data["checks"]):
            path = ["checks", i]
            if "load" in spec and spec["load"] not in names:
                hint = did_you_mean(spec["load"], names)
                raise doc.error([*path, "load"], f"no load '{spec['load']}'{hint}")
            service = spec.get("service")
            if service is not None:
                service = _resolve_services(doc, [*path, "service"], [service], dep)[0]
            elif spec["kind"] in SERVER_CHECKS:
                # The frontend is where routing, queues and throughput are seen.
                service = next((s.name for s in dep.services if s.role == "frontend"), None)
            mx = spec.get("max")
            if mx is not None and spec["kind"] in DURATION_CHECKS:
                mx = duration_at(doc, [*path, "max"], mx)
            elif isinstance(mx, str):
                raise doc.error([*path, "max"], f"{mx!r} is not a number")
            checks.append(
                Check(
                    kind=spec["kind"],
                    load=spec.get("load"),
                    min=spec.get("min"),
                    max=mx,
                    expected=spec.get("expected"),
                    phase=spec.get("phase", "overall"),
                    of=spec.get("of", "requests"),
                    stat=spec.get("stat"),
                    service=service,
                    pattern=spec.get("pattern"),
                    metric=spec.get("name"),
                    labels=tuple(sorted((k, str(v)) for k, v in spec.get("labels", {}).items())),
                    agg=spec.get("agg"),
                    min_samples=spec.get("min_samples", 2),
                )
            )
    else:
        wanted = doc.data.get("thresholds", "auto")
        if wanted == "auto":
            profile_name = select_profile(
                catalogs,
                # A hand-written timeline that hits something is not a baseline.
                failure=failure.name
                if failure
                else (
                    "custom"
                    if any(e.kind in (*FAULT_KINDS, "rolling_upgrade") for e in events)
                    else "none"
                ),
                action=failure.action if failure else "none",
                backend=dep.backend,
                topology=dep.topology,
                tp=dep.tp,
                dp=dep.dp,
                decode_replicas=dep.decode_replicas,
                platform=platform,
            )
        elif wanted not in catalogs.profiles:
            hint = did_you_mean(wanted, list(catalogs.profiles))
            raise doc.error(["thresholds"], f"unknown threshold profile '{wanted}'{hint}")
        else:
            profile_name = wanted
        if profile_name is not None:
            profile = catalogs.profiles[profile_name]
            if profile.load is not None and profile.load not in names:
                profile = replace(profile, load=None)
            # Limits of a named load the test does not have cannot apply to it.
            profile = replace(
                profile, per_load=tuple(p for p in profile.per_load if p.load in names)
            )
            if failure is not None and failure.known_limitation:
                profile = replace(profile, recovery_time_max=None)
            checks += profile_checks(profile, server_fault=fault)
    if fault:
        # Stage 1 always applies to a process/pod fault (REFERENCE §9.9); one copy, first.
        checks = [c for c in checks if c.kind != "fault_verified"]
        checks.insert(0, Check(kind="fault_verified", source="stage1"))
    if any(e.kind == "run_command" and e.expect_exit is not None for e in events):
        # A command whose exit code was stated must have exited with it, whatever the checks.
        checks = [c for c in checks if c.kind != "command_exit"]
        checks.append(Check(kind="command_exit", source="event"))
    return tuple(checks), profile_name


def _failure(doc: Document, path: list, name: str, catalogs: Catalogs) -> FailureType | None:
    if name not in catalogs.failures:
        hint = did_you_mean(name, list(catalogs.failures))
        raise doc.error(path, f"unknown failure '{name}'{hint}")
    return catalogs.failures[name]


def tests_from_document(
    doc: Document,
    catalogs: Catalogs,
    *,
    platform: str | None = None,
    dropped: list[tuple[str, str, str]] | None = None,
) -> list[TestCase]:
    """Expand one Scenario document into TestCases (schema and semantic validation included).

    ``dropped`` gets a (failure, cell, reason) per matrix failure left out of a cell: it cannot
    exist for the cell's backend/topology, or (``failure: all``) cannot apply on the platform.

    Raises:
        ScenarioError: file:line:col: field: message.
    """
    validate_schema(doc, "Scenario")
    data = doc.data
    meta = data["metadata"]
    platform = platform or data.get("platform", "local")
    base_dir = Path(doc.file).resolve().parent
    dep_spec = data["deployment"]
    matrix = data.get("matrix")
    tags = tuple(meta.get("tags", ()))
    # Independent parts are all checked, so one pass shows every problem of the document.
    found = ErrorCollector()
    if "failures" in data and "events" in data:
        found.errors.append(
            doc.error(["events"], "use either failures: (shorthand) or events:, not both", key=True)
        )
    if matrix and "failure" in matrix and ("failures" in data or "events" in data):
        key = "failures" if "failures" in data else "events"
        found.errors.append(
            doc.error(
                [key], "matrix.failure already chooses the failure; remove this key", key=True
            )
        )
    loads: tuple[LoadSpec, ...] = ()
    with found.attempt():
        loads = _loads(doc)
    with found.attempt():
        check_placement(doc, platform)
    recovery_window = 10.0
    with found.attempt():
        recovery_window = duration_at(doc, ["recovery_window"], data.get("recovery_window", 10.0))
        if recovery_window <= 0:
            raise doc.error(["recovery_window"], "must be greater than 0")

    observe = Observe()
    with found.attempt():
        spec = data.get("observe") or {}
        observe = Observe(
            interval=duration_at(doc, ["observe", "interval"], spec.get("interval", 1.0)),
            resources=spec.get("resources", True),
        )

    # Shorthand failures (same for every cell): validated once against the catalog.
    shorthand: list[tuple[FailureType, float, dict, list]] = []
    for i, item in enumerate(data.get("failures") or []):
        with found.attempt():
            f = _failure(doc, ["failures", i, "type"], item["type"], catalogs)
            at = duration_at(doc, ["failures", i, "at"], item.get("at", DEFAULT_AT))
            if f.action != "none":
                shorthand.append((f, at, item, ["failures", i, "type"]))

    matrix = matrix or {}
    cells = [
        _Cell(b, t, p.get("tp", dep_spec.get("tp", 1)), p.get("dp", dep_spec.get("dp", 1)))
        for b in matrix.get("backend", [dep_spec.get("backend", "vllm")])
        for t in matrix.get("topology", [dep_spec.get("topology", "agg")])
        for p in matrix.get("parallel", [{}])
    ]
    matrix_at = DEFAULT_AT
    with found.attempt():
        matrix_at = duration_at(doc, ["matrix", "at"], matrix.get("at", DEFAULT_AT))
    mf = matrix.get("failure")
    listed: list[tuple[FailureType, list]] = []
    if isinstance(mf, list):
        for i, name in enumerate(mf):
            with found.attempt():
                path = ["matrix", "failure", i]
                listed.append((_failure(doc, path, name, catalogs), path))
    # What follows is built from the parts above: it can only be checked once they hold.
    found.raise_if_any()

    scenario = _Scenario(
        doc, catalogs, loads, platform, tags, recovery_window, bool(data.get("matrix")), observe
    )
    tests: list[TestCase] = []
    dropped = dropped if dropped is not None else []
    for cell in cells:
        with found.attempt():
            dep = _deployment(doc, cell, base_dir, platform)
            # (failure or None, shorthand items, skip reason)
            plans: list[tuple[FailureType | None, list, str | None]] = []
            if mf == "all":
                for f in sorted(catalogs.failures.values(), key=lambda x: x.order):
                    if not f.in_all:
                        continue
                    why = _inapplicable(f, cell) or _platform_skip(f, platform)
                    if why:
                        dropped.append((f.name, _cell_text(cell), why.removeprefix(f"{f.name} ")))
                        continue
                    plans.append((None if f.action == "none" else f, [], None))
            elif listed:
                for f, path in listed:
                    why = _inapplicable(f, cell)
                    if why:  # the matrix drops what cannot exist for this backend/topology
                        dropped.append((f.name, _cell_text(cell), why.removeprefix(f"{f.name} ")))
                        continue
                    item = (f, matrix_at, {}, path)
                    plans.append(
                        (
                            None if f.action == "none" else f,
                            [item] if f.action != "none" else [],
                            _platform_skip(f, platform),
                        )
                    )
            else:
                for f, _, _, path in shorthand:
                    why = _inapplicable(f, cell)
                    if why:
                        raise doc.error(path, why)
                skip = next((s for f, *_ in shorthand if (s := _platform_skip(f, platform))), None)
                plans.append((shorthand[0][0] if shorthand else None, shorthand, skip))
            for failure, items, skip in plans:
                if mf == "all" and failure is not None:
                    items = [(failure, matrix_at, {}, ["matrix", "failure"])]
                with found.attempt():
                    tests.append(_test_case(scenario, cell, dep, failure, items, skip))
    found.raise_if_any()
    return tests


def _test_case(scenario: _Scenario, cell: _Cell, dep, failure, items, skip) -> TestCase:
    doc, catalogs, loads, platform = (
        scenario.doc,
        scenario.catalogs,
        scenario.loads,
        scenario.platform,
    )
    data, meta = doc.data, doc.data["metadata"]
    names = [f.name for f, *_ in items] if items else ["none"]
    label = "+".join(dict.fromkeys(names))
    if "events" in data:
        labels = [e.get("failure") for e in data["events"] if e.get("failure")]
        label = "+".join(dict.fromkeys(labels)) or (
            "custom" if any(e["kind"] in FAULT_KINDS for e in data["events"]) else "none"
        )
    values = dict(
        name=meta["name"],
        backend=cell.backend,
        topology=cell.topology,
        tp=cell.tp,
        dp=cell.dp,
        failure=label,
    )
    if "test_name" in meta:
        name = _template(
            doc, ["metadata", "test_name"], meta["test_name"], TEMPLATE_FIELDS, **values
        )
    elif scenario.has_matrix:
        if cell.topology == "agg":
            name = f"{cell.backend}-agg-tp-{cell.tp}-dp-{cell.dp}-{label}"
        else:
            name = (
                f"{cell.backend}-disagg-prefill-tp-{cell.tp}-decode-tp-{cell.tp}"
                f"-dp-{cell.dp}-{label}"
            )
    else:
        name = f"{meta['name']}-{label}"
    if not TEST_NAME.fullmatch(name) or len(name) > TEST_NAME_MAX:
        raise doc.error(
            ["metadata", "test_name" if "test_name" in meta else "name"],
            f"test name {name!r} is not a safe folder name: letters, digits and _ . + = -"
            f" only, not starting with '.' or '-', at most {TEST_NAME_MAX} characters",
        )
    if "events" in data:
        events = _explicit_events(doc, dep, loads, catalogs)
        _check_platform_events(doc, events, dep, platform)
        ev_failures = [e.failure for e in events if e.failure]
        failure = catalogs.failures[ev_failures[0]] if ev_failures else None
        if failure is not None and failure.action == "none":
            failure = None
        test_loads = loads
    else:
        events, dep, test_loads, special = _shorthand_events(doc, items, dep, loads)
        if special == "token_overflow":
            test_loads = _overflow_loads(
                loads, dep.max_model_len, failure.overflow_multiplier, name
            )
            test_loads += tuple(lo for lo in loads if lo.name != "default")
            events = (
                Event(kind="start_load", load="overflow"),
                Event(kind="wait_for_load_completion", load="overflow"),
                Event(kind="start_load", load="recovery"),
                Event(kind="wait_for_load_completion", load="recovery"),
            )
    checks, profile = _checks(
        doc, dep, test_loads, events, catalogs, failure=failure, platform=platform
    )
    line = doc.locate(["metadata"])[0]
    return TestCase(
        name=name,
        scenario=meta["name"],
        source=Source(file=doc.file, line=line),
        description=meta.get("description", "").strip(),
        tags=scenario.tags,
        platform=platform,
        deployment=dep,
        loads=test_loads,
        failure=failure,
        events=events,
        checks=checks,
        thresholds_profile=profile,
        recovery_window=scenario.recovery_window,
        reports=tuple(data.get("reports", ("summary", "markdown", "timeline"))),
        skip_reason=skip,
        observe=scenario.observe,
    )
