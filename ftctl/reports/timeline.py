"""Timeline plot: every request by start time and latency, faults and recovery marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_timeline(result: Any, path: Path) -> Path:
    """Write a PNG of ``result`` (a TestResult with its request table) to ``path``.

    X: request start, seconds from the first request; Y: latency. Failed requests are red
    crosses; each fault is a vertical line; the client-perceived recovery is shaded.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt
    import numpy as np

    table = result.requests
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    if table is None or len(table) == 0:
        ax.text(0.5, 0.5, "no requests", ha="center", va="center", transform=ax.transAxes)
        origin = 0
    else:
        origin = int(table.start_ns.min())
        start_s = (table.start_ns - origin) / 1e9
        ok = table.ok.astype(bool)
        latency = np.where(
            np.isnan(table.latency_s), (table.end_ns - table.start_ns) / 1e9, table.latency_s
        )
        ax.scatter(start_s[ok], latency[ok], s=6, c="tab:blue", label=f"ok ({int(ok.sum())})")
        ax.scatter(
            start_s[~ok],
            latency[~ok],
            s=18,
            c="tab:red",
            marker="x",
            label=f"failed ({int((~ok).sum())})",
        )
    recovery = result.overall.recovery if result.overall is not None else None
    for index, t_ns in enumerate(result.fault_times_ns):
        t = (t_ns - origin) / 1e9
        ax.axvline(
            t, color="black", linestyle="--", linewidth=1, label="fault" if index == 0 else None
        )
        if index == 0 and recovery is not None and recovery.recovery_time_s:
            ax.axvspan(
                t,
                t + recovery.recovery_time_s,
                color="tab:orange",
                alpha=0.2,
                label=f"recovery {recovery.recovery_time_s:.2f} s",
            )
    ax.set_xlabel("request start (s)")
    ax.set_ylabel("latency (s)")
    ax.set_title(result.name)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
