"""``ftctl plan``: the resolved timeline of each test (what would be deployed, hit, checked)."""

from __future__ import annotations

import json
import signal as _signal
from pathlib import Path
from typing import Any

from ftctl import layout
from ftctl.commands import Output
from ftctl.errors import UsageError
from ftctl.platforms.kube.netpol import LABEL_PARTITION, partition_policy
from ftctl.platforms.kube.procs import PS_ARGV, STAT_ARGV, kill_argv, probe_argv
from ftctl.scenario import load_tests
from ftctl.scenario.durations import format_duration
from ftctl.scenario.model import FAULT_EVENT_KINDS, Check, Event, LoadSpec, TestCase
from ftctl.scenario.yamlio import display_path

BLOCKING = (
    "wait_for_recovery",
    "wait_for_log_pattern",
    "rolling_upgrade",
    "wait_for_load_completion",
)


def _signal_number(name: str | None) -> int:
    return int(getattr(_signal, name or "SIGKILL", _signal.SIGKILL))


def _load_json(spec: LoadSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "client": spec.client,
        "clients": spec.clients,
        "requests_per_client": spec.requests_per_client,
        "duration_s": spec.duration,
        "concurrency": spec.concurrency,
        "request_rate": spec.request_rate,
        "arrival": spec.arrival,
        "input_tokens": {"mean": spec.input_tokens.mean, "stddev": spec.input_tokens.stddev},
        "output_tokens": {"mean": spec.output_tokens.mean, "stddev": spec.output_tokens.stddev},
        "streaming": spec.streaming,
        "retries": spec.retries,
        "retry_delay_s": spec.retry_delay,
        "timeout_s": spec.timeout,
        "placement": spec.placement,
        "pods": spec.pods if spec.placement == "cluster" else None,
        "result_dir": spec.result_dir,
        "shape": _shape_text(spec),
        "warmup": spec.warmup,
    }


def _shape_text(spec: LoadSpec) -> str | None:
    shape = spec.shape
    if shape is None:
        return None
    if shape.kind == "ramp":
        return (
            f"ramp {shape.rate_from:g} -> {shape.rate_to:g} req/s over "
            f"{format_duration(shape.duration or 0)}, then {shape.rate_to:g} req/s"
        )
    if shape.kind == "steps":
        steps = ", ".join(f"{rate:g} req/s for {format_duration(d)}" for rate, d in shape.steps)
        return f"steps {steps}, then {shape.steps[-1][0]:g} req/s"
    return f"burst of {shape.burst_requests} requests at {format_duration(shape.burst_at)}"


def _pods_text(pods, service: str, replicas: int) -> str:
    if pods == "all":
        return f"all {replicas} pod(s) of {service}"
    if pods == "random":
        return f"one random pod of {service} (of {replicas})"
    return f"pod index {', '.join(map(str, pods))} of {service} (of {replicas})"


