"""Every executor, document store, cluster memory and event bus that a plugin of this workspace registers
runs the shipped conformance suite of its kind in that plugin's tests, so a new backend cannot
skip its suite by accident (the PostgreSQL store, a new executor...).

Read from the test sources: a ``Backend("<kind>", "<name>", ...)`` and a ``Test...`` class that
subclasses the kind's suite, in the plugin's ``tests/`` (the core's: ``tests/`` and ``core/tests``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from flowdapt.plugins import create_plugin_system

ROOT = Path(__file__).resolve().parents[2]
SUITES = {
    "executors": "ExecutorConformance",
    "document_stores": "DocumentStoreConformance",
    "cluster_memory": "ClusterMemoryConformance",
    "event_buses": "EventBusConformance",
}


def _test_dirs(distribution: str | None) -> list[Path]:
    if distribution == "flowdapt":
        return [ROOT / "tests", ROOT / "core" / "tests"]
    return [ROOT / "plugins" / str(distribution) / "tests"]


def _what_the_tests_run(dirs: list[Path]) -> tuple[set[tuple[str, str]], set[str]]:
    """(kind, name) of every literal ``Backend(kind, name, ...)``, and the suites subclassed."""
    backends: set[tuple[str, str]] = set()
    suites: set[str] = set()
    for directory in dirs:
        for path in directory.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Backend":
                    args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
                    if len(args) == 2:
                        backends.add((args[0], args[1]))
                elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                    suites.update(b.id for b in node.bases if isinstance(b, ast.Name) and b.id in SUITES.values())
    return backends, suites


def test_every_registered_backend_of_the_workspace_runs_its_suite():
    system = create_plugin_system()  # deliberately the installed plugins: a new one must join
    checked, missing = [], []
    for kind, suite in SUITES.items():
        for name in system.names(kind):
            info = system.plugins[system.get(kind, name).plugin]
            dirs = [d for d in _test_dirs(info.distribution) if d.is_dir()]
            if not dirs:
                continue  # installed from elsewhere: its own repository runs the suites
            backends, suites = _what_the_tests_run(dirs)
            checked.append(f"{kind}/{name}")
            if (kind, name) not in backends or suite not in suites:
                missing.append(f"{kind} '{name}' of {info.distribution} (subclass {suite} in {dirs[0]})")
    assert not missing, "backends that do not run the shipped conformance suite: " + "; ".join(missing)
    assert {"executors/local", "document_stores/sqlite", "cluster_memory/memory", "event_buses/memory", "event_buses/nats"} <= set(checked)
