"""Our version inside the original ecosystem's pins, and ``flowdapt plugin install`` never
replacing the core or what another plugin needs (issue 13 item 2).

The core's own dependencies come from the package index; the installs under test run offline
from a find-links folder of wheels built here. It also holds stand-ins
for what a package index offers: an older ``flowdapt`` (as PyPI holds the original's releases) and
a newer release of a dependency an installed plugin pins, so a resolver that is not constrained
would take them, as ``uv`` did before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from plugin_env import CORE, build_wheel, check, freeze, make_venv, run, uv, write_project  # noqa: E402

pytestmark = pytest.mark.timeout(600)

PLUGIN_FILE = {"{pkg}/__init__.py": "from flowdapt.hookspecs import hookimpl  # noqa: F401\n"}


def plugin(base: Path, name: str, dependencies: list[str], links: Path) -> Path:
    package = name.replace("-", "_")
    files = {k.format(pkg=package): v for k, v in PLUGIN_FILE.items()}
    project = write_project(base / name, name, "1.0.0", files, package.removeprefix("flowdapt_"), dependencies)
    return build_wheel(project, links)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("pins")
    links = base / "links"
    core = build_wheel(CORE, base / "core")
    # What an index offers beside ours: the original's flowdapt (older), a newer shared dependency.
    for version in ("0.0.9", "0.1.52"):
        build_wheel(write_project(base / f"old-core-{version}", "flowdapt", version, {"flowdapt/__init__.py": ""}, None, []), links)
    for version in ("1.0.0", "2.0.0"):
        build_wheel(
            write_project(base / f"dep-{version}", "compat-shared-dep", version, {"compat_shared_dep/__init__.py": ""}, None, []),
            links,
        )
    wheels = {
        "uses_dep": plugin(base, "flowdapt-uses-dep", ["flowdapt", "compat-shared-dep==1.0.0"], links),
        "needs_new_dep": plugin(base, "flowdapt-needs-new-dep", ["flowdapt", "compat-shared-dep>=2"], links),
        "old_core": plugin(base, "flowdapt-old-core", ["flowdapt<0.1"], links),
        "nowcast_pin": plugin(base, "flowdapt-nowcast-pin", ["flowdapt>=0.1.0,<1.0.0"], links),
        "cryptocast_pin": plugin(base, "flowdapt-cryptocast-pin", ["flowdapt>=0.1.3,<0.2.0"], links),
    }
    flowml_like = write_project(base / "flowml-like", "flowml-like", "0.1.1", {"flowml_like/__init__.py": ""}, None, ["flowdapt>=0.1.28,<0.2.0"])
    wheels["flowml_like"] = build_wheel(flowml_like, links)
    bin_dir = make_venv(base / "venv", core, "--find-links", links, wheels["uses_dep"])
    return {"bin": bin_dir, "links": links, "wheels": wheels, "app": base / "app"}


def installer(env: dict, *args) -> object:
    return run(
        [env["bin"] / "flowdapt", "plugin", "install", "--local", *args],
        FLOWDAPT__APP_DIR=str(env["app"]),
        UV_OFFLINE="1",
        UV_FIND_LINKS=str(env["links"]),
        PIP_FIND_LINKS=str(env["links"]),
    )


def versions(env: dict) -> dict[str, str]:
    listed = check(run([uv(), "pip", "list", "--python", env["bin"] / "python", "--format", "json"])).stdout
    return {item["name"].lower(): item["version"] for item in json.loads(listed)}


def test_a_plugin_pinning_an_old_core_is_refused_and_nothing_changes(env):
    before = freeze(env["bin"])
    proc = installer(env, env["wheels"]["old_core"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "would replace or remove what the core or another installed plugin needs: flowdapt 0.1.100 (the core)" in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert freeze(env["bin"]) == before


def test_a_plugin_needing_another_version_of_a_shared_dependency_is_refused(env):
    before = freeze(env["bin"])
    proc = installer(env, env["wheels"]["needs_new_dep"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "compat-shared-dep 1.0.0 (needed by flowdapt-uses-dep)" in proc.stderr
    assert freeze(env["bin"]) == before
    assert versions(env)["compat-shared-dep"] == "1.0.0"


def test_plugins_with_the_originals_pins_install_beside_our_core(env):
    for name in ("nowcast_pin", "cryptocast_pin"):
        proc = installer(env, env["wheels"][name], "--upgrade")
        check(proc)
        assert "flowdapt 0.1.100 ->" not in proc.stdout and "- flowdapt " not in proc.stdout
    installed = versions(env)
    assert installed["flowdapt"] == "0.1.100"
    assert {"flowdapt-nowcast-pin", "flowdapt-cryptocast-pin"} <= set(installed)


def test_a_library_pinning_flowdapt_below_0_2_installs_beside_ours_with_plain_uv(env):
    # As `uv pip install flowml` does: no constraints, an index offering the original 0.1.52.
    proc = run(
        [uv(), "pip", "install", "--python", env["bin"] / "python", "--offline", "--find-links", env["links"], "flowml-like"]
    )
    check(proc)
    assert "flowdapt" not in proc.stderr.replace("flowdapt-", ""), proc.stderr
    assert versions(env)["flowdapt"] == "0.1.100"
