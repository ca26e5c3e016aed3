"""The CLI shell: version, help, usage errors."""

from ftctl import __version__
from tests.conftest import run_cli


def test_version_prints_package_version():
    assert run_cli("--version").stdout.strip() == f"ftctl {__version__}"


def test_unknown_command_exits_2_without_traceback():
    result = run_cli("no-such-command", expect=2)
    assert "Traceback" not in result.stderr
