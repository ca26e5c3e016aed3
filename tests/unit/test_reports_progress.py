"""The progress display of `ftctl run`: what a user sees while a test runs."""

from __future__ import annotations

import io

from ftctl import events as ev
from ftctl.reports.progress import ProgressPrinter


def _lines(*notes: tuple[str, dict]) -> list[str]:
    stream = io.StringIO()
    printer = ProgressPrinter(stream, tty=False)
    for kind, fields in notes:
        printer.notify(kind, test="t", **fields)
    return stream.getvalue().splitlines()


def test_aiperf_start_up_prints_how_many_clients_are_sending():
    starting = {"load": "default", "client": "aiperf", "clients": 4}
    lines = _lines(
        (ev.LOAD_STARTING, {**starting, "sending": 0}),
        (ev.LOAD_STARTING, {**starting, "sending": 3}),
        (ev.LOAD_STARTING, {**starting, "sending": 4}),
    )
    assert [line.split("s ", 1)[1] for line in lines] == [
        "starting aiperf for load 'default': 0/4 clients sending…",
        "starting aiperf for load 'default': 3/4 clients sending…",
        "starting aiperf for load 'default': 4/4 clients sending",
    ]
