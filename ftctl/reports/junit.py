"""JUnit XML: one testcase per test and one per check, for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def write_junit(run: Any, path: Path) -> None:
    """Write ``run`` (a RunOutcome) as JUnit XML to ``path``."""
    suite = ET.Element("testsuite", name="ftctl")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for outcome in run.tests:
        total_time += outcome.duration_s
        case = ET.SubElement(
            suite,
            "testcase",
            classname="ftctl",
            name=outcome.name,
            time=f"{outcome.duration_s:.3f}",
        )
        counts["tests"] += 1
        if outcome.skipped:
            ET.SubElement(case, "skipped", message=outcome.skipped)
            counts["skipped"] += 1
            continue
        if outcome.error:
            ET.SubElement(case, "error", message=outcome.error).text = outcome.error
            counts["errors"] += 1
        elif any(c.status == "failed" for c in outcome.checks):
            failed = [c for c in outcome.checks if c.status == "failed"]
            message = "; ".join(f"{c.name}: {c.message}" for c in failed)
            ET.SubElement(case, "failure", message=message).text = message
            counts["failures"] += 1
        for check in outcome.checks:
            sub = ET.SubElement(
                suite, "testcase", classname=f"ftctl.{outcome.name}", name=check.name, time="0"
            )
            counts["tests"] += 1
            if check.status == "failed":
                ET.SubElement(sub, "failure", message=check.message).text = check.message
                counts["failures"] += 1
            elif check.status == "inconclusive":
                ET.SubElement(sub, "skipped", message=f"inconclusive: {check.message}")
                counts["skipped"] += 1
            else:
                ET.SubElement(sub, "system-out").text = check.message
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total_time:.3f}")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
