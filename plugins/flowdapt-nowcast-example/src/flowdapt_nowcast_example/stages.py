"""Stages of the nowcast example: create features, train one model per city and target, predict.

Three workflows share these plain functions (``definitions/workflows``):

- ``nowcast-create-features``: generate the weather (:mod:`.weather`), keep the raw series as a
  persistent artifact and each city's feature matrix in cluster memory (a map over cities);
- ``nowcast-train``: a map over cities; each fits one ridge model per target for the configured
  ``horizon`` and stores them in the object store;
- ``nowcast-predict``: a map over cities that reads the models back from the object store and
  forecasts the held-out last ``test_hours``, then a report with the error per city and two plots
  saved as PNG files of the artifact ``nowcast-report`` (the run's result has their file paths,
  ``plots``, and their API paths, ``plot_urls``).

Settings come from the config ``nowcast-example-settings`` (live: change ``horizon`` and the next
train and predict use it); a key in the run input overrides the config for that run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from flowdapt.compute import object_store
from flowdapt.compute.resources.workflow.context import get_run_context
from flowdapt_nowcast_example import weather as wx

DEFAULTS: dict[str, Any] = {
    "n_cities": 1000,
    "history_hours": 24 * 30,
    "test_hours": 48,
    "horizon": 1,
    "ridge_alpha": 1.0,
    "seed": 7,
    "plot_cities": 3,
}

CITIES_KEY = "nowcast-cities"
WEATHER_KEY = "nowcast-weather"
REPORT_ARTIFACT = "nowcast-report"


def settings() -> dict[str, Any]:
    """Defaults, then the live config, then this run's input."""
    ctx = get_run_context()
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (ctx.config or {}).items() if k in DEFAULTS})
    merged.update({k: v for k, v in (ctx.input or {}).items() if k in DEFAULTS})
    return merged


def features_key(city: str) -> str:
    return f"nowcast-features-{city}"


def model_key(city: str) -> str:
    return f"nowcast-model-{city}"


# -- nowcast-create-features ------------------------------------------------------------------------


def generate_weather() -> list[dict]:
    """Generate the weather of every city; returns one work item per city for the feature map.

    The raw series go to an artifact (persistent: the truth the forecasts are scored against);
    the city list goes to the object store for the train and predict workflows.
    """
    cfg = settings()
    hours = int(cfg["history_hours"]) + int(cfg["test_hours"])
    data = wx.generate_weather(int(cfg["n_cities"]), hours, seed=int(cfg["seed"]))
    object_store.put(
        WEATHER_KEY,
        {"names": data.names, "lat": data.lat, "lon": data.lon, "values": data.values, "start_day": data.start_day},
        strategy="artifact",
    )
    cities = [
        {"city": name, "lat": float(data.lat[i]), "lon": float(data.lon[i])} for i, name in enumerate(data.names)
    ]
    object_store.put(CITIES_KEY, {"cities": cities, "hours": hours, "test_hours": int(cfg["test_hours"])},
                     write_through=True)
    neighbours = wx.upwind_neighbours(data.lat, data.lon)
    return [
        {
            **cities[i],
            "own": data.values[i],
            "upwind": data.values[neighbours[i]].mean(axis=0),
            "start_day": data.start_day,
        }
        for i in range(len(cities))
    ]


def build_features(item: dict) -> dict:
    """One city (a parameterized stage): its feature matrix and series into cluster memory."""
    matrix = wx.city_features(item["own"], item["upwind"], item["lon"], item["start_day"])
    object_store.put(features_key(item["city"]), {"features": matrix, "series": item["own"]})
    return {"city": item["city"], "rows": int(matrix.shape[0]), "features": int(matrix.shape[1])}


def summarize_features(built: list[dict]) -> dict:
    return {
        "cities": len(built),
        "rows_per_city": built[0]["rows"] if built else 0,
        "features": built[0]["features"] if built else 0,
        "targets": list(wx.TARGETS),
    }


# -- nowcast-train ----------------------------------------------------------------------------------


def list_cities() -> list[dict]:
    """The cities of the last ``nowcast-create-features`` run (``n_cities`` in the input limits them)."""
    try:
        stored = object_store.get(CITIES_KEY)
    except KeyError:
        raise RuntimeError(
            "no nowcast data in this namespace yet: run the workflow nowcast-create-features first"
        ) from None
    cities = stored["cities"]
    limit = (get_run_context().input or {}).get("n_cities")
    return cities[: int(limit)] if limit else cities


