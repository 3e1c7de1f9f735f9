"""The object store API: strategies, fallback, write-through, namespaces, the original's import
path, and use from stages on every Local executor mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # object_store_stages, for this process and the workers it starts

from flowdapt import execute_workflow, object_store  # noqa: E402
from flowdapt.builtin.local_executor import LocalExecutor  # noqa: E402
from flowdapt.engine.context import RunContext, reset_run_context, set_run_context  # noqa: E402
from flowdapt.object_store import ObjectNotFoundError, Strategy  # noqa: E402
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system  # noqa: E402
from flowdapt.resources.run import WorkflowRun  # noqa: E402
from flowdapt.resources.workflow import Workflow  # noqa: E402
from flowdapt.settings import load_settings, set_settings  # noqa: E402

PLUGINS = [*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")]
MiB = 1 << 20


@pytest.fixture
def configure(tmp_path, monkeypatch):
    """``configure(**overrides)`` installs settings in a fresh app dir (dotted override keys)."""
    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)
    set_plugin_system(create_plugin_system(load_entry_points=False, plugins=PLUGINS))

    def apply(**overrides):
        object_store.reset_cluster_memory()
        # The stage module beside these tests is an allowed target, as a user's package would be.
        settings = load_settings(
            app_dir=tmp_path / "app",
            overrides={"allowed_targets": ["object_store_stages"], **{k.replace("__", "."): v for k, v in overrides.items()}},
        )
        set_settings(settings)
        return settings

    yield apply
    object_store.reset_cluster_memory()
    set_settings(None)
    set_plugin_system(None)


@pytest.fixture
def settings(configure):
    return configure()


def artifact_dir(settings, key: str, namespace: str = "default") -> Path:
    return settings.app_dir / "artifacts" / namespace / key


# -- the basics ---------------------------------------------------------------------------------------


def test_put_get_delete_exists_keys_clear(settings):
    object_store.put("a", {"x": 1})
    object_store.put("b", np.arange(3))
    assert object_store.get("a") == {"x": 1}
    np.testing.assert_array_equal(object_store.get("b"), [0, 1, 2])
    assert object_store.exists("a") and not object_store.exists("zzz")
    assert object_store.keys() == ["a", "b"]
    assert object_store.delete("a") is True
    assert object_store.delete("a") is False
    object_store.clear()
    assert object_store.keys() == []


def test_missing_key_error_names_key_and_namespace(settings):
    with pytest.raises(KeyError) as info:
        object_store.get("nope", namespace="prod")
    assert isinstance(info.value, ObjectNotFoundError)
    assert (
        str(info.value)
        == "no object 'nope' in namespace 'prod' (looked in cluster memory (lmdb) and artifacts)"
    )
    with pytest.raises(ObjectNotFoundError, match="'nope' in namespace 'prod' .looked in artifacts"):
        object_store.get("nope", namespace="prod", strategy="artifact")
    with pytest.raises(ObjectNotFoundError, match=r"looked in cluster memory \(lmdb\)\)$"):
        object_store.get("nope", namespace="prod", strategy="cluster_memory")


def test_unknown_strategy_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="unknown object store strategy 'disk'"):
        object_store.put("k", 1, strategy="disk")


def test_default_namespace_outside_a_run_comes_from_settings(configure):
    configure(compute__default_namespace="research")
    object_store.put("k", 1)
    assert object_store.keys("research") == ["k"]
    assert object_store.get("k", namespace="research") == 1


def test_namespace_comes_from_the_run_context(settings):
    definition = Workflow.model_validate(
        {
            "kind": "workflow",
            "metadata": {"name": "w"},
            "spec": {"stages": [{"name": "s", "target": "object_store_stages.namespace_seen"}]},
        }
    )
    ctx = RunContext(
        input={},
        config={},
        namespace="nowcast",
        executor="local",
        definition=definition,
        run=WorkflowRun(workflow="w"),
    )
    token = set_run_context(ctx)
    try:
        object_store.put("model", 7)
        assert object_store.get("model") == 7
    finally:
        reset_run_context(token)
    assert object_store.keys("nowcast") == ["model"]
    assert not object_store.exists("model")  # "default" outside the run


# -- strategies -----------------------------------------------------------------------------------------


def test_cluster_memory_strategy_writes_no_artifact(settings):
    object_store.put("k", 1, strategy=Strategy.CLUSTER_MEMORY)
    assert object_store.get("k", strategy="cluster_memory") == 1
    assert not artifact_dir(settings, "k").exists()
    assert object_store.cluster_memory().get("k") == 1


def test_artifact_strategy_writes_only_an_artifact(settings):
    object_store.put("k", {"v": 2}, strategy="artifact")
    assert not object_store.cluster_memory().exists("k")
    folder = artifact_dir(settings, "k")
    assert (folder / "object").exists()
    assert b'"value_type":"object"' in (folder / ".artifact.json").read_bytes()
    assert object_store.get("k", strategy="artifact") == {"v": 2}
    assert object_store.get("k") == {"v": 2}  # fallback finds it too
    assert object_store.keys(strategy="artifact") == ["k"]


def test_fallback_sends_what_does_not_fit_to_artifacts(configure):
    settings = configure(cluster_memory__options={"max_size": MiB, "eviction": "none"})
    big = np.random.default_rng(0).random(MiB // 4)  # 2 MiB, over the limit
    object_store.put("big", big)
    object_store.put("small", [1, 2])
    assert not object_store.cluster_memory().exists("big")
    assert (artifact_dir(settings, "big") / "object").exists()
    np.testing.assert_array_equal(object_store.get("big"), big)
    assert object_store.exists("big")
    assert object_store.keys() == ["big", "small"]
    with pytest.raises(object_store.ClusterMemoryFullError, match="max_size"):
        object_store.put("big", big, strategy="cluster_memory")


def test_fallback_never_serves_a_stale_artifact(configure):
    settings = configure(cluster_memory__options={"max_size": MiB})
    object_store.put("k", np.zeros(MiB // 4))  # too big: an artifact
    assert artifact_dir(settings, "k").exists()
    object_store.put("k", "small now")  # fits: cluster memory, and the old artifact goes
    assert not artifact_dir(settings, "k").exists()
    object_store.cluster_memory().clear()  # e.g. evicted
    with pytest.raises(ObjectNotFoundError):
        object_store.get("k")


def test_fallback_delete_removes_both_copies(configure):
    configure(object_store__write_through=True)
    object_store.put("k", 1)
    assert object_store.cluster_memory().exists("k") and object_store.exists("k", strategy="artifact")
    assert object_store.delete("k") is True
    assert not object_store.exists("k")
    assert not object_store.exists("k", strategy="artifact")


def test_write_through_survives_losing_cluster_memory_and_warms_it_again(configure):
    configure(object_store__write_through=True)
    object_store.put("model", {"coef": np.arange(3.0)})
    memory = object_store.cluster_memory()
    memory.clear()  # a restart with an empty cluster memory, an eviction, a TTL...
    np.testing.assert_array_equal(object_store.get("model")["coef"], [0.0, 1.0, 2.0])
    assert memory.exists("model")  # warmed by the read


def test_write_through_per_call(settings):
    object_store.put("k", 1, write_through=True)
    assert object_store.exists("k", strategy="artifact")
    object_store.put("j", 1)
    assert not object_store.exists("j", strategy="artifact")


def test_ttl_applies_to_cluster_memory(settings):
    import time

    object_store.put("k", 1, ttl=0.2)
    assert object_store.get("k") == 1
    time.sleep(0.35)
    assert not object_store.exists("k")


def test_default_strategy_from_settings(configure):
    settings = configure(object_store__default_strategy="artifact")
    object_store.put("k", 1)
    assert artifact_dir(settings, "k").exists()
    assert not object_store.cluster_memory().exists("k")


def test_keys_that_are_not_artifact_names_still_work_as_artifacts(settings):
    for key in ("model/BTC-USD", "a:b", "_k_looks_encoded"):
        object_store.put(key, key.upper(), strategy="artifact")
    assert object_store.keys(strategy="artifact") == sorted(["model/BTC-USD", "a:b", "_k_looks_encoded"])
    assert object_store.get("model/BTC-USD", strategy="artifact") == "MODEL/BTC-USD"


def test_a_value_that_cannot_be_pickled_leaves_nothing_behind(settings):
    import threading

    with pytest.raises(TypeError):
        object_store.put("lock", threading.Lock())
    assert not object_store.exists("lock")
    assert not artifact_dir(settings, "lock").exists()


def test_clear_removes_values_but_not_hand_built_artifacts(settings):
    from flowdapt.artifacts import get_artifact

    object_store.put("value", 1, strategy="artifact")
    hand_built = get_artifact("report", create=True)
    hand_built.new_file("summary.txt", "hello")
    object_store.clear()
    assert object_store.keys() == []
    assert get_artifact("report").get_file("summary.txt").read() == b"hello"


def test_stats_report_the_cluster_memory(settings):
    object_store.put("k", b"x" * 1000)
    stats = object_store.stats()
    assert stats["default_strategy"] == "fallback"
    assert stats["cluster_memory"]["backend"] == "lmdb"
    assert stats["cluster_memory"]["keys"] == 1 and stats["cluster_memory"]["bytes"] >= 1000


# -- the default cluster memory: auto ------------------------------------------------------------------


def test_the_default_cluster_memory_is_lmdb_when_its_plugin_is_installed(settings):
    assert settings.cluster_memory.backend == "auto"
    object_store.put("k", 1)
    assert object_store.stats()["cluster_memory"]["backend"] == "lmdb"
    assert (settings.app_dir / "cluster_memory.lmdb" / "data.mdb").exists()
    # naming it explicitly is the same backend, not a second LMDB environment on the same files
    assert object_store.cluster_memory(backend="lmdb") is object_store.cluster_memory()


def test_with_the_core_alone_the_default_falls_back_to_memory_and_says_so(configure, caplog):
    set_plugin_system(create_plugin_system(load_entry_points=False, plugins=BUILTIN_PLUGINS))
    settings = configure()
    with caplog.at_level("WARNING", logger="flowdapt.plugins"):
        object_store.put("k", {"a": 1})
        assert object_store.get("k") == {"a": 1}
        object_store.put("k2", 2)
    assert object_store.stats()["cluster_memory"]["backend"] == "memory"
    warnings = [r.getMessage() for r in caplog.records if "cluster_memory.backend" in r.getMessage()]
    assert len(warnings) == 1, "warned once, not on every call"
    assert "no plugin registers 'lmdb' (pip install flowdapt-lmdb)" in warnings[0]
    assert "worker processes do not share" in warnings[0]
    assert not (settings.app_dir / "cluster_memory.lmdb").exists()
    with pytest.raises(ObjectNotFoundError, match=r"looked in cluster memory \(memory\) and artifacts"):
        object_store.get("nope")


def test_naming_lmdb_without_its_plugin_fails_with_what_to_install(configure):
    from flowdapt.errors import PluginNotFoundError

    set_plugin_system(create_plugin_system(load_entry_points=False, plugins=BUILTIN_PLUGINS))
    configure(cluster_memory__backend="lmdb")
    with pytest.raises(PluginNotFoundError, match="pip install flowdapt-lmdb"):
        object_store.put("k", 1)


# -- the original's import path -------------------------------------------------------------------------


def test_compat_import_paths_and_signatures(settings):
    from flowdapt.compute import object_store as compat
    from flowdapt.compute.cluster_memory import get_from_cluster_memory, put_in_cluster_memory

    compat.put("k", {"a": 1}, namespace="", artifact_only=True, cluster_memory_params={}, artifact_params={})
    assert compat.get("k", artifact_only=True) == {"a": 1}
    assert compat.exists("k", namespace="", artifact_only=True)
    compat.put("m", 5, executor="local", save_artifact_hook=compat.default_save_hook())
    assert compat.get("m", load_artifact_hook=compat.default_load_hook()) == 5
    assert compat.Strategy.FALLBACK == "fallback"
    compat.delete("k", artifact_only=True)
    assert not compat.exists("k", artifact_only=True)
    put_in_cluster_memory("cm", [1], backend="local")
    assert get_from_cluster_memory("cm") == [1]


def test_a_save_hook_decides_the_format_and_get_restores_the_type(settings):
    import pandas as pd

    from flowdapt.compute.artifacts.dataset import dataframe_to_artifact

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    object_store.put("frame", frame, strategy="artifact", save_artifact_hook=dataframe_to_artifact())
    assert (artifact_dir(settings, "frame") / "partition-0.parquet").exists()
    got = object_store.get("frame")
    assert isinstance(got, pd.DataFrame)
    pd.testing.assert_frame_equal(got, frame)


# -- inside stages, on every Local executor mode -------------------------------------------------------


def map_workflow(name: str, target: str, n: int) -> dict:
    return {
        "kind": "workflow",
        "metadata": {"name": name},
        "spec": {
            "stages": [
                {"name": "ids", "target": "object_store_stages.model_ids"},
                {
                    "name": "each",
                    "target": f"object_store_stages.{target}",
                    "type": "parameterized",
                    "depends_on": ["ids"],
                },
            ]
        },
    }


@pytest.mark.parametrize("mode", ["process", "thread", "inline"])
def test_a_map_stage_puts_1000_models_and_another_run_gets_every_one(configure, mode):
    settings = configure()
    n = 1000
    trainer = LocalExecutor(mode, workers=2, settings=settings)
    run = execute_workflow(map_workflow("train", "train", n), {"n": n}, executor=trainer, namespace="nowcast")
    assert run.state == "finished", run.error
    train_pids = set(run.result)
    assert object_store.keys("nowcast") == sorted(f"model-{i}" for i in range(n))

    server = LocalExecutor(mode, workers=2, settings=settings)  # a new pool: other processes
    run = execute_workflow(map_workflow("serve", "serve", n), {"n": n}, executor=server, namespace="nowcast")
    assert run.state == "finished", run.error
    assert len(run.result) == n and all(ok for _, ok in run.result)
    serve_pids = {pid for pid, _ in run.result}
    if mode == "process":
        assert os.getpid() not in train_pids | serve_pids
        assert not train_pids & serve_pids, "the second run should use new worker processes"
    else:
        assert serve_pids == {os.getpid()}


def test_stages_on_the_memory_backend_share_values_in_thread_mode(configure):
    settings = configure(cluster_memory__backend="memory")
    executor = LocalExecutor("thread", workers=4, settings=settings)
    run = execute_workflow(map_workflow("train", "train", 50), {"n": 50}, executor=executor)
    assert run.state == "finished", run.error
    run = execute_workflow(map_workflow("serve", "serve", 50), {"n": 50}, executor=executor)
    assert run.state == "finished", run.error
    assert all(ok for _, ok in run.result)
    assert object_store.cluster_memory().name == "memory"
    assert not (settings.app_dir / "cluster_memory.lmdb").exists()


def test_stage_namespace_is_the_runs(configure):
    settings = configure()
    workflow = {
        "kind": "workflow",
        "metadata": {"name": "ns"},
        "spec": {"stages": [{"name": "s", "target": "object_store_stages.namespace_seen"}]},
    }
    run = execute_workflow(
        workflow, executor=LocalExecutor("process", workers=1, settings=settings), namespace="team-a"
    )
    assert run.result == "team-a"
    assert object_store.get("where-am-i", namespace="team-a") == "team-a"


def test_values_survive_a_restart(configure, tmp_path):
    settings = configure()
    object_store.put("in-memory", {"v": 1})
    object_store.put("on-disk", {"v": 2}, strategy="artifact")
    object_store.reset_cluster_memory()
    code = textwrap.dedent(
        """
        import json
        from flowdapt.compute import object_store
        print(json.dumps([object_store.get("in-memory"), object_store.get("on-disk", artifact_only=True)]))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    env["FLOWDAPT__APP_DIR"] = str(settings.app_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '[{"v": 1}, {"v": 2}]'
