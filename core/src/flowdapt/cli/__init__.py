"""The ``flowdapt`` command line (:mod:`flowdapt.cli.main`).

The console script enters here, so ``flowdapt --version`` answers without importing the command
line's libraries.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-v"]):
        from flowdapt import __version__

        print(f"flowdapt {__version__}")
        return
    from flowdapt.cli.main import main as full_main

    full_main(args)
