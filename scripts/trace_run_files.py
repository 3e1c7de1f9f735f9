"""Count the Flowdapt source files one server run crosses.

Starts a live API server (uvicorn in a thread, SQLite store, Local executor in thread mode),
applies a three-stage workflow (make -> parameterized square -> total) whose stages live in
``user_modules``, runs it once to warm up, then traces one ``POST /workflows/{name}/run?wait=true``
with a profile function in every server thread and prints the Flowdapt files (core and plugins)
whose functions were called, grouped by package.

    uv run --frozen python scripts/trace_run_files.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "src"  # replaced by where flowdapt is imported from, in main()
PLUGINS = ROOT / "plugins"

STAGES = '''
def make(n: int = 10):
    return list(range(n))


def square(x):
    return x * x


def total(xs):
    return sum(xs)
'''

seen: set[str] = set()
tracing = False


def profile(frame, event, arg):  # noqa: ARG001 - the sys.setprofile signature
    if tracing and event == "call":
        seen.add(frame.f_code.co_filename)


def ours(path: str) -> str | None:
    """The path relative to core/src or plugins/, for Flowdapt's own files; else None."""
    p = Path(path)
    for base in (CORE, PLUGINS):
        try:
            return str(p.resolve().relative_to(base))
        except ValueError:
            continue
    return None


def main() -> None:
    global tracing, CORE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the file list here")
    args = parser.parse_args()

    import httpx
    import uvicorn

    import flowdapt

    CORE = Path(flowdapt.__file__).resolve().parents[1]
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
    from flowdapt.server import FlowdaptServer, create_app
    from flowdapt.settings import load_settings

    app_dir = Path(tempfile.mkdtemp(prefix="flowdapt-trace-"))
    (app_dir / "user_modules").mkdir()
    (app_dir / "user_modules" / "__init__.py").write_text("")
    (app_dir / "user_modules" / "trace_stages.py").write_text(STAGES)
    settings = load_settings(
        app_dir,
        overrides={"executor.backend": "local", "executor.options": {"mode": "thread", "workers": 2}, "cluster_memory.backend": "memory"},
    )
    plugins = create_plugin_system(load_entry_points=False, plugins=list(BUILTIN_PLUGINS))
    server = FlowdaptServer(settings, plugins)
    app = create_app(settings, plugins, server=server)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    threading.setprofile(profile)  # every thread started from here on: the server's and its pool's
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.01)
    stages = [
        {"name": "make", "target": "user_modules.trace_stages.make"},
        {"name": "square", "target": "user_modules.trace_stages.square", "type": "parameterized", "depends_on": ["make"]},
        {"name": "total", "target": "user_modules.trace_stages.total", "depends_on": ["square"]},
    ]
    doc = {"kind": "workflow", "metadata": {"name": "trace"}, "spec": {"stages": stages}}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        http.post("/workflows/", json=doc).raise_for_status()
        warm = http.post("/workflows/trace/run", params={"wait": "true"}, json={"n": 5})
        warm.raise_for_status()
        time.sleep(0.2)
        tracing = True
        response = http.post("/workflows/trace/run", params={"wait": "true"}, json={"n": 5})
        tracing = False
        response.raise_for_status()
        assert response.json()["result"] == 30, response.json()
    uv.should_exit = True
    thread.join(30)

    files = sorted({rel for path in seen if (rel := ours(path)) is not None})
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        parts = Path(rel).parts
        group = "/".join(parts[:2]) if parts[0] == "flowdapt" and len(parts) > 2 else parts[0]
        groups[group].append(rel)
    print(f"{len(files)} Flowdapt files crossed by one POST /workflows/trace/run?wait=true")
    for group in sorted(groups):
        print(f"  {group}: {len(groups[group])}")
        for rel in groups[group]:
            print(f"    {rel}")
    if args.json:
        args.json.write_text(json.dumps({"count": len(files), "files": files}, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