def _event_json(ev: Event, t: float | None, test: TestCase) -> dict[str, Any]:
    out: dict[str, Any] = {"t_s": t, "kind": ev.kind}
    for key in ("load", "duration", "timeout", "service", "pattern", "failure"):
        value = getattr(ev, key)
        if value is not None:
            out[f"{key}_s" if key in ("duration", "timeout") else key] = value
    if ev.services:
        out["services"] = list(ev.services)
    replicas = {s.name: s.replicas for s in test.deployment.services}
    if ev.kind == "run_command":
        out["argv"] = list(ev.argv)
        out["expect_exit"] = ev.expect_exit
        out["where"] = (
            "exec in container main" if test.platform == "kubernetes" else "replica environment"
        )
    if ev.kind == "partition":
        if test.platform == "kubernetes":
            out["how"] = (
                f"label the pod {LABEL_PARTITION}=<id>, apply a NetworkPolicy (labelled with the "
                "run id) allowing ingress/egress from/to every pod but the frontends; verified "
                f"when a connection probe ({probe_argv('<pod IP>', '<port>')[0]} -c ...) exec'd "
                "in a frontend fails to connect, and connects again once the policy is deleted. "
                "ENFORCEMENT NEEDS A CNI THAT ENFORCES NETWORKPOLICIES (without one nothing is "
                "cut and the fault is not verified); removed on every exit path and by "
                "ftctl cleanup"
            )
            out["policy"] = partition_policy(
                "ftctl-partition-<id>", "<namespace>", "<run id>", "<dgd>", ["Frontend"], "<id>"
            )
        else:
            out["how"] = (
                "the workers' request plane runs through a relay ftctl owns (their discovery "
                "record points at it); cut = RST every established and every new frontend "
                "connection; verified when the frontend met the cut and reconnected after the "
                "heal; the event plane (ZMQ) and response streams already open are not cut"
            )
    if ev.kind == "reset_connections":
        out["how"] = (
            "not available on kubernetes"
            if test.platform == "kubernetes"
            else "RST both sockets of every connection ftctl's endpoint proxy holds into the pod "
            "(SO_LINGER 0), verified gone from /proc/net/tcp; no restart expected"
        )
    if ev.kind == "capture_metrics":
        out["label"] = ev.label
        out["files"] = f"<Service>/<pod>{layout.labelled_metrics_suffix(ev.label or '')}"
    if ev.kind in (*FAULT_EVENT_KINDS, "run_command"):
        out["pods"] = ev.pods if isinstance(ev.pods, str) else list(ev.pods)
        out["pod_selection"] = [
            {
                "service": s,
                "selector": f"service {s}",  # kubernetes: replaced by the label selector
                "which": _pods_text(ev.pods, s, replicas.get(s, 1)),
            }
            for s in ev.services
        ]
    if ev.kind == "terminate_process":
        out["process"] = ev.process
        out["signal"] = ev.signal
        out["match"] = ev.process
        if test.platform == "kubernetes":
            out["find_argv"] = list(PS_ARGV)
            out["kill_argv"] = kill_argv(ev.signal or "SIGKILL", ["<pid>"])
        else:
            # The local platform signals the supervised process itself (no shell, no exec).
            out["kill_argv"] = ["kill", f"-{_signal_number(ev.signal)}", "<pid>"]
    if ev.kind in ("terminate_process", "stall_process"):
        out["ranks"] = list(ev.ranks) if ev.ranks is not None else None
        out["rank_order"] = "ascending PID"
    if ev.kind == "stall_process":
        out["process"] = ev.process
        out["match"] = ev.process
        out["restart_expected"] = False
        if test.platform == "kubernetes":
            out["find_argv"] = list(PS_ARGV)
            out["stop_argv"] = kill_argv("SIGSTOP", ["<pid>"])
            out["state_argv"] = list(STAT_ARGV)
            out["continue_argv"] = kill_argv("SIGCONT", ["<pid>"])
        else:
            out["stop_argv"] = ["kill", f"-{_signal_number('SIGSTOP')}", "<pid>"]
            out["state_from"] = "/proc/<pid>/stat"
            out["continue_argv"] = ["kill", f"-{_signal_number('SIGCONT')}", "<pid>"]
    if ev.kind == "delete_pod":
        out["force"] = ev.force
        out["grace_period_s"] = 0 if ev.force else None
    return out


def _check_json(check: Check) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": check.kind}
    for key in ("load", "min", "max", "expected", "stat", "service", "pattern"):
        value = getattr(check, key)
        if value is not None:
            out[key] = value
    if check.kind in ("success_rate", "latency", "max_failed_attempts"):
        out["phase"] = check.phase
    if check.kind == "success_rate":
        out["of"] = check.of
    out["source"] = check.source
    return out