def train_city(city: dict) -> dict:
    """One city (a parameterized stage): one ridge model per target, for the configured horizon."""
    cfg = settings()
    horizon = int(cfg["horizon"])
    data = object_store.get(features_key(city["city"]))
    models, rmse = wx.train_city_models(
        data["features"], data["series"], horizon, int(cfg["test_hours"]), float(cfg["ridge_alpha"])
    )
    # Write-through: predict reads it from cluster memory, and it survives a restart in artifacts.
    object_store.put(
        model_key(city["city"]),
        {"horizon": horizon, "models": models, "trained_at": time.time()},
        write_through=True,
    )
    return {"city": city["city"], "horizon": horizon, "train_rmse": rmse}


def summarize_training(trained: list[dict]) -> dict:
    return {
        "models": len(trained) * len(wx.TARGETS),
        "cities": len(trained),
        "horizon": trained[0]["horizon"] if trained else None,
        "train_rmse": _mean_by_target([t["train_rmse"] for t in trained]),
    }


# -- nowcast-predict --------------------------------------------------------------------------------


def predict_city(city: dict) -> dict:
    """One city: forecast every hour of the held-out window with the stored models; score them.

    The forecast for hour ``t + horizon`` is made at hour ``t`` from what is known at ``t``; it
    is scored against the truth and against persistence (``value(t + horizon) = value(t)``).
    """
    cfg = settings()
    try:
        stored = object_store.get(model_key(city["city"]))
    except KeyError:
        raise RuntimeError(f"no model for {city['city']}: run the workflow nowcast-train first") from None
    horizon = stored["horizon"]
    if horizon != int(cfg["horizon"]):
        raise RuntimeError(
            f"the models of {city['city']} were trained for horizon {horizon}, the config asks for "
            f"{cfg['horizon']}: run nowcast-train (the condition rule runs predict after it)"
        )
    data = object_store.get(features_key(city["city"]))
    series = data["series"]
    issued, forecasts, rmse, persistence = wx.forecast_city(
        stored["models"], data["features"], series, horizon, int(cfg["test_hours"])
    )
    result: dict[str, Any] = {"city": city["city"], "lat": city["lat"], "lon": city["lon"], "horizon": horizon,
                              "rmse": rmse, "persistence_rmse": persistence}
    # The series for the forecast plot, only for the first few cities (keeps the result small).
    if int(city["city"].rsplit("-", 1)[-1]) < int(cfg["plot_cities"]):
        result["series"] = wx.plot_series(issued, forecasts, series, horizon)
    return result


def report(predictions: list[dict]) -> dict:
    """The error per city and target, and the two plots as PNG files of an artifact."""
    from flowdapt.compute.artifacts import get_artifact
    from flowdapt_nowcast_example import plots

    horizon = predictions[0]["horizon"] if predictions else None
    artifact = get_artifact(REPORT_ARTIFACT, create=True)
    forecast_png = artifact.new_file("forecast.png", plots.forecast_plot(predictions, horizon))
    error_png = artifact.new_file("error_map.png", plots.error_map(predictions, horizon))
    return {
        **summarize_predictions(predictions),
        "plots": {"forecast": forecast_png.path, "error_map": error_png.path},
        # The same files on the API server (GET, with the server's token): what the dashboard shows.
        "plot_urls": {"forecast": forecast_png.url_path, "error_map": error_png.url_path},
        "artifact": {"name": artifact.name, "namespace": artifact.namespace, "uri": artifact.uri},
    }


def summarize_predictions(predictions: list[dict]) -> dict:
    """Mean error by target, skill over persistence, the worst cities and the error per city."""
    rmse = _mean_by_target([p["rmse"] for p in predictions])
    persistence = _mean_by_target([p["persistence_rmse"] for p in predictions])
    worst = sorted(predictions, key=lambda p: -p["rmse"]["temperature"])[:5]
    return {
        "cities": len(predictions),
        "horizon": predictions[0]["horizon"] if predictions else None,
        "rmse": rmse,
        "persistence_rmse": persistence,
        "skill": {t: round(1 - rmse[t] / persistence[t], 4) if persistence[t] else None for t in rmse},
        "worst_cities": [{"city": p["city"], "temperature_rmse": round(p["rmse"]["temperature"], 3)} for p in worst],
        "error_per_city": {p["city"]: {t: round(v, 4) for t, v in p["rmse"].items()} for p in predictions},
    }


def _mean_by_target(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {t: round(float(np.mean([r[t] for r in rows])), 4) for t in rows[0]}
