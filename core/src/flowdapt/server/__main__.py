"""``python -m flowdapt.server [--host H] [--port P] [--services S]``: the server without the CLI.

Same as ``flowdapt run``; settings come from the app dir and ``FLOWDAPT__...`` variables.
"""

from __future__ import annotations

import argparse
import sys

from flowdapt.errors import FlowdaptError
from flowdapt.plugins import get_plugin_system
from flowdapt.server.serve import serve
from flowdapt.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowdapt.server", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--services", help="comma-separated: api, compute, triggers (default: all)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        serve(settings, get_plugin_system(settings), host=args.host, port=args.port, services=args.services)
    except FlowdaptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