def test_plan(test: TestCase) -> dict[str, Any]:
    """The JSON shape of one test's plan: deployment, loads, timed events, checks."""
    dep = test.deployment
    events, t, open_ended = [], None, False
    for ev in test.events:
        if ev.kind == "start_load" and t is None:
            t = 0.0
        item = _event_json(ev, t, test)
        # After a blocking step of unknown length the planned time is only a lower bound.
        item["t_at_least"] = open_ended
        events.append(item)
        if ev.kind == "wait" and t is not None and ev.duration is not None:
            t += ev.duration
        if t is not None and ev.kind in BLOCKING:
            open_ended = True
    deployment: dict[str, Any] = {
        "backend": dep.backend,
        "topology": dep.topology,
        "tp": dep.tp,
        "dp": dep.dp,
        "data_parallel": dep.data_parallel,
        "model": dep.model,
        "manifest": display_path(dep.manifest) if dep.manifest else None,
        "image": dep.image,
        "max_model_len": dep.max_model_len,
        "services": [
            {"name": s.name, "role": s.role, "replicas": s.replicas} for s in dep.services
        ],
    }
    if dep.overrides:
        deployment["overrides"] = {
            name: {k: v for k, v in vars(ov).items() if v not in (None, ())}
            for name, ov in dep.overrides
        }
    if test.platform == "local":
        deployment["local"] = vars(dep.local).copy()
    return {
        "name": test.name,
        "scenario": test.scenario,
        "file": test.source.file,
        "platform": test.platform,
        "failure": test.failure.name if test.failure else "none",
        "skip_reason": test.skip_reason,
        "deployment": deployment,
        "loads": [_load_json(lo) for lo in test.loads],
        "events": events,
        "checks": [_check_json(c) for c in test.checks],
        "thresholds_profile": test.thresholds_profile,
        "recovery_window_s": test.recovery_window,
    }


def _fmt_t(t: float | None, at_least: bool = False) -> str:
    if t is None:
        return ""
    return f"t{'>=' if at_least else '='}{format_duration(t)}"


def _load_text(lo: dict[str, Any]) -> str:
    amount = (
        f"{lo['requests_per_client']} requests"
        if lo["requests_per_client"] is not None
        else f"for {format_duration(lo['duration_s'])}"
    )
    per = " x" if lo["requests_per_client"] is not None else ""
    rate = f", <= {lo['request_rate']:g} req/s" if lo["request_rate"] else ""
    if lo["arrival"] != "closed" and lo["request_rate"]:
        rate = f", {lo['arrival']} arrivals at {lo['request_rate']:g} req/s total"
    text = (
        f"{lo['name']}: {lo['client']}, {lo['clients']} clients{per} {amount}{rate}, "
        f"concurrency {lo['concurrency']}, ISL {lo['input_tokens']['mean']} / "
        f"OSL {lo['output_tokens']['mean']}, retries {lo['retries']}, "
        f"timeout {format_duration(lo['timeout_s'])}"
    )
    if lo.get("pods"):
        text += f", in the cluster as an Indexed Job of {lo['pods']} pod(s)"
    if lo["result_dir"]:
        text += f", results in {lo['result_dir']}/"
    if lo.get("warmup"):
        text += f", {lo['warmup']} warmup request(s) per client first (not counted)"
    if lo.get("shape"):
        text += f", shape: {lo['shape']} ({lo['arrival']} arrivals, scheduled times recorded)"
    return text


