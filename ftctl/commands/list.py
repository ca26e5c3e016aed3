"""``ftctl list``: expanded test names, the failure catalog and threshold profiles (text or JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftctl.commands import Output
from ftctl.errors import UsageError
from ftctl.scenario import CUSTOM_BUILD_WHY, Selection, load_catalogs, load_tests
from ftctl.scenario.durations import format_duration
from ftctl.scenario.model import Catalogs, TestCase, ThresholdProfile

DEFAULT_FOLDERS = (Path("scenario_files/local"), Path("scenario_files/kubernetes"))


def _default_paths(paths: list[Path]) -> list[Path]:
    if paths:
        return list(paths)
    found = [p for p in DEFAULT_FOLDERS if p.is_dir()]
    if not found:
        raise UsageError("give scenario files or folders (no scenario_files/ folder here)")
    return found


def test_summary(test: TestCase) -> dict[str, Any]:
    """The JSON shape of one listed test."""
    dep = test.deployment
    return {
        "name": test.name,
        "scenario": test.scenario,
        "file": test.source.file,
        "platform": test.platform,
        "backend": dep.backend,
        "topology": dep.topology,
        "tp": dep.tp,
        "dp": dep.dp,
        "failure": test.failure.name if test.failure else "none",
        "tags": list(test.tags),
        "skipped": test.skip_reason is not None,
        "skip_reason": test.skip_reason,
        "known_limitation": test.failure.known_limitation if test.failure else None,
    }


def _test_line(test: TestCase) -> str:
    if test.skip_reason is not None:
        return f"{test.name}  [skipped: {test.skip_reason}]"
    if test.failure is not None and test.failure.known_limitation:
        return f"{test.name}  [known limitation: no recovery_time threshold]"
    return test.name


def _limitation_notes(tests: list[TestCase]) -> list[str]:
    """One line per known limitation of the listed (not skipped) tests, naming its failures."""
    by_text: dict[str, list[str]] = {}
    for t in tests:
        if t.skip_reason is None and t.failure is not None and t.failure.known_limitation:
            names = by_text.setdefault(t.failure.known_limitation, [])
            if t.failure.name not in names:
                names.append(t.failure.name)
    return [f"known limitation ({', '.join(n)}): {text}" for text, n in by_text.items()]


def _failures_rows(cat: Catalogs) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "action": f.action,
            "target": f.target,
            "process": f.process,
            "signal": (
                f.signal
                if f.action == "terminate_process"
                else f"SIGSTOP {format_duration(f.duration or 0)}"
                if f.action == "stall_process"
                else f"cut {format_duration(f.duration or 0)}"
                if f.action == "partition"
                else "RST"
                if f.action == "reset_connections"
                else None
            ),
            "duration_s": f.duration,
            "backends": list(f.backends),
            "topologies": list(f.topologies),
            "platforms": list(f.platforms),
            "in_all": f.in_all,
            "known_limitation": f.known_limitation,
            "description": f.description,
        }
        for f in sorted(cat.failures.values(), key=lambda f: f.order)
    ]


DECODE_REPLICAS_NOTE = (
    "decode_replicas counts the decode worker's replicas (dp, a service override or the "
    "manifest's replicas), as upstream picks high availability: 2 decode replicas at dp 1 are "
    "high availability, a graph with one decode replica is not, whatever its dp."
)


def _limits_json(p: ThresholdProfile) -> dict[str, Any]:
    return {
        "success_rate_min": p.success_rate_min,
        "success_rate_max": p.success_rate_max,
        "failed_requests_max": p.failed_requests_max,
        "recovery_time_max_s": p.recovery_time_max,
        "load": p.load,
    }


def _limit_rows(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """A profile's own limits (unless it only has per-load ones), then one row per load."""
    own = any(v is not None for k, v in profile.items() if k not in ("loads", "load"))
    return ([profile] if own or not profile["loads"] else []) + list(profile["loads"].values())


def _thresholds_json(cat: Catalogs) -> dict[str, Any]:
    return {
        "profiles": {
            p.name: {**_limits_json(p), "loads": {q.load: _limits_json(q) for q in p.per_load}}
            for p in cat.profiles.values()
        },
        "rules": [{"when": when, "profile": profile} for when, profile in cat.rules],
    }


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", missingval="-")


