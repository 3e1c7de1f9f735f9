"""Stage code written the way the original Flowdapt's plugins write it, against its public Python
API (``flowdapt.lib.*``, ``flowdapt.builtins.utils``, ``flowdapt.compute.*``), as a package made
for the session and allowed through ``allowed_targets``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

STAGES = "flowdapt_compat_stages"

STAGES_SOURCE = '''
"""A small nowcast-like pipeline: fetch hourly data per city, build features, train, summarise."""

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from flowdapt.builtins import utils
from flowdapt.compute import object_store
from flowdapt.compute.artifacts.dataset.arrays import array_from_artifact, array_to_artifact
from flowdapt.compute.artifacts.dataset.dataframes import dataframe_from_artifact, dataframe_to_artifact
from flowdapt.compute.artifacts.misc import json_from_artifact, json_to_artifact
from flowdapt.compute.resources.workflow.context import get_run_context
from flowdapt.lib.errors import ResourceNotFoundError
from flowdapt.lib.logger import get_logger
from flowdapt.lib.utils.misc import import_from_string

logger = get_logger(__name__)


def hourly_frame(city, hours, end):
    dates = pd.date_range(end=end, periods=hours, freq="h")
    values = float(len(city)) + np.arange(hours, dtype=float)
    return pd.DataFrame({"date": dates, "%-temp": values, "%-wind": values / 2, "&-target": values + 1})


def list_cities():
    config = get_run_context().config
    object_store.put(
        "cities", config["cities"], namespace=config["study"],
        save_artifact_hook=json_to_artifact(), artifact_only=True,
    )
    return config["cities"]


def fetch_city(city):
    config = get_run_context().config
    name = utils.artifact_name_from_dict({"city": city})
    try:
        df = object_store.get(
            f"{name}_raw", namespace=config["study"],
            load_artifact_hook=dataframe_from_artifact(format="parquet"),
        )
        found = True
    except FileNotFoundError:
        df, found = None, False
    fresh = hourly_frame(city, config["hours"], datetime.fromisoformat(config["end"]))
    df = fresh if df is None else utils.merge_dataframes(df, fresh, prefer_new=False)
    object_store.put(
        f"{name}_raw", df, namespace=config["study"],
        save_artifact_hook=dataframe_to_artifact(format="parquet"), artifact_only=True,
    )
    logger.info("CityFetched", city=city, rows=len(df))
    return {"city": city, "name": name, "rows": len(df), "found": found}


def train_city(item):
    config = get_run_context().config
    study = config["study"]
    df = object_store.get(
        f"{item['name']}_raw", namespace=study, load_artifact_hook=dataframe_from_artifact(format="parquet")
    )
    behind = utils.get_data_gap(df, timezone.utc)
    features = utils.find_features(df)
    df = utils.shift_and_add_features(df, 3, features)
    df = utils.remove_none_columns(df, threshold=5)
    df = utils.remove_rows_with_nans(df)
    X, y = utils.extract_features_and_labels(df)
    model = import_from_string(config["model"])().fit(X, y)
    object_store.put(
        f"{item['name']}_features", X.to_numpy(), namespace=study,
        save_artifact_hook=array_to_artifact(), artifact_only=True,
    )
    try:
        object_store.get(f"{item['name']}_neighbours", namespace=study)
        neighbours = True
    except ResourceNotFoundError:
        neighbours = False
    return {
        "city": item["city"], "rows": len(X), "features": sorted(X.columns), "labels": list(y.columns),
        "model": model.name, "prediction": model.predict(X)[0], "neighbours": neighbours, "behind": behind > 0,
    }


def summarize(trained):
    study = get_run_context().config["study"]
    cities = object_store.get("cities", namespace=study, load_artifact_hook=json_from_artifact())
    shapes = {}
    for item in trained:
        name = utils.artifact_name_from_dict({"city": item["city"]})
        array = object_store.get(f"{name}_features", namespace=study, load_artifact_hook=array_from_artifact())
        shapes[item["city"]] = list(array.shape)
    return {"cities": cities, "shapes": shapes, "trained": trained}


def read_missing(key: str = "nothing-here"):
    return object_store.get(key, namespace=get_run_context().namespace)


def fail(message: str = "broken on purpose"):
    raise ValueError(message)


def lookup(key: str = "city"):
    return {}[key]
'''

MODELS_SOURCE = '''
"""A flowml-style model: found by import string (flowml's PipeFill), named by generate_name."""

import numpy as np

from flowdapt.lib.utils.misc import generate_name


class MeanModel:
    def __init__(self, name=None):
        self.name = name or generate_name()

    def fit(self, X, y):
        self.mean_ = float(y.to_numpy().mean())
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
'''


@pytest.fixture(scope="session")
def compat_stages(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("compat_stages")
    package = root / STAGES
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(STAGES_SOURCE))
    (package / "models.py").write_text(textwrap.dedent(MODELS_SOURCE))
    sys.path.insert(0, str(root))
    return STAGES


@pytest.fixture
def flowdapt_settings_overrides(compat_stages) -> dict:
    # For flowdapt.testing's flowdapt_app_dir: each test gets a fresh app dir (and artifacts).
    return {"cluster_memory.backend": "memory", "executor.backend": "local", "allowed_targets": [compat_stages]}


def pipeline(name: str = "compat-pipeline") -> dict:
    """The workflow as the original's users write it (no ``kind``: its execute_workflow allowed that)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "stages": [
                {"name": "list_cities", "target": f"{STAGES}.list_cities"},
                {"name": "fetch_city", "target": f"{STAGES}.fetch_city", "type": "parameterized", "depends_on": ["list_cities"]},
                {"name": "train_city", "target": f"{STAGES}.train_city", "type": "parameterized", "depends_on": ["fetch_city"]},
                {"name": "summarize", "target": f"{STAGES}.summarize", "depends_on": ["train_city"]},
            ]
        },
    }


def pipeline_config(end: str = "2026-01-02T00:00:00", study: str = "compat-study") -> dict:
    return {
        "study": study,
        "cities": ["Los Angeles", "Oslo"],
        "hours": 24,
        "end": end,
        "model": f"{STAGES}.models.MeanModel",
    }


def single_stage(name: str, target: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"stages": [{"name": "only", "target": f"{STAGES}.{target}"}]}}


ROOT = Path(__file__).resolve().parents[2]
