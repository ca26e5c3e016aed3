"""The FailureCatalog and Thresholds documents: loading, profile rules, profile → checks."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ftctl.scenario.durations import duration_at
from ftctl.scenario.model import Catalogs, Check, FailureType, ThresholdProfile
from ftctl.scenario.schema import check_kind, validate_schema
from ftctl.scenario.yamlio import Document, did_you_mean, read_document

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_FAILURES = DATA_DIR / "failures.yaml"
DEFAULT_THRESHOLDS = DATA_DIR / "thresholds.yaml"


def failures_from_document(doc: Document) -> dict[str, FailureType]:
    """Build the failure types of a FailureCatalog document (schema + semantic checks)."""
    check_kind(doc, ("FailureCatalog",))
    validate_schema(doc, "FailureCatalog")
    out: dict[str, FailureType] = {}
    for i, entry in enumerate(doc.data["failures"]):
        name = entry["name"]
        if name in out:
            raise doc.error(["failures", i, "name"], f"duplicate failure name '{name}'")
        target = entry.get("target")
        action = entry["action"]
        if action == "none" and name != "none" and target:
            raise doc.error(["failures", i, "target"], "a failure with action 'none' has no target")
        timeout = entry.get("timeout")
        out[name] = FailureType(
            name=name,
            description=entry.get("description", "").strip(),
            target=None if target in (None, "client") else target,
            action=action,
            process=entry.get("process"),
            signal=entry.get("signal", "SIGKILL"),
            backends=tuple(entry.get("backends", ("all",))),
            topologies=tuple(entry.get("topologies", ("agg", "disagg"))),
            platforms=tuple(entry.get("platforms", ("kubernetes", "local"))),
            order=i,
            in_all=entry.get("in_all", True),
            timeout=(
                duration_at(doc, ["failures", i, "timeout"], timeout)
                if timeout is not None
                else None
            ),
            max_model_len=entry.get("max_model_len"),
            overflow_multiplier=float(entry.get("overflow_multiplier", 2.0)),
            known_limitation=entry.get("known_limitation"),
            duration=(
                duration_at(doc, ["failures", i, "duration"], entry["duration"])
                if "duration" in entry
                else None
            ),
        )
    return out


def thresholds_from_document(
    doc: Document,
) -> tuple[dict[str, ThresholdProfile], list[tuple[dict, str]]]:
    """Build (profiles, rules) of a Thresholds document (schema + semantic checks)."""
    check_kind(doc, ("Thresholds",))
    validate_schema(doc, "Thresholds")
    profiles: dict[str, ThresholdProfile] = {}
    for name, spec in doc.data["profiles"].items():
        rec = spec.get("recovery_time", {}).get("max")
        profiles[name] = ThresholdProfile(
            name=name,
            success_rate_min=spec.get("success_rate", {}).get("min"),
            failed_requests_max=spec.get("failed_requests", {}).get("max"),
            recovery_time_max=(
                duration_at(doc, ["profiles", name, "recovery_time", "max"], rec)
                if rec is not None
                else None
            ),
            load=spec.get("load"),
            success_rate_max=spec.get("success_rate", {}).get("max"),
            per_load=tuple(
                ThresholdProfile(
                    name=name,
                    load=load,
                    success_rate_min=sub.get("success_rate", {}).get("min"),
                    success_rate_max=sub.get("success_rate", {}).get("max"),
                    failed_requests_max=sub.get("failed_requests", {}).get("max"),
                )
                for load, sub in (spec.get("loads") or {}).items()
            ),
        )
    rules: list[tuple[dict, str]] = []
    for i, rule in enumerate(doc.data["rules"]):
        profile = rule["profile"]
        if profile not in profiles:
            hint = did_you_mean(profile, list(profiles))
            raise doc.error(["rules", i, "profile"], f"unknown profile '{profile}'{hint}")
        for key in ("dp", "tp", "decode_replicas"):
            rng = rule.get("when", {}).get(key)
            if isinstance(rng, dict) and rng.get("min", 1) > rng.get("max", rng.get("min", 1)):
                raise doc.error(["rules", i, "when", key], "min is greater than max")
        rules.append((dict(rule.get("when", {})), profile))
    return profiles, rules


@cache
def _load(failures: Path, thresholds: Path) -> Catalogs:
    failure_types = failures_from_document(read_document(failures))
    profiles, rules = thresholds_from_document(read_document(thresholds))
    return Catalogs(failures=failure_types, profiles=profiles, rules=rules)


def load_catalogs(
    failures_file: Path | None = None, thresholds_file: Path | None = None
) -> Catalogs:
    """The catalogs in force: the given files, else the ones shipped in ``ftctl/data``.

    Raises:
        ScenarioError: an invalid catalog file (exit 2).
    """
    f = Path(failures_file).resolve() if failures_file else DEFAULT_FAILURES
    t = Path(thresholds_file).resolve() if thresholds_file else DEFAULT_THRESHOLDS
    cat = _load(f, t)
    # A fresh container each call: callers may not share mutable state (REFERENCE §9.7).
    return Catalogs(failures=dict(cat.failures), profiles=dict(cat.profiles), rules=list(cat.rules))


def _matches(value, cond) -> bool:
    if isinstance(cond, list):
        return value in cond
    return value == cond


def _in_range(value: int, cond) -> bool:
    if isinstance(cond, int):
        return value == cond
    return cond.get("min", value) <= value <= cond.get("max", value)


def select_profile(
    catalogs: Catalogs,
    *,
    failure: str,
    action: str,
    backend: str,
    topology: str,
    tp: int,
    dp: int,
    decode_replicas: int,
    platform: str,
) -> str | None:
    """The profile of the first rule whose ``when`` matches (DESIGN §3.4), or None.

    ``decode_replicas`` is the sum of the decode services' replicas (dp, a service override,
    or the manifest's count): the shipped rules pick high availability by it, as upstream does.
    """
    facts = {"failure": failure, "action": action, "backend": backend}
    for when, profile in catalogs.rules:
        ok = True
        for key, cond in when.items():
            if key in facts:
                ok = _matches(facts[key], cond)
            elif key == "topology":
                ok = topology == cond
            elif key == "platform":
                ok = platform == cond
            elif key == "dp":
                ok = _in_range(dp, cond)
            elif key == "tp":
                ok = _in_range(tp, cond)
            elif key == "decode_replicas":
                ok = _in_range(decode_replicas, cond)
            if not ok:
                break
        if ok:
            return profile
    return None


def profile_checks(profile: ThresholdProfile, *, server_fault: bool) -> list[Check]:
    """Checks from a profile: success_rate, max_errors, and recovery_time after a server fault."""
    source = f"profile:{profile.name}"
    out: list[Check] = []
    if profile.success_rate_min is not None or profile.success_rate_max is not None:
        out.append(
            Check(
                kind="success_rate",
                min=profile.success_rate_min,
                max=profile.success_rate_max,
                phase="overall",
                load=profile.load,
                source=source,
            )
        )
    if profile.failed_requests_max is not None:
        out.append(
            Check(
                kind="max_errors", max=profile.failed_requests_max, load=profile.load, source=source
            )
        )
    # A recovery time exists only after a server-side fault; without one it could only fail.
    if profile.recovery_time_max is not None and server_fault:
        out.append(
            Check(
                kind="recovery_time",
                max=profile.recovery_time_max,
                load=profile.load,
                source=source,
            )
        )
    for part in profile.per_load:
        out += profile_checks(part, server_fault=False)
    return out
