"""The import contracts in the root pyproject.toml hold (docs/architecture.md, "Layers").

``lint-imports`` (import-linter) checks that the foundations (hookspecs, settings, errors) sit below
the resource models, below the engine, below the run-time pieces (Python API, plugin manager,
object store, artifacts, events), below the services and built-ins (server, triggers, CLI, built-in
plugins, client), and that no two sibling modules or packages import each other, directly or round
a loop. An import deferred into a function counts; one under ``if TYPE_CHECKING:`` does not.
Running it here makes the suite's command enforce the contracts.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(*args: str) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: run `uv sync --all-packages` (dev group)"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_import_contracts_are_kept():
    result = _lint()
    assert result.returncode == 0, f"import contracts broken:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout


def test_the_contracts_name_every_top_level_module_of_the_core():
    """A new top-level module or package must be given a layer, or the contract would not see it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    named = {m.strip() for layer in layers["layers"] for m in layer.replace("|", ":").split(":")}
    package = ROOT / "core" / "src" / "flowdapt"
    modules = {
        f"flowdapt.{p.stem if p.suffix == '.py' else p.name}"
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert modules - named == set(), f"modules without a layer in pyproject.toml: {sorted(modules - named)}"
    assert named - modules == set(), f"layers naming modules that do not exist: {sorted(named - modules)}"


def test_a_wrong_way_import_is_reported(tmp_path):
    """The check sees the real import graph: a contract the code does not keep (the engine above
    the server, which imports it) is reported broken, naming the import."""
    (tmp_path / "contracts.toml").write_text(
        '[tool.importlinter]\nroot_packages = ["flowdapt"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "engine above server (deliberately wrong)"\n'
        'type = "layers"\n'
        'layers = ["flowdapt.engine", "flowdapt.server"]\n'
    )
    result = _lint("--config", str(tmp_path / "contracts.toml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "flowdapt.server is not allowed to import flowdapt.engine" in result.stdout
