"""FlowdaptWorkerPlugin on one worker, across code generations: stale plugin modules are forgotten,
shipped plugin packages are unpacked onto sys.path and replaced by the next generation's."""

from __future__ import annotations

import sys
import types

import pytest

from flowdapt_dask.executor import FlowdaptWorkerPlugin, zip_packages


@pytest.fixture
def worker(tmp_path, monkeypatch):
    import flowdapt.plugins

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(flowdapt.plugins, "_default", flowdapt.plugins._default)  # a reload resets it
    yield types.SimpleNamespace(local_directory=str(tmp_path / "worker"))
    for name in [m for m in sys.modules if m.split(".")[0] == "reload_probe_pkg"]:
        del sys.modules[name]


def package(tmp_path, version: int) -> str:
    root = tmp_path / f"src{version}" / "reload_probe_pkg"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text(f"VERSION = {version}\n")
    return str(root)


def plugin(generation: int, packages: bytes | None, stale: dict[int, list[str]] | None = None) -> FlowdaptWorkerPlugin:
    made = FlowdaptWorkerPlugin([], None, {}, generation, stale, packages)
    made.driver_pid = -1  # as on a worker process, not the driver's
    return made


def test_shipped_packages_are_importable_and_replaced_by_the_next_generation(tmp_path, worker):
    plugin(0, zip_packages([package(tmp_path, 1)])).setup(worker)
    import reload_probe_pkg

    assert reload_probe_pkg.VERSION == 1
    first_dir = worker._flowdapt_state["packages_dir"]
    assert sys.path[0] == first_dir

    plugin(1, zip_packages([package(tmp_path, 2)]), {1: ["reload_probe_pkg"]}).setup(worker)
    import reload_probe_pkg

    assert reload_probe_pkg.VERSION == 2
    assert first_dir not in sys.path

    plugin(2, None, {1: ["reload_probe_pkg"], 2: ["reload_probe_pkg"]}).setup(worker)
    assert "reload_probe_pkg" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import reload_probe_pkg  # noqa: F401


def test_a_worker_joining_later_keeps_what_it_imported(tmp_path, worker):
    shipped = zip_packages([package(tmp_path, 1)])
    plugin(3, shipped, {3: ["reload_probe_pkg"]}).setup(worker)
    import reload_probe_pkg

    plugin(3, shipped, {3: ["reload_probe_pkg"]}).setup(worker)  # the same generation again
    assert sys.modules["reload_probe_pkg"] is reload_probe_pkg
    assert worker._flowdapt_state["generation"] == 3


def test_a_worker_set_up_for_another_executor_forgets_its_user_modules(tmp_path, worker):
    """A restarted server's executor starts again at generation 0 on a long-lived cluster: the
    workers must not keep the user_modules the previous server's runs imported."""
    sys.modules["user_modules"] = types.ModuleType("user_modules")
    sys.modules["user_modules.mine"] = types.ModuleType("user_modules.mine")
    first = FlowdaptWorkerPlugin([], None, {}, 2, {1: ["user_modules"], 2: ["user_modules"]}, lineage="earlier")
    first.driver_pid = -1
    first.setup(worker)
    assert "user_modules.mine" in sys.modules  # a first setup on a fresh worker forgets nothing

    restarted = FlowdaptWorkerPlugin([], None, {}, 0, {}, lineage="restarted")
    restarted.driver_pid = -1
    restarted.setup(worker)
    assert "user_modules" not in sys.modules and "user_modules.mine" not in sys.modules
    assert worker._flowdapt_state["lineage"] == "restarted"
