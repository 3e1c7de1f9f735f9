"""Artifacts: the original's API on fsspec (file and memory protocols), metadata, transactions,
value hooks that restore the right type, plugin-registered handlers, and a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import uuid

import numpy as np
import pandas as pd
import pytest

from flowdapt import object_store
from flowdapt.artifacts import (
    Artifact,
    ArtifactFile,
    get_artifact,
    list_artifacts,
    load_value,
    new_artifact,
    save_value,
)
from flowdapt.artifacts import handlers as handlers_module
from flowdapt.compute.artifacts import check_if_artifact_exists
from flowdapt.compute.artifacts.dataset import (
    array_from_artifact,
    array_to_artifact,
    dataframe_from_artifact,
    dataframe_to_artifact,
)
from flowdapt.compute.artifacts.misc import (
    json_from_artifact,
    json_to_artifact,
    pickle_from_artifact,
    pickle_to_artifact,
)
from flowdapt.hookspecs import hookimpl
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system, set_plugin_system
from flowdapt.settings import load_settings, set_settings


@pytest.fixture
def configure(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("FLOWDAPT__"):
            monkeypatch.delenv(key)

    def apply(**overrides):
        object_store.reset_cluster_memory()
        settings = load_settings(
            app_dir=tmp_path / "app", overrides={k.replace("__", "."): v for k, v in overrides.items()}
        )
        set_settings(settings)
        return settings

    yield apply
    object_store.reset_cluster_memory()
    set_settings(None)


@pytest.fixture
def settings(configure):
    return configure()


@pytest.fixture
def memory_settings(configure):
    # A fresh base path per test: the memory filesystem is one per process.
    return configure(storage__protocol="memory", storage__base_path=f"/t-{uuid.uuid4().hex[:8]}")


def test_default_location_is_the_app_dir(settings):
    artifact = new_artifact("models")
    assert artifact.path == f"{settings.app_dir}/artifacts/default/models"
    assert artifact.uri == f"file://{settings.app_dir}/artifacts/default/models"
    assert (settings.app_dir / "artifacts" / "default" / "models").is_dir()
    assert artifact.namespace == "default" and artifact.name == "models"


def test_memory_protocol_from_settings(memory_settings):
    artifact = new_artifact("test_artifact")
    base = memory_settings.storage.base_path
    assert artifact.uri == f"memory://{base}/artifacts/default/test_artifact"
    artifact.new_file("a.txt", "hello")
    assert get_artifact("test_artifact").get_file("a.txt").read() == b"hello"


def test_get_new_list_exists(settings):
    with pytest.raises(
        FileNotFoundError, match="No Artifact existing in namespace `default` with the name `x`"
    ):
        get_artifact("x")
    assert not check_if_artifact_exists("x")
    created = get_artifact("x", create=True)
    assert check_if_artifact_exists("x")
    with pytest.raises(FileExistsError):
        new_artifact("x")
    new_artifact("y", namespace="other")
    new_artifact("a")
    assert [a.name for a in list_artifacts()] == ["a", "x"]
    assert [a.name for a in list_artifacts("other")] == ["y"]
    assert list_artifacts("empty") == []
    assert get_artifact("x") == created


def test_names_are_checked(settings):
    for bad in ("has space", "slash/inside", "", "dot.dot"):
        with pytest.raises(ValueError):
            new_artifact(bad)


def test_files_and_metadata(settings):
    artifact = new_artifact("a")
    assert artifact.is_empty and not artifact
    assert artifact.metadata == {}
    artifact["owner"] = "team"
    artifact.set_meta("version", 3)
    assert artifact["owner"] == "team" and artifact.get_meta("missing", "dflt") == "dflt"
    del artifact["owner"]
    assert get_artifact("a").metadata == {"version": 3}
    assert (settings.app_dir / "artifacts/default/a/.artifact.json").exists()

    text = artifact.new_file("notes.txt", "hi")
    assert isinstance(text, ArtifactFile) and text.name == "notes.txt"
    artifact.new_file("data.bin", b"\x00\x01")
    with pytest.raises(FileExistsError):
        artifact.new_file("data.bin", b"", exist_ok=False)
    assert "notes.txt" in artifact and artifact.has_file("data.bin") and bool(artifact)
    assert [f.name for f in artifact.list_files()] == ["data.bin", "notes.txt"]
    assert [f.name for f in artifact.list_files(include_meta=True)] == [
        ".artifact.json",
        "data.bin",
        "notes.txt",
    ]
    assert [f.name for f in artifact] == ["data.bin", "notes.txt"]
    assert artifact.get_file("notes.txt").read(mode="r") == "hi"
    with artifact.get_file("notes.txt").open("w") as handle:
        handle.write("rewritten")
    assert artifact.get_file("notes.txt").read() == b"rewritten"
    artifact.get_file("notes.txt").write(b"bytes")
    assert artifact.get_file("notes.txt").read(3) == b"byt"
    with pytest.raises(FileNotFoundError):
        artifact.get_file("absent")
    assert artifact.get_file("created", create=True).read() == b""
    artifact.delete_file("created")
    assert not artifact.has_file("created")
    artifact.clear()
    assert artifact.is_empty and artifact.metadata == {} and artifact.exists
    artifact.delete()
    assert not artifact.exists
    assert not check_if_artifact_exists("a")


def test_transaction_writes_at_the_end_or_not_at_all(memory_settings):
    artifact = new_artifact("tx")
    with artifact.transaction():
        with artifact.new_file("one.txt").open("wb") as handle:
            handle.write(b"1")
        assert not artifact.has_file("one.txt")  # not committed yet
    assert artifact.get_file("one.txt").read() == b"1"

    with pytest.raises(RuntimeError):
        with artifact.transaction():
            with artifact.get_file("one.txt").open("wb") as handle:
                handle.write(b"changed")
            raise RuntimeError("abort")
    assert artifact.get_file("one.txt").read() == b"1"


def test_value_hooks_restore_the_right_type(settings):
    frame = pd.DataFrame({"price": [1.5, 2.5], "sym": ["BTC", "ETH"]})
    array = np.arange(12, dtype=np.int16).reshape(3, 4)

    df_art = new_artifact("df")
    dataframe_to_artifact()(df_art, frame)
    assert [f.name for f in df_art.list_files()] == ["partition-0.parquet"]
    assert df_art["value_type"] in ("pandas.DataFrame", "pandas.core.frame.DataFrame")
    pd.testing.assert_frame_equal(dataframe_from_artifact()(df_art), frame)
    pd.testing.assert_frame_equal(load_value(df_art), frame)

    csv_art = new_artifact("csv")
    dataframe_to_artifact("csv")(csv_art, frame)
    assert [f.name for f in csv_art.list_files()] == ["partition-0.csv"]
    pd.testing.assert_frame_equal(dataframe_from_artifact("csv")(csv_art), frame)

    arr_art = new_artifact("arr")
    array_to_artifact(num_parts=2)(arr_art, array)
    assert [f.name for f in arr_art.list_files()] == ["partition-0.npy", "partition-1.npy"]
    assert arr_art["value_type"] == "numpy.ndarray"
    np.testing.assert_array_equal(array_from_artifact()(arr_art), array)
    restored = load_value(arr_art)
    assert restored.dtype == np.int16 and restored.shape == (3, 4)

    json_art = new_artifact("js")
    json_to_artifact("doc")(json_art, {"a": [1, 2]})
    assert json_art.has_file("doc.json") and json_art["value_type"] == "json"
    assert json_from_artifact("doc")(json_art) == {"a": [1, 2]}
    assert load_value(json_art) == {"a": [1, 2]}

    pkl_art = new_artifact("pk")
    pickle_to_artifact()(pkl_art, {"fn": len})
    assert pkl_art.has_file("file.pkl") and pkl_art["value_type"] == "pickle"
    assert pickle_from_artifact()(pkl_art) == {"fn": len}
    assert load_value(pkl_art) == {"fn": len}
    with pytest.raises(ValueError, match="holds value_type 'pickle', not 'json'"):
        json_from_artifact()(pkl_art)


def test_save_value_picks_the_handler_by_type(settings):
    frame = pd.DataFrame({"x": range(5)})
    assert save_value(new_artifact("f"), frame).startswith("pandas.")
    assert save_value(new_artifact("a"), np.ones(3)) == "numpy.ndarray"
    assert save_value(new_artifact("o"), {"plain": "dict"}) == "object"
    pd.testing.assert_frame_equal(load_value(get_artifact("f")), frame)
    assert load_value(get_artifact("o")) == {"plain": "dict"}


def test_load_value_explains_artifacts_it_cannot_read(settings):
    artifact = new_artifact("raw")
    artifact.new_file("thing.bin", b"...")
    with pytest.raises(ValueError, match="no value_type"):
        load_value(artifact)
    artifact["value_type"] = "some.plugin.Type"
    with pytest.raises(ValueError, match="No handler found .* 'some.plugin.Type'.*Install the plugin"):
        load_value(artifact)


class Temperature:
    def __init__(self, celsius: float):
        self.celsius = celsius


def _save_temperature(artifact, value, **_):
    artifact.new_file("celsius.txt", str(value.celsius))


def _load_temperature(artifact, **_):
    return Temperature(float(artifact.get_file("celsius.txt").read()))


def test_plugins_register_handlers_through_the_hook(settings):
    plugin = types.ModuleType("temperature_plugin")

    @hookimpl
    def flowdapt_register_artifact_handlers(register):
        register(Temperature, _save_temperature, _load_temperature)

    plugin.flowdapt_register_artifact_handlers = flowdapt_register_artifact_handlers
    set_plugin_system(create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, plugin]))
    try:
        handlers_module.reload_plugin_handlers()
        artifact = new_artifact("temp")
        assert save_value(artifact, Temperature(21.5)) == f"{__name__}.Temperature"
        assert artifact.get_file("celsius.txt").read() == b"21.5"
        restored = load_value(get_artifact("temp"))
        assert isinstance(restored, Temperature) and restored.celsius == 21.5
        # The object store's artifact side reads it back by its value_type too.
        object_store.put("t", Temperature(3.0), strategy="artifact", save_artifact_hook=save_value)
        assert object_store.get("t", strategy="artifact").celsius == 3.0
    finally:
        set_plugin_system(None)
        handlers_module.reload_plugin_handlers()


class Pressure:
    def __init__(self, hpa: float):
        self.hpa = hpa


def test_handlers_register_like_every_backend_with_a_name_handler_and_options_model(settings):
    """``register(value_type, ValueHandler(...), options_model)``: the same registry, name checks,
    duplicate detection and option errors that name the plugin as executors and stores."""
    from pydantic import BaseModel, Field

    from flowdapt.artifacts import ValueHandler
    from flowdapt.errors import ConfigurationError

    class PressureOptions(BaseModel):
        model_config = {"extra": "forbid"}
        digits: int = Field(default=1, ge=0)

    def save(artifact, value, digits: int = 1):
        artifact.new_file("hpa.txt", f"{value.hpa:.{digits}f}")

    def load(artifact, **_):
        return Pressure(float(artifact.get_file("hpa.txt").read()))

    def on_dask(artifact, value, **_):
        artifact.new_file("hpa.txt", "-1")

    plugin = types.ModuleType("pressure_plugin")

    @hookimpl
    def flowdapt_register_artifact_handlers(register):
        register(Pressure, ValueHandler(save, load), PressureOptions)
        register(Pressure, ValueHandler(on_dask, load, executor="dask"))

    plugin.flowdapt_register_artifact_handlers = flowdapt_register_artifact_handlers
    system = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, plugin])
    set_plugin_system(system)
    try:
        names = system.names("artifact_handlers")
        assert f"{__name__}.Pressure" in names and f"{__name__}.Pressure@dask" in names
        assert {"json", "pickle", "numpy.ndarray", "pandas.DataFrame"} <= set(names)
        assert system.get("artifact_handlers", "numpy.ndarray").plugin == "artifact_handlers"
        assert system.get("artifact_handlers", f"{__name__}.Pressure").plugin == "pressure_plugin"

        artifact = new_artifact("pressure")
        save_value(artifact, Pressure(1013.25), digits=2)
        assert artifact.get_file("hpa.txt").read() == b"1013.25"
        assert load_value(get_artifact("pressure")).hpa == 1013.25
        with pytest.raises(ConfigurationError, match=r"artifact value handler '.*Pressure' \(plugin 'pressure_plugin'\): digits"):
            save_value(artifact, Pressure(1.0), digits=-1)
        save_value(new_artifact("on-dask"), Pressure(5.0), executor="dask")  # the executor's own handler wins
        assert get_artifact("on-dask").get_file("hpa.txt").read() == b"-1"
    finally:
        set_plugin_system(None)


def test_a_second_plugin_registering_the_same_value_type_is_an_error_naming_both(settings):
    from flowdapt.artifacts import ValueHandler
    from flowdapt.errors import ConfigurationError

    plugin = types.ModuleType("frames_again")

    @hookimpl
    def flowdapt_register_artifact_handlers(register):
        register("numpy.ndarray", ValueHandler(lambda a, v: None, lambda a: None))

    plugin.flowdapt_register_artifact_handlers = flowdapt_register_artifact_handlers
    system = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, plugin])
    with pytest.raises(ConfigurationError, match="'numpy.ndarray' is registered by both plugin 'artifact_handlers' and plugin 'frames_again'"):
        system.names("artifact_handlers")


def test_without_the_builtin_handlers_plugin_values_fall_back_to_the_object_file(settings):
    """The built-in numpy/pandas/json handlers come from the ``artifact_handlers`` plugin like any
    other: disabled, a value is pickled whole (value_type ``object``) and still reads back."""
    system = create_plugin_system(load_entry_points=False, plugins=[p for p in BUILTIN_PLUGINS if p[0] != "artifact_handlers"])
    set_plugin_system(system)
    try:
        assert system.names("artifact_handlers") == []
        assert save_value(new_artifact("plain"), np.arange(4)) == "object"
        assert load_value(get_artifact("plain")).tolist() == [0, 1, 2, 3]
    finally:
        set_plugin_system(None)
    assert save_value(new_artifact("typed"), np.arange(4)) == "numpy.ndarray"


def test_namespace_from_the_run_context_and_explicit(settings):
    from flowdapt.engine.context import RunContext, reset_run_context, set_run_context
    from flowdapt.resources.run import WorkflowRun
    from flowdapt.resources.workflow import Workflow

    definition = Workflow.model_validate(
        {"kind": "workflow", "metadata": {"name": "w"}, "spec": {"stages": [{"name": "s", "target": "m.f"}]}}
    )
    ctx = RunContext(
        input={},
        config={},
        namespace="ops",
        executor="local",
        definition=definition,
        run=WorkflowRun(workflow="w"),
    )
    token = set_run_context(ctx)
    try:
        assert new_artifact("inside").namespace == "ops"
    finally:
        reset_run_context(token)
    assert [a.name for a in list_artifacts("ops")] == ["inside"]
    assert Artifact.does_exist("inside", "ops", base_path=str(settings.app_dir))


def test_artifacts_survive_a_restart(settings):
    artifact = new_artifact("report", namespace="prod")
    artifact["rows"] = 2
    dataframe_to_artifact()(artifact, pd.DataFrame({"a": [1, 2]}))
    code = textwrap.dedent(
        """
        from flowdapt.compute.artifacts import get_artifact, list_artifacts
        from flowdapt.artifacts import load_value
        artifact = get_artifact("report", namespace="prod")
        print([a.name for a in list_artifacts("prod")], artifact.get_meta("value_type").startswith("pandas."),
              load_value(artifact)["a"].tolist())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDAPT__")}
    env["FLOWDAPT__APP_DIR"] = str(settings.app_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['report'] True [1, 2]"


def test_the_core_does_not_import_numpy_pandas_or_pyarrow():
    code = textwrap.dedent(
        """
        import sys
        import flowdapt.artifacts, flowdapt.object_store, flowdapt.compute.artifacts, flowdapt.compute.object_store
        import flowdapt.builtin.cluster_memory
        print(sorted(m for m in ("numpy", "pandas", "pyarrow") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