def _event_text(ev: dict[str, Any]) -> list[str]:
    kind = ev["kind"]
    head = f"{_fmt_t(ev['t_s'], ev.get('t_at_least', False)):>9}  {kind}"
    lines: list[str] = []
    if kind in ("wait", "stall_process", "partition") and "duration_s" in ev:
        head += f" {format_duration(ev['duration_s'])}"
    elif "load" in ev:
        head += f" {ev['load']}"
    if ev.get("services"):
        head += f" {', '.join(ev['services'])}"
    if ev.get("failure"):
        head += f"  (failure {ev['failure']})"
    if "timeout_s" in ev:
        head += f"  timeout {format_duration(ev['timeout_s'])}"
    if kind == "wait_for_log_pattern":
        head += f" {ev['service']} /{ev['pattern']}/"
    lines.append(head)
    pad = " " * 11
    for sel in ev.get("pod_selection", []):
        lines.append(f"{pad}pods: {sel['which']} (selected by {sel['selector']})")
    if "ranks" in ev:
        if ev["ranks"] is None:
            lines.append(f"{pad}processes: every match in each pod")
        else:
            lines.append(
                f"{pad}processes: rank {', '.join(map(str, ev['ranks']))} of the matches in "
                f"each pod, in {ev['rank_order']} order (rank 0 = lowest PID)"
            )
    if kind == "terminate_process":
        if "find_argv" in ev:
            lines.append(
                f"{pad}exec {json.dumps(ev['find_argv'])} in container main, "
                f"match command line containing {ev['match']!r}"
            )
        else:
            lines.append(f"{pad}match the supervised process command line {ev['match']!r}")
        lines.append(f"{pad}kill argv {json.dumps(ev['kill_argv'])}  ({ev['signal']})")
    if kind in ("reset_connections", "partition"):
        lines.append(f"{pad}{ev['how']}")
    if kind == "run_command":
        expect = "" if ev["expect_exit"] is None else f", must exit {ev['expect_exit']}"
        lines.append(f"{pad}argv {json.dumps(ev['argv'])} ({ev['where']}, no shell){expect}")
    if kind == "capture_metrics":
        services = ", ".join(ev.get("services", [])) or "every service"
        lines.append(f"{pad}/metrics of every pod of {services} into {ev['files']}")
    if kind == "stall_process":
        if "find_argv" in ev:
            lines.append(
                f"{pad}exec {json.dumps(ev['find_argv'])} in container main, "
                f"match command line containing {ev['match']!r}"
            )
            lines.append(
                f"{pad}stop argv {json.dumps(ev['stop_argv'])}, verify STAT T with "
                f"{json.dumps(ev['state_argv'])} (PID 1 cannot be stopped from inside its pod)"
            )
        else:
            lines.append(f"{pad}match the supervised process command line {ev['match']!r}")
            lines.append(
                f"{pad}stop argv {json.dumps(ev['stop_argv'])}, verify state T in {ev['state_from']}"
            )
        lines.append(
            f"{pad}after {format_duration(ev['duration_s'])}: continue argv "
            f"{json.dumps(ev['continue_argv'])}, verify it runs again; no restart expected"
        )
    if kind == "delete_pod":
        lines.append(f"{pad}delete with grace period {0 if ev['force'] else 'default'}")
    return lines


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _is_bind_option(flag: str) -> bool:
    return flag.startswith("--") and (flag.endswith("-host") or flag in ("--host", "--bind"))


def non_loopback_binds(override: dict[str, Any]) -> list[str]:
    """What a service override binds beyond loopback: ``--*-host``/``--host``/``--bind`` args
    and ``*HOST`` env values that are not a loopback address. The local platform binds every
    process to 127.0.0.1; an override that changes it exposes the graph to the network."""
    args = list(override.get("args", ()))
    found: list[tuple[str, str]] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if not _is_bind_option(flag):
            continue
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ""
        found.append((flag, value))
    found += [(k, v) for k, v in override.get("env", ()) if k.upper().endswith("HOST")]
    return [
        f"binds {value} ({name}): not loopback, reachable from other machines"
        for name, value in found
        if value and value not in _LOOPBACK and not value.startswith("127.")
    ]


def _check_text(c: dict[str, Any]) -> str:
    kind = c["kind"]
    load = f" [load {c['load']}]" if "load" in c else ""
    if kind == "success_rate":
        of = " of attempts" if c.get("of") == "attempts" else ""
        bounds = [f">= {c['min']:g}"] if "min" in c else []
        bounds += [f"<= {c['max']:g}"] if "max" in c else []
        what = f"success_rate{of} {' and '.join(bounds)} ({c['phase']})"
    elif kind == "recovery_time":
        what = f"recovery_time <= {format_duration(c['max'])}"
    elif kind == "latency":
        what = f"latency {c['stat']} <= {format_duration(c['max'])} ({c['phase']})"
    elif kind == "max_errors":
        what = f"failed requests <= {c['max']:g}"
    elif kind == "max_failed_attempts":
        what = f"failed attempts <= {c['max']:g} ({c['phase']})"
    elif kind == "min_requests":
        what = f"requests >= {c['min']:g}"
    elif kind == "was_cancelled":
        what = f"was_cancelled == {c['expected']}"
    elif kind.startswith("service_log"):
        verb = "contains" if kind == "service_log_contains" else "does not contain"
        what = f"log of {c['service']} {verb} /{c['pattern']}/"
    else:
        what = kind
    return f"{what}{load}  ({c['source']})"


