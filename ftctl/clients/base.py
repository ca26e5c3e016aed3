"""The interface between the runner and a load client (legacy or aiperf)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class LoadProgress:
    """A snapshot for the progress display."""

    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    rate: float = 0.0  # completed requests per second, recent


@dataclass(frozen=True)
class LoadTarget:
    """Where a load sends its requests."""

    base_url: str  # http://127.0.0.1:PORT (the platform's resilient endpoint)
    model: str  # model name served by the frontend
    tokenizer: Path | None = None  # local tokenizer folder (aiperf needs one offline)


class LoadHandle(Protocol):
    """A running load. The runner starts it, may stop it, and waits for it."""

    def start(self) -> None:
        """Start the clients in the background; return at once."""

    def wait_sending(
        self,
        timeout: float | None = None,
        on_wait: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Block until the clients are sending requests (aiperf takes seconds to start).

        A client whose start-up takes long calls ``on_wait(sending, clients)`` as it goes.
        """

    def stop(self) -> None:
        """Ask the clients to finish now (the current request may complete)."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every client ended; False on timeout."""

    def progress(self) -> LoadProgress:
        """Requests done so far."""

    def kill(self) -> None:
        """End every client process at once (cleanup path). Idempotent."""
