"""No module imports another package's private names.

A name with one leading underscore (``_client``, ``_Call``) or a module whose name starts with one
(``stores/_common.py``) is private to the package it lives in: the modules of that package may
share it, nothing outside may use it. Plugins (ours and third-party ones) reach the CLI, the
server and the client through public names (docs/hooks.md, "Public API for plugins"), so those
stay free to change their internals. The scan reads every module under ``core/src`` and
``plugins/*/src`` with :mod:`ast`: ``from m import _x``, ``import m._x``, ``from . import _x``
and attribute access ``m._x`` on a module imported under another name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [ROOT / "core" / "src", *sorted((ROOT / "plugins").glob("*/src"))]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


@dataclass(frozen=True)
class Module:
    name: str  # dotted
    package: str  # the package it belongs to (itself for an __init__)
    path: Path


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
                package = ".".join(parts)
            else:
                package = ".".join(parts[:-1])
            found[".".join(parts)] = Module(".".join(parts), package, path)
    return found


MODULES = _modules()


def _owner(dotted: str) -> str:
    """The package that owns the first private part of ``a.b._c.d`` (``a.b``), or of a private name
    ``_x`` defined in module ``a.b.m`` (the package of ``a.b.m``)."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            container = ".".join(parts[:i])
            module = MODULES.get(container)
            if module is not None:
                return module.package
            # not one of ours (a third-party module): its own top-level package owns it
            return container
    return ""


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".") if module.package else []
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *(node.module.split(".") if node.module else [])])


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def violations_in(module: Module) -> list[str]:
    tree = ast.parse(module.path.read_text(), filename=str(module.path))
    problems: list[str] = []
    aliases: dict[str, str] = {}  # local name -> dotted module it stands for

    def check(dotted: str, lineno: int) -> None:
        if not any(_private(p) for p in dotted.split(".")):
            return
        owner = _owner(dotted)
        if owner != module.package:
            problems.append(f"{module.path.relative_to(ROOT)}:{lineno} uses {dotted} (private to {owner or 'its module'})")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if alias.name == "*":
                    continue
                target = f"{source}.{alias.name}" if source else alias.name
                check(target, node.lineno)
                if target in MODULES:
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                check(alias.name, node.lineno)
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases.setdefault(top, top)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            dotted = _dotted(node)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head not in aliases:
                continue  # an attribute of an object, not of a module
            resolved = f"{aliases[head]}.{rest}"
            # only a chain of modules ending in the private name counts: m._x, a.b._x
            container = resolved.rsplit(".", 1)[0]
            if container in MODULES or aliases[head] == container:
                check(resolved, node.lineno)
    return problems


def test_the_scan_sees_the_workspace():
    assert "flowdapt.cli.api" in MODULES
    assert "flowdapt.server.api" in MODULES
    assert any(name.startswith("flowdapt_lmdb") for name in MODULES)


@pytest.mark.parametrize(
    ("source", "package", "expected"),
    [
        ("from flowdapt.cli.client import _api_call\n", "flowdapt.builtin.triggers", 1),
        ("from flowdapt.client import Client, _Call\n", "flowdapt.cli", 1),
        ("from flowdapt import client\nclient._Call('GET', '/')\n", "flowdapt.cli", 1),
        ("import flowdapt.client\nflowdapt.client._clean({})\n", "flowdapt.cli", 1),
        ("from flowdapt.builtin.stores._common import x\n", "flowdapt.server", 1),
        ("from pydantic._internal import _fields\n", "flowdapt", 1),
        # siblings of one package may share a private name or module
        ("from flowdapt.builtin.stores._common import x\n", "flowdapt.builtin.stores", 0),
        ("from ._common import x\n", "flowdapt.builtin.stores", 0),
        ("from flowdapt.resources.base import _naive\n", "flowdapt.resources", 0),
        # attributes of objects are not imports; public names are fine
        ("self._http.close()\nfrom flowdapt.cli.api import call\n", "flowdapt.cli", 0),
    ],
)
def test_the_rule(tmp_path, source, package, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    probe = Module(f"{package}.probe", package, path)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(violations_in(probe)) == expected, violations_in(probe)
    finally:
        ROOT = saved


def test_no_module_imports_another_packages_private_names():
    problems = [p for module in MODULES.values() for p in violations_in(module)]
    assert not problems, "private names used outside their package:\n" + "\n".join(problems)