def plan_text(plan: dict[str, Any]) -> str:
    """Human rendering of one test plan."""
    dep = plan["deployment"]
    lines = [f"{plan['name']}  (platform {plan['platform']}, from {plan['file']})"]
    if plan["skip_reason"]:
        lines.append(f"  SKIPPED: {plan['skip_reason']}")
    desc = (
        f"  deployment: {dep['backend']} {dep['topology']} tp={dep['tp']} dp={dep['dp']} "
        f"model={dep['model']}"
    )
    if dep["max_model_len"]:
        desc += f" max_model_len={dep['max_model_len']}"
    lines.append(desc)
    if dep["manifest"]:
        lines.append(f"    manifest: {dep['manifest']}")
    if dep.get("local"):
        lo = dep["local"]
        lines.append(
            f"    local: migration_limit={lo['migration_limit']} "
            f"speedup_ratio={lo['speedup_ratio']:g} "
            f"restart_delay={format_duration(lo['restart_delay'])}"
        )
    if dep["image"]:
        lines.append(f"    image: {dep['image']}")
    overrides = dep.get("overrides", {})
    for s in dep["services"]:
        lines.append(f"    {s['name']:<22} {s['role']:<9} replicas {s['replicas']}")
        ov = overrides.get(s["name"], {})
        if ov.get("args"):
            lines.append(f"      args: {json.dumps(list(ov['args']))}")
        for key, value in ov.get("env", ()):
            lines.append(f"      env: {key}={value}")
        if ov.get("image"):
            lines.append(f"      image: {ov['image']}")
        if plan["platform"] == "local":
            lines += [f"      ! {w}" for w in non_loopback_binds(ov)]
    lines.append("  loads:")
    lines += [f"    {_load_text(lo)}" for lo in plan["loads"]]
    lines.append("  events (t = from load start):")
    for ev in plan["events"]:
        lines += [f"  {x}" for x in _event_text(ev)]
    profile = (
        f" (thresholds profile {plan['thresholds_profile']})" if plan["thresholds_profile"] else ""
    )
    lines.append(
        f"  checks{profile}, recovery window {format_duration(plan['recovery_window_s'])}:"
    )
    lines += [f"    {_check_text(c)}" for c in plan["checks"]] or ["    (none)"]
    return "\n".join(lines)


def plan(
    scenarios: list[Path],
    *,
    as_json: bool = False,
    namespace: str | None = None,
    allow_namespace: list[str] | None = None,
    image: str | None = None,
    client_type: str | None = None,
    **selection: Any,
) -> Output:
    """The resolved plan of every selected test, with the namespace; touches no platform.

    ``selection``: keyword, include_custom_build, platform, failures_file, thresholds_file (as
    ``scenario.load_tests`` takes them). The namespace guard of ``run`` is applied before any
    file is read: a plan never shows a
    deployment that ``run`` would refuse.
    """
    from ftctl.platforms.kube.client import DEFAULT_NAMESPACE, check_namespace

    namespace = DEFAULT_NAMESPACE if namespace is None else namespace
    allowed = tuple(allow_namespace or ())
    check_namespace(namespace, allowed)
    tests = load_tests(list(scenarios), **selection)
    if not tests:
        raise UsageError("no test selected (check -k and --include-custom-build)")
    # What `run --image/--client-type` would run: a dry run shows exactly that.
    tests = [t.with_run_options(image=image, client=client_type) for t in tests]
    notes = [
        f"{t.name}: {name} {warning}"
        for t in tests
        if t.platform == "local"
        for name, ov in t.deployment.overrides
        for warning in non_loopback_binds(vars(ov))
    ]
    text = _annotate(_plans(tests, as_json, namespace), namespace, allowed, as_json=as_json)
    return Output(text, notes=notes)


