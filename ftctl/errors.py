"""Exit statuses and the one error hierarchy that carries them to the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    summary: str | None = None  # a closing line after several errors ("3 errors in 2 files")

    def __init__(self, message: str, *, exit_code: ExitStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        """What the CLI prints, one ``ftctl: error:`` line each."""
        return self.message.splitlines() or [self.message]


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


class ScenarioErrors(FtctlError):
    """Every error found in a set of documents, sorted by file, line and column (exit 2).

    A user fixes a file in one pass only if they see all of its problems at once.
    """

    exit_code = ExitStatus.INVALID

    def __init__(self, errors: list[ScenarioError]) -> None:
        unique: dict[str, ScenarioError] = {}
        for err in errors:
            unique.setdefault(err.message, err)
        self.errors = sorted(
            unique.values(), key=lambda e: (e.file or "", e.line or 0, e.column or 0, e.message)
        )
        files = len({e.file for e in self.errors})
        count = len(self.errors)
        self.summary = f"{count} error{'s' * (count != 1)} in {files} file{'s' * (files != 1)}"
        super().__init__("\n".join(e.message for e in self.errors))

    def lines(self) -> list[str]:
        return [e.message for e in self.errors]


def raise_all(errors: list[FtctlError]) -> None:
    """Raise nothing, the one error, or every ScenarioError together."""
    if not errors:
        return
    scenario = [e for e in errors if isinstance(e, ScenarioError)]
    for err in errors:
        if isinstance(err, ScenarioErrors):
            scenario.extend(err.errors)
        elif not isinstance(err, ScenarioError):
            raise err
    if len(scenario) == 1:
        raise scenario[0]
    raise ScenarioErrors(scenario)


class ErrorCollector:
    """Gathers document errors so independent parts are all checked before raising."""

    def __init__(self) -> None:
        self.errors: list[FtctlError] = []

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Run a block; a ScenarioError(s) it raises is kept, anything else propagates."""
        try:
            yield
        except (ScenarioError, ScenarioErrors) as exc:
            self.errors.append(exc)

    def raise_if_any(self) -> None:
        raise_all(self.errors)


class OptionError(UsageError):
    """A bad option value given to the core (exit 2). ``option`` is its field name: the core
    never names a flag; the command layer does (``phrase``)."""

    def __init__(self, option: str, problem: str) -> None:
        self.option, self.problem = option, problem
        super().__init__(f"{option}: {problem}")

    def phrase(self, flag: str) -> str:
        """The message with the option named as the user typed it."""
        return f"{flag}: {self.problem}"


class OptionNotTakenError(OptionError):
    """A run option the test's platform does not take (exit 2), e.g. a namespace for local."""

    def __init__(self, option: str, platform: str, test: str | None = None) -> None:
        self.platform, self.test = platform, test
        where = f" (test {test})" if test else ""
        super().__init__(option, f"the {platform} platform does not take this option{where}")


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
