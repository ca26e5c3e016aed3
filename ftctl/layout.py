"""Names inside a result directory (DESIGN.md §4), defined once.

Writers and readers both take their file names from here, so a layout change is one edit.
"""

from __future__ import annotations

from pathlib import Path

# Server-side observation, one file per pod: <Service>/<pod>.metrics.jsonl and .resources.jsonl
METRICS_SUFFIX = ".metrics.jsonl"
RESOURCES_SUFFIX = ".resources.jsonl"


def pod_file(result_dir: Path, service: str, pod: str, suffix: str) -> Path:
    """``<result_dir>/<Service>/<pod><suffix>``."""
    return Path(result_dir) / service / f"{pod}{suffix}"