def _plans(tests: list[TestCase], as_json: bool, namespace: str) -> str:
    plans = [test_plan(t) for t in tests]
    if any(lo.placement == "cluster" for t in tests for lo in t.loads):
        from ftctl.platforms.kube.jobs import check_cluster_loads

        for test in tests:
            check_cluster_loads(test)
    kube = [t for t in tests if t.platform == "kubernetes" and not t.skip_reason]
    if kube:  # the DGD that would be applied and the pods each fault would hit
        from ftctl.platforms.kube.dgd import build_dgd
        from ftctl.platforms.kube.selector import describe
        from ftctl.platforms.kubernetes import dry_run_plan

        by_name = {t.name: t for t in kube}
        for plan in plans:
            test = by_name.get(plan.get("name"))
            if test is not None:
                manifest = build_dgd(test, "dry-run")
                dgd = manifest["metadata"]["name"]
                for event in plan["events"]:  # the selector the platform lists and matches by
                    for sel in event.get("pod_selection", []):
                        sel["selector"] = describe(dgd, sel["service"])
                plan["dgd"] = manifest if as_json else dry_run_plan(test)
                _add_jobs(plan, test, namespace, as_json)
    if as_json:
        return json.dumps(plans, indent=2, default=str)
    return "\n\n".join(plan_text(p) + (f"\n{p['dgd']}" if "dgd" in p else "") for p in plans)


def _add_jobs(plan: dict[str, Any], test: TestCase, namespace: str, as_json: bool) -> None:
    """The Indexed Job of every cluster load, as ``run`` would create it."""
    from ftctl.platforms.kube.jobs import describe_job, plan_jobs

    jobs = plan_jobs(test, namespace)
    if not jobs:
        return
    if as_json:
        plan["jobs"] = jobs
        return
    import yaml

    for job in jobs:
        plan["dgd"] += f"# Job for load {job['metadata']['labels']['ftctl.io/load']}\n"
        plan["dgd"] += describe_job(job) + "\n" + yaml.safe_dump(job, sort_keys=False)


def _namespace_line(namespace: str, allow: tuple[str, ...] | list[str] = ()) -> str:
    """The plan's namespace line; raises UsageError (exit 2) when ``run`` would refuse it."""
    from ftctl.platforms.kube.client import check_namespace, is_protected

    check_namespace(namespace, allow)
    if is_protected(namespace):
        return (
            f"# namespace: {namespace} (protected: a system or shared namespace, "
            "allowed by --allow-namespace)"
        )
    return f"# namespace: {namespace}"


def _annotate(
    text: str, namespace: str, allow: tuple[str, ...] | list[str], *, as_json: bool
) -> str:
    """Add the namespace to each kubernetes test of a plan (text or JSON); others unchanged.

    Raises UsageError (exit 2) when the namespace would be refused, so a plan never shows a
    deployment that ``run`` would not make.
    """
    from ftctl.platforms.kube.client import is_protected
    from ftctl.platforms.kubernetes import DRY_RUN_HEADER

    line = _namespace_line(namespace, allow)
    if as_json:
        plans = json.loads(text)
        if not isinstance(plans, list):
            return text
        for plan in plans:
            if isinstance(plan, dict) and "dgd" in plan:
                plan["namespace"] = {"name": namespace, "protected": is_protected(namespace)}
        return json.dumps(plans, indent=2, default=str)
    out: list[str] = []
    for row in text.split("\n"):
        out.append(row)
        if row.startswith(DRY_RUN_HEADER):
            out.append(line)
    return "\n".join(out)
