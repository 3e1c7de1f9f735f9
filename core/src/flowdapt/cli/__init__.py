"""The ``flowdapt`` command line (:mod:`flowdapt.cli.main`).

The console script enters here, so ``flowdapt --version`` answers without importing the command
line's libraries.
"""

from __future__ import annotations

import sys


def command_name(args: list[str]) -> str | None:
    """The sub-command named on the command line (the first word that is not an option)."""
    takes_value = {"--app-dir", "-d", "--config", "-c", "--override", "-o"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-v"]):
        from flowdapt import __version__

        print(f"flowdapt {__version__}")
        return
    if command_name(args) == "exec" and not {"--executor", "-e", "--mode"} & set(args):
        # The Local executor's workers fork from a fork server that needs ~0.3 s to import its
        # modules: start it before this process imports the command line, so both run at once.
        from flowdapt.engine.fork_server import prestart_fork_server

        prestart_fork_server()
    from flowdapt.cli.main import main as full_main

    full_main(args)
