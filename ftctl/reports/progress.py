"""Progress display for `ftctl run`: one rewritten line on a terminal, log lines in CI."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ftctl import events as ev


class ProgressPrinter:
    """A runner observer: phase, elapsed, requests ok/failed, next event."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.phase = "starting"
        self.test = ""
        self._last_plain = 0.0
        self._warned: set[str] = set()  # each warning once per run, however many tests

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def _line(self, text: str, transient: bool = False) -> None:
        if self.tty and transient:
            self.stream.write("\r\x1b[2K" + text[:200])
        else:
            if self.tty:
                self.stream.write("\r\x1b[2K")
            self.stream.write(text + "\n")
        self.stream.flush()

    def notify(self, kind: str, **fields: Any) -> None:
        test = fields.get("test", self.test)
        if kind == ev.TEST_START:
            self.test, self.started = test, time.monotonic()
            self._line(f"[{test}] start on {fields.get('platform')}")
        elif kind == ev.METRICS_SERVER:
            self._line(f"live metrics: {fields.get('url')}")
        elif kind == ev.WARNING:
            message = str(fields.get("message"))
            if message not in self._warned:
                self._warned.add(message)
                self._line(f"ftctl: warning: {message}")
        elif kind == ev.PLATFORM_LOG:
            self._line(f"[{test}] {fields.get('message')}")
        elif kind == ev.DEPLOY_START:
            self.phase = "deploying"
            self._line(f"[{test}] {self._elapsed()} deploying")
        elif kind == ev.READY:
            self.phase = "ready"
            self._line(
                f"[{test}] {self._elapsed()} ready (startup {fields.get('startup_s', 0):.1f}s)"
            )
        elif kind == ev.LOAD_STARTING:
            sending, clients = fields.get("sending", 0), fields.get("clients", 0)
            self._line(
                f"[{test}] {self._elapsed()} starting {fields.get('client')} for load "
                f"'{fields.get('load')}': {sending}/{clients} clients sending"
                + ("" if sending >= clients else "…")
            )
        elif kind == ev.LOAD_START:
            self.phase = "load"
            self._line(f"[{test}] {self._elapsed()} load '{fields.get('load')}' started")
        elif kind == ev.EVENT:
            event = fields.get("event")
            if event is not None and event.kind not in ("wait",):
                self._line(f"[{test}] {self._elapsed()} {event.kind}")
        elif kind == ev.FAULT_INJECTED:
            delay = fields.get("injection_delay_s")
            extra = f" (+{delay * 1000:.0f} ms vs schedule)" if delay is not None else ""
            self._line(
                f"[{test}] {self._elapsed()} fault: {fields.get('action')} {fields.get('pod')}{extra}"
            )
        elif kind in (ev.FAULT_VERIFIED, ev.FAULT_NOT_VERIFIED):
            rec = fields.get("pod_recovery_s")
            rec_text = f", pod back after {rec:.1f}s" if rec is not None else ""
            self._line(
                f"[{test}] {self._elapsed()} {kind.replace('_', ' ')}: {fields.get('pod')}{rec_text}"
            )
        elif kind == ev.TICK:
            loads = fields.get("loads") or {}
            ok = sum(p.ok for p in loads.values())
            failed = sum(p.failed for p in loads.values())
            text = f"[{test}] {self._elapsed()} {self.phase}: {ok} ok, {failed} failed"
            for name, p in loads.items():  # a cluster load: its Job's pods by phase
                pods = getattr(p, "pods", None)
                if pods:
                    counts = ", ".join(
                        f"{pods.get(k, 0)} {k.lower()}"
                        for k in ("Pending", "Running", "Succeeded", "Failed")
                    )
                    text += f"; load '{name}' pods: {counts}"
            if self.tty:
                self._line(text, transient=True)
            elif time.monotonic() - self._last_plain >= 10:
                self._last_plain = time.monotonic()
                self._line(text)
        elif kind == ev.LOAD_END:
            self._line(f"[{test}] {self._elapsed()} load '{fields.get('load')}' ended")
        elif kind == ev.TEARDOWN:
            self._line(f"[{test}] {self._elapsed()} torn down")
        elif kind == ev.TEST_END:
            self._line(f"[{test}] {self._elapsed()} {fields.get('status', '').lower()}")
