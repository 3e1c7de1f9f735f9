"""Each public module of the original that its plugins and flowml import, with the original's
names, signatures and behaviour (reference section 12)."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def test_version_satisfies_the_ecosystems_pins():
    import flowdapt

    version = Version(md.version("flowdapt"))
    assert str(version) == flowdapt.__version__
    pins = {
        "flowml 0.1.1": ">=0.1.28,<0.2.0",
        "flowdapt-nowcast-plugin 0.1.0": ">=0.1.0,<1.0.0",
        "flowdapt-cryptocast-plugin (^0.1.3)": ">=0.1.3,<0.2.0",
    }
    for who, pin in pins.items():
        assert version in SpecifierSet(pin), f"{version} does not satisfy {who}: flowdapt{pin}"
    assert version > Version("0.1.52"), "must sort above every release of the original"


# -- flowdapt.lib.logger ---------------------------------------------------------------------------


def test_logger_takes_events_with_fields_and_bound_context(caplog):
    from flowdapt.lib.logger import get_logger, log_once

    logger = get_logger("compat.logger")
    with caplog.at_level(logging.DEBUG, logger="compat.logger"):
        logger.info("ModelTrained", model="m1", seconds=1.5)
        bound = logger.bind(city="Oslo")
        bound.warning("NoData")
        bound.unbind("city").error("plain %s", "args")
        bound.debug(f"formatted {1 + 1}")
        for _ in range(3):
            log_once(logger.info, "Once", interval_seconds=60, key=1)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("INFO", "ModelTrained model='m1' seconds=1.5"),
        ("WARNING", "NoData city='Oslo'"),
        ("ERROR", "plain args"),
        ("DEBUG", "formatted 2 city='Oslo'"),
        ("INFO", "Once key=1"),
    ]
    assert caplog.records[0].fields == {"model": "m1", "seconds": 1.5}
    assert caplog.records[0].funcName == "test_logger_takes_events_with_fields_and_bound_context"


# -- flowdapt.lib.errors ---------------------------------------------------------------------------


def test_errors_have_the_originals_classes_codes_and_constructors():
    from flowdapt import errors as ours
    from flowdapt.lib import errors

    assert errors.ResourceNotFoundError is ours.ResourceNotFoundError
    assert errors.ResourceNotFoundError().detail == "Resource not found"
    assert errors.ResourceNotFoundError().status_code == 404
    assert errors.BadRequestError(detail="bad city").status_code == 400
    assert str(errors.BadRequestError(detail="bad city")) == "bad city"
    teapot = errors.APIError(418, "I'm a teapot")
    assert (teapot.status_code, teapot.detail) == (418, "I'm a teapot")
    assert errors.NonUniqueValue().status_code == 422
    assert errors.ServiceDrainingError().status_code == 503
    for name in ("MethodNotAllowedError", "NotAuthorizedError", "InvalidCredentialsError", "InactiveUserError",
                 "InvalidJWTError", "UserNotFoundError", "DatabaseConnectionError"):
        assert issubclass(getattr(errors, name), errors.APIError)
    assert errors.APIErrorModel().model_dump() == {"status_code": 500, "detail": "string"}


def test_except_resource_not_found_catches_a_missing_object(flowdapt_app_dir):
    from flowdapt.compute import object_store
    from flowdapt.lib.errors import ResourceNotFoundError

    for catch in (ResourceNotFoundError, FileNotFoundError, KeyError):
        with pytest.raises(catch):
            object_store.get("absent", namespace="compat")


def test_api_errors_raised_in_a_route_answer_with_their_status():
    from fastapi import APIRouter
    from fastapi.testclient import TestClient

    from flowdapt.lib.errors import BadRequestError, ResourceNotFoundError
    from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
    from flowdapt.server import create_app
    from flowdapt.settings import load_settings

    router = APIRouter()

    @router.get("/compat/missing")
    def missing():
        raise ResourceNotFoundError(detail="no such city")

    @router.get("/compat/bad")
    def bad():
        raise BadRequestError()

    class RoutesPlugin:
        from flowdapt.hookspecs import hookimpl

        @staticmethod
        @hookimpl
        def flowdapt_api_routers():
            return [router]

    import tempfile

    with tempfile.TemporaryDirectory() as app_dir:
        settings = load_settings(app_dir, overrides={"cluster_memory.backend": "memory"})
        plugins = create_plugin_system(load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("routes", RoutesPlugin)])
        with TestClient(create_app(settings, plugins)) as client:
            missing_response = client.get("/compat/missing")
            bad_response = client.get("/compat/bad")
    assert missing_response.status_code == 404 and missing_response.json()["detail"] == "no such city"
    assert bad_response.status_code == 400 and bad_response.json()["detail"] == "Bad request"


# -- flowdapt.lib.utils.misc -----------------------------------------------------------------------


def test_import_from_string_reloads_unless_cached(tmp_path, monkeypatch):
    from flowdapt.lib.utils.misc import generate_name, import_from_string

    (tmp_path / "compat_misc_mod.py").write_text("calls = []\nclass Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = import_from_string("compat_misc_mod.Model")
    importlib.import_module("compat_misc_mod").calls.append(1)
    second = import_from_string("compat_misc_mod.Model")
    assert first is not second, "the original reloads the module on every call"
    assert importlib.import_module("compat_misc_mod").calls == []
    cached = import_from_string("compat_misc_mod.Model", use_cache=True)
    assert import_from_string("compat_misc_mod.Model", use_cache=True) is cached
    assert import_from_string("compat_misc_mod", is_module=True).__name__ == "compat_misc_mod"
    with pytest.raises(ImportError, match="valid module path"):
        import_from_string("nodots")
    with pytest.raises(ImportError, match="does not have a `Missing` attribute"):
        import_from_string("compat_misc_mod.Missing")

    names = {generate_name() for _ in range(50)}
    assert all(len(n.split("-")) == 2 and n.replace("-", "").isalpha() for n in names)
    assert len(names) > 10
    assert len(generate_name(size=3).split("-")) == 3


# -- flowdapt.builtins.utils -----------------------------------------------------------------------


def frame(start: str, hours: int) -> pd.DataFrame:
    dates = pd.date_range(start, periods=hours, freq="h")
    values = np.arange(hours, dtype=float)
    return pd.DataFrame({"date": dates, "%-a": values, "%-b": values * 2, "&-y": values + 1, "other": 0})


def test_dataframe_helpers_behave_as_the_originals():
    from flowdapt.builtins import utils

    old = frame("2026-01-01 00:00", 10)
    new = frame("2026-01-01 08:00", 5)  # overlaps the last two hours of old
    kept_old = utils.merge_dataframes(old, new, prefer_new=False)
    assert len(kept_old) == 13 and kept_old["%-a"].iloc[8] == 8.0  # old rows win, three new rows added
    prefer_new = utils.merge_dataframes(old, new, prefer_new=True)
    assert len(prefer_new) == 13 and prefer_new["%-a"].iloc[8] == 0.0  # new rows replace from 08:00
    assert utils.merge_dataframes(old, new.iloc[0:0]) == (False, 0)

    assert utils.get_data_frequency(old) == timedelta(hours=1)
    recent = frame((datetime.now(UTC) - timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat(), 2)
    assert utils.get_data_gap(recent, UTC) == 4  # the last row is 4.5 hourly intervals old
    assert utils.find_features(old) == ["%-a", "%-b"] and utils.find_labels(old) == ["&-y"]
    features, labels = utils.extract_features_and_labels(old)
    assert list(features.columns) == ["%-a", "%-b"] and list(labels.columns) == ["&-y"]

    shifted = utils.shift_and_add_features(old, 3, ["%-a"])
    assert list(shifted.columns[-2:]) == ["%-a_shift-1", "%-a_shift-2"]
    assert shifted["%-a_shift-2"].iloc[5] == 3.0
    assert len(utils.remove_rows_with_nans(shifted)) == 8

    holes = old.copy()
    holes["mostly_nan"] = [1.0] + [np.nan] * 9
    holes["all_nan"] = np.nan
    kept = utils.remove_none_columns(holes, threshold=5)
    assert "mostly_nan" not in kept and "all_nan" not in kept and "%-a" in kept

    assert utils.artifact_name_from_dict({"city": "Los Angeles"}) == "Los20Angeles"
    assert utils.artifact_name_from_dict({"pair": "BTC/USDT", "tf": "1.5h", "empty": None}) == "BTCUSDT_1_5h"
    assert utils.string_to_uuid("x") == utils.string_to_uuid("x")
    dummy = utils.dummy_pandas_df(20, 4)
    assert list(dummy.columns) == ["%-0", "%-1", "%-2", "&-a"]


def test_feather_history_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    from flowdapt.builtins import utils

    meta = {"city": "Oslo", "tf": "1h"}
    assert utils.save_historical_data_to_feather(frame("2026-01-01", 4), meta, str(tmp_path))
    assert (tmp_path / "Oslo" / "1h" / "Oslo_1h.feather").is_file()
    assert len(utils.load_historical_data_from_feather(meta, str(tmp_path), num_points=2)) == 2
    saved, gap = utils.update_historic_data(meta, frame("2026-01-01 04:00", 3), str(tmp_path))
    assert saved and gap == 1
    assert len(utils.load_historical_data_from_feather(meta, str(tmp_path))) == 7
    assert utils.load_historical_data_from_feather({"city": "none"}, str(tmp_path)) is None


# -- flowdapt.compute.artifacts.dataset ------------------------------------------------------------


def test_dataset_is_a_package_with_the_originals_submodules(flowdapt_app_dir):
    pytest.importorskip("pyarrow")
    from flowdapt.compute.artifacts import new_artifact
    from flowdapt.compute.artifacts.dataset import arrays, dataframes, handler, utils
    from flowdapt.compute.artifacts.dataset import dataframe_to_artifact as top_level

    assert top_level is dataframes.dataframe_to_artifact
    assert callable(handler.get_handler_func("*", "pandas.core.frame.DataFrame", "to_artifact"))

    artifact = new_artifact("compat-files", namespace="compat")
    df = frame("2026-01-01", 6)
    dataframes.write_dataframe_to_artifact(artifact.new_file("frame.parquet"), df)
    back = dataframes.read_dataframe_from_artifact(artifact.get_file("frame.parquet"))
    pd.testing.assert_frame_equal(back, df)
    arrays.write_array_to_artifact(artifact.new_file("a.npy"), np.arange(5))
    assert arrays.read_array_from_artifact(artifact.get_file("a.npy")).tolist() == [0, 1, 2, 3, 4]

    parts = utils.split_dataframe(frame("2026-01-01", 10), 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(ZeroDivisionError):
        utils.split_dataframe(df, 0)


# -- flowdapt.compute.executor ---------------------------------------------------------------------


async def test_local_executor_takes_the_originals_arguments(flowdapt_app_dir):
    from flowdapt.compute.executor.local import SOCKET_PATH, LocalExecutor

    executor = LocalExecutor(use_processes=True, cpus=2, cluster_memory_socket_path=SOCKET_PATH)
    assert (executor.kind, executor.mode, executor.workers) == ("local", "process", 2)
    assert LocalExecutor(False).mode == "thread"
    await executor.start()
    try:
        info = await executor.environment_info()
        assert info["processes"] is True and info["cpus"] == 2
    finally:
        await executor.close()
    assert not executor.running


def test_ray_and_dask_executors_at_the_originals_paths_import_neither_library():
    pytest.importorskip("flowdapt_ray")
    pytest.importorskip("flowdapt_dask")
    script = """
import json, sys
from flowdapt.compute.executor.ray import ExecuteStrategy, RayExecutor
from flowdapt.compute.executor import dask as dask_paths
ray = RayExecutor(cluster_address="ray://head:10001", strategy=ExecuteStrategy.GROUP_BY_GROUP, cpus="auto",
                  gpus=1, upload_plugins=True, max_reconnect_retries=3, runtime_env_config={"setup_timeout_seconds": 60})
before = [m for m in ("ray", "distributed") if m in sys.modules]
dask = dask_paths.DaskExecutor(cluster_address="tcp://scheduler:8786", cpus=2, threads=1, memory="4GB",
                                gpus="disabled", adaptive=True)
print(json.dumps({"before": before, "ray": [ray.kind, ray.options.address, ray.options.gpus, ray.options.ship_plugins],
                  "dask": [dask.kind, dask.options.address, dask.options.workers, dask.options.memory_limit]}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["before"] == [], "Ray/Dask must not be imported before an executor of theirs runs"
    assert found["ray"] == ["ray", "ray://head:10001", 1, True]
    assert found["dask"] == ["dask", "tcp://scheduler:8786", 2, "4GB"]
