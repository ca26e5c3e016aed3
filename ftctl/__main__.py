"""Allow `python -m ftctl`."""

from ftctl.cli import main

main()