def _left_out_lines(left_out: Selection) -> list[str]:
    """Why tests the files define are not listed: custom_build, and matrix failures dropped."""
    lines = []
    if left_out.custom_build:
        lines.append(f"left out: {len(left_out.custom_build)} tests {CUSTOM_BUILD_WHY}")
    # One line per failure of a file: each reason once, with how many matrix cells it dropped.
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    for file, failure, _cell, why in left_out.dropped:
        counts = reasons.setdefault((file, failure), {})
        counts[why] = counts.get(why, 0) + 1
    for (file, failure), counts in reasons.items():
        whys = "; ".join(f"{why} ({n} cells)" for why, n in counts.items())
        lines.append(f"dropped from {file}: {failure}: {whys}")
    return lines


def list_(
    paths: list[Path] | None,
    *,
    failures: bool = False,
    thresholds: bool = False,
    as_json: bool = False,
    failures_file: Path | None = None,
    thresholds_file: Path | None = None,
    **selection: Any,
) -> Output:
    """Text (or JSON) listing of expanded test names, the failure catalog, threshold profiles.

    ``selection``: keyword, include_custom_build, platform (as ``scenario.load_tests`` takes).
    """
    out_json: dict[str, Any] = {}
    parts: list[str] = []
    cat = load_catalogs(failures_file, thresholds_file)
    if failures:
        rows = _failures_rows(cat)
        out_json["failures"] = rows
        parts.append(
            _table(
                [
                    [
                        r["name"],
                        r["action"],
                        r["target"],
                        r["process"],
                        r["signal"],
                        ",".join(r["backends"]),
                        ",".join(r["topologies"]),
                        ",".join(r["platforms"]),
                    ]
                    for r in rows
                ],
                [
                    "failure",
                    "action",
                    "target",
                    "process",
                    "signal",
                    "backends",
                    "topologies",
                    "platforms",
                ],
            )
        )
    if thresholds:
        th = _thresholds_json(cat)
        out_json["thresholds"] = th
        prof_rows = [
            [
                name,
                q["success_rate_min"],
                q["success_rate_max"],
                q["failed_requests_max"],
                format_duration(q["recovery_time_max_s"])
                if q["recovery_time_max_s"] is not None
                else None,
                q["load"],
            ]
            for name, p in th["profiles"].items()
            for q in _limit_rows(p)
        ]
        parts.append(
            _table(
                prof_rows,
                [
                    "profile",
                    "success rate min",
                    "success rate max",
                    "failed max",
                    "recovery max",
                    "load",
                ],
            )
        )
        rule_rows = [
            [i + 1, json.dumps(r["when"]) if r["when"] else "(always)", r["profile"]]
            for i, r in enumerate(th["rules"])
        ]
        parts.append(_table(rule_rows, ["rule", "when", "profile"]))
        if any("decode_replicas" in r["when"] for r in th["rules"]):
            parts.append(DECODE_REPLICAS_NOTE)
    if paths or not (failures or thresholds):
        left_out = Selection()
        tests = load_tests(
            _default_paths(paths or []),
            failures_file=failures_file,
            thresholds_file=thresholds_file,
            selection=left_out,
            **selection,
        )
        out_json["tests"] = [test_summary(t) for t in tests]
        lines = [_test_line(t) for t in tests] + _limitation_notes(tests)
        # Matrix drops describe the files: shown for a full listing, not for a -k/-m selection.
        if selection.get("keyword") or selection.get("markers"):
            left_out.dropped.clear()
        lines += _left_out_lines(left_out)
        skipped = sum(1 for t in tests if t.skip_reason)
        lines.append(f"{len(tests)} tests" + (f" ({skipped} skipped)" if skipped else ""))
        parts.append("\n".join(lines))
    if as_json:
        if list(out_json) == ["tests"]:
            return Output(json.dumps(out_json["tests"], indent=2))
        return Output(json.dumps(out_json, indent=2))
    return Output("\n\n".join(parts))
