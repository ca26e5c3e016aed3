"""Exit statuses and the one error hierarchy that carries them to the CLI."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes shared by every command (DESIGN.md §2)."""

    OK = 0
    CHECK_FAILED = 1
    INVALID = 2
    INFRA = 3
    INCONCLUSIVE = 4
    INTERRUPTED = 130


class FtctlError(Exception):
    """Base of every error meant for the user; carries its exit code.

    The CLI catches it once and prints ``ftctl: error: <message>``.
    """

    exit_code: ExitStatus = ExitStatus.INVALID

    def __init__(self, message: str, *, exit_code: ExitStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(FtctlError):
    """Bad command-line usage."""

    exit_code = ExitStatus.INVALID


class ScenarioError(FtctlError):
    """An invalid YAML document; names file, line, column and field path."""

    exit_code = ExitStatus.INVALID

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.column, self.field = file, line, column, field
        where = ""
        if file:
            where = file
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        what = f"{field}: " if field else ""
        super().__init__(f"{where}{what}{message}")


class ParseError(FtctlError):
    """A result directory that cannot be read."""

    exit_code = ExitStatus.INVALID


class PlatformError(FtctlError):
    """Deploy failed, cluster unreachable, a process did not start: infrastructure."""

    exit_code = ExitStatus.INFRA


class ClientError(FtctlError):
    """A load client could not run (tool missing, cannot start)."""

    exit_code = ExitStatus.INFRA


class FaultNotVerifiedError(FtctlError):
    """A fault that did not take effect: an error, never a silent pass (REFERENCE §9.9)."""

    exit_code = ExitStatus.CHECK_FAILED


class Interrupted(FtctlError):
    """Ctrl-C or SIGTERM; raised after cleanup."""

    exit_code = ExitStatus.INTERRUPTED
