"""Timeline plot: every attempt by start time and duration, faults, pods back and recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_timeline(result: Any, path: Path, metrics: tuple[str, ...] = ()) -> Path:
    """Write a PNG of ``result`` (a TestResult with its request table) to ``path``.

    The figure is ``timeline_figure``'s.
    """
    import matplotlib.pyplot as plt

    fig = timeline_figure(result, metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def timeline_figure(result: Any, metrics: tuple[str, ...] = ()) -> Any:
    """The timeline of ``result`` as a matplotlib Figure (the caller saves and closes it).

    X: attempt start, seconds from the first request; Y: the attempt's duration. Failed
    attempts are red crosses at their real duration; a failure that took no time (refused at
    once, or an end aiperf did not record) is a red tick on the time axis, not a point at
    latency 0. Each fault is a dashed line, each pod back (``fault_verified``) a dotted one,
    and the client-perceived recovery is shaded. Legends sit outside the plotting area. When
    the run was scraped, aligned panels follow on the same time axis: requests/s ok and failed,
    in-flight/queued per pod (plus each series named in ``metrics``), CPU and RSS per pod.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt
    import numpy as np

    from ftctl.results.server import KEY_GAUGES, pod_points, read_server_series

    table = result.requests
    pods = read_server_series(result.path) if result.path else []
    panels = 1 + (1 if table is not None and len(table) else 0)
    panels += (len(metrics) + 2) if pods else 0
    fig, axes = plt.subplots(
        panels, 1, figsize=(10, 3 + 2 * panels), dpi=100, sharex=True, squeeze=False
    )
    axes = list(axes[:, 0])
    ax = axes[0]
    if table is None or len(table) == 0:
        ax.text(0.5, 0.5, "no requests", ha="center", va="center", transform=ax.transAxes)
        origin = 0
    else:
        origin = int(table.start_ns.min())
        ok = table.ok.astype(bool)
        rows = table.attempts()
        a_start = (rows.start_ns - origin) / 1e9
        a_ok = rows.ok.astype(bool)
        duration = (rows.end_ns - rows.start_ns) / 1e9
        if table.attempt_rows is None:  # one attempt per request: the reader's latency
            duration = np.where(np.isnan(table.latency_s), duration, table.latency_s)
        instant = ~a_ok & (rows.end_ns == rows.start_ns)
        timed = ~a_ok & ~instant
        ax.scatter(
            a_start[a_ok], duration[a_ok], s=6, c="tab:blue", label=f"ok ({int(a_ok.sum())})"
        )
        ax.scatter(
            a_start[timed],
            duration[timed],
            s=18,
            c="tab:red",
            marker="x",
            label=f"failed attempts ({int(timed.sum())})",
        )
        if instant.any():  # on the axis itself: their duration is none, or unknown
            ax.scatter(
                a_start[instant],
                np.zeros(int(instant.sum())),
                s=40,
                c="tab:red",
                marker="|",
                clip_on=False,
                transform=ax.get_xaxis_transform(),
                label=f"failed at once / end unknown ({int(instant.sum())})",
            )
    if pods and (table is None or len(table) == 0):
        origin = min((s.t_ns for p in pods for s in p.scrapes), default=0)
    next_ax = 1
    if table is not None and len(table):
        rate_ax = axes[next_ax]
        next_ax += 1
        end_s = (table.end_ns - origin) / 1e9
        edges = np.arange(0, max(1.0, float(np.nanmax(end_s))) + 1.0, 1.0)
        for mask, color, label in ((ok, "tab:blue", "ok/s"), (~ok, "tab:red", "failed/s")):
            counts, _ = np.histogram(end_s[mask], bins=edges)
            rate_ax.step(edges[:-1], counts, where="post", color=color, label=label)
        rate_ax.set_ylabel("requests/s")
    if pods:
        gauge_ax = axes[next_ax]
        next_ax += 1
        color = {pod.pod: f"C{i % 10}" for i, pod in enumerate(pods)}  # one colour per pod
        styles = dict(zip(KEY_GAUGES, ("-", "--", "-"), strict=True))
        for pod in pods:
            for name in KEY_GAUGES:
                points = pod_points(pod, name)
                if points:
                    xs = [(t - origin) / 1e9 for t, _ in points]
                    short = name.removeprefix("dynamo_frontend_").removeprefix("dynamo_component_")
                    gauge_ax.plot(
                        xs,
                        [v for _, v in points],
                        styles[name],
                        color=color[pod.pod],
                        label=f"{pod.pod} {short}",
                    )
            failed = [(s.t_ns - origin) / 1e9 for s in pod.scrapes if not s.ok]
            if failed:
                gauge_ax.plot(failed, [0] * len(failed), "x", color="tab:red", markersize=4)
        gauge_ax.set_ylabel("requests (server)")
        for name in metrics:
            metric_ax = axes[next_ax]
            next_ax += 1
            for pod in pods:
                points = pod_points(pod, name)
                if points:
                    xs = [(t - origin) / 1e9 for t, _ in points]
                    metric_ax.plot(xs, [v for _, v in points], color=color[pod.pod], label=pod.pod)
            metric_ax.set_ylabel(name, fontsize="small")
        res_ax = axes[next_ax]
        cpu_ax = res_ax.twinx()
        for pod in pods:
            samples = [r for r in pod.resources if r.get("ok")]
            if len(samples) < 2:
                continue
            xs = [(r["t_ns"] - origin) / 1e9 for r in samples]
            res_ax.plot(
                xs,
                [r["rss_bytes"] / 1e6 for r in samples],
                color=color[pod.pod],
                label=f"{pod.pod} RSS",
            )
            cpu = [
                max(0.0, (b["cpu_s"] - a["cpu_s"]) / ((b["t_ns"] - a["t_ns"]) / 1e9)) * 100
                for a, b in zip(samples, samples[1:], strict=False)
            ]
            cpu_ax.plot(xs[1:], cpu, linestyle=":", linewidth=1, color=color[pod.pod])
        res_ax.set_ylabel("RSS MB (solid)")
        cpu_ax.set_ylabel("CPU % (dotted)")
    recovery = result.overall.recovery if result.overall is not None else None
    for index, t_ns in enumerate(getattr(result, "pod_recovered_ns", None) or []):
        t = (t_ns - origin) / 1e9
        for i, panel in enumerate(axes):
            label = "pod back" if index == 0 and i == 0 else None
            panel.axvline(t, color="tab:green", linestyle=":", linewidth=1.2, label=label)
    # With several faults each gets its own band (its recovery on the attempts before the
    # next fault); with one, the test's recovery.
    faults = result.overall.faults if result.overall is not None else []
    several = len(faults) > 1
    own = {f.t_ns: f.recovery for f in faults} if several else {}
    for index, t_ns in enumerate(result.fault_times_ns):
        t = (t_ns - origin) / 1e9
        band = own.get(t_ns) if several else (recovery if index == 0 else None)
        name = f"recovery {index + 1}" if several else "recovery"
        for i, panel in enumerate(axes):
            label = "fault" if index == 0 and i == 0 else None
            panel.axvline(t, color="black", linestyle="--", linewidth=1, label=label)
            if band is not None and band.recovery_time_s:
                panel.axvspan(
                    t,
                    t + band.recovery_time_s,
                    color="tab:orange",
                    alpha=0.2,
                    label=f"{name} {band.recovery_time_s:.2f} s" if i == 0 else None,
                )
    axes[-1].set_xlabel("time since the first request (s)" if pods else "attempt start (s)")
    ax.set_ylabel("attempt duration (s)")
    ax.set_title(result.name)
    for panel in axes:
        panel.grid(True, alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            # Right of the panel, never over the points.
            panel.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small")
    fig.tight_layout()
    return fig
