"""The rendered template plugin ("Weather Now") at two versions, for the install tests on cluster
executors: 0.2.0 changes the code of its last stage, so a run tells which version it ran."""

from __future__ import annotations

import json
from pathlib import Path

from plugin_env import build_wheel, render

WORKFLOW = "weather-now-example"
MISSING_TARGET = "target 'flowdapt_weather_now.stages.make_numbers' not found"


def weather_now_wheels(base: Path) -> dict[str, Path]:
    """``{"v1": wheel 0.1.0, "v2": wheel 0.2.0}``; v2's summary says ``"version": 2``."""
    v1 = render(base / "src-v1", plugin_name="Weather Now", version="0.1.0")
    v2 = render(base / "src-v2", plugin_name="Weather Now", version="0.2.0")
    stages = v2 / "src" / "flowdapt_weather_now" / "stages.py"
    text = stages.read_text()
    assert 'return {"count": len(scores),' in text, "the template's summarize stage changed: update this test"
    stages.write_text(text.replace('return {"count": len(scores),', 'return {"version": 2, "count": len(scores),'))
    return {"v1": build_wheel(v1, base / "v1"), "v2": build_wheel(v2, base / "v2")}


def run_workflow(server, count: int, timeout: float = 300) -> dict:
    """Start the plugin's workflow through the CLI and wait: exit code, run record, stderr."""
    proc = server.cli("start", WORKFLOW, "-i", f"count={count}", "--no-progress", "-o", "json", timeout=timeout)
    run = json.loads(proc.stdout) if proc.stdout.strip() else None
    # The error first, so an assertion message that truncates the dict still shows why a run failed.
    error = (run or {}).get("error")
    return {"error": error, "exit": proc.returncode, "run": run, "stderr": proc.stderr}
