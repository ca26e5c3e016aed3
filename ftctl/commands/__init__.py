"""One module per subcommand: each calls the core and renders what it returns.

``cli.py`` declares the options and passes them on by name; a command returns an ``Output``
(text for stdout, warnings for stderr, the exit status) and never exits itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ftctl.errors import ExitStatus, OptionError, UsageError

# The flag of each option field the core may name in an OptionError.
FLAGS = {
    "platform": "--platform",
    "namespace": "--namespace",
    "allow_namespaces": "--allow-namespace",
    "kubeconfig": "--kubeconfig",
    "context": "--context",
    "skip_service_restart": "--skip-service-restart",
    "endpoint_timeout": "--endpoint-timeout",
}


@contextmanager
def flags_named() -> Iterator[None]:
    """Turn an OptionError of the core into a usage error naming the flag."""
    try:
        yield
    except OptionError as exc:
        flag = FLAGS.get(exc.option, exc.option)
        raise UsageError(exc.phrase(flag)) from exc


@dataclass
class Output:
    """What a command prints and how it exits."""

    text: str = ""
    status: ExitStatus = ExitStatus.OK
    notes: list[str] = field(default_factory=list)  # ``ftctl: warning:`` lines for stderr

    def emit(self) -> int:
        """Print the warnings to stderr and the text to stdout; return the exit status."""
        for line in self.notes:
            sys.stderr.write(f"ftctl: warning: {line}\n")
        sys.stderr.flush()
        if self.text:
            sys.stdout.write(self.text if self.text.endswith("\n") else self.text + "\n")
            sys.stdout.flush()
        return int(self.status)
