"""Synthetic hourly weather for N cities: the data the nowcast example learns from.

Nothing is downloaded: a seeded generator builds the structure a nowcast model can exploit and a
persistence forecast cannot fully use:

- a latitude gradient and a seasonal cycle (the series start on ``start_day`` of the year);
- a diurnal cycle in each city's local solar time (longitude shifts it), with per-city amplitude;
- weather fronts that cross the domain from west to east: a front drops the temperature behind it
  and raises humidity and wind where it passes, so a city's upwind neighbours see it hours earlier;
- AR(1) noise per city and target.

Cities lie in a box the size of Europe (lat 35-60, lon -10-30). Everything is vectorized over the
cities, so 1,000 cities x 30 days take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGETS = ("temperature", "humidity", "wind_speed")
LAT_RANGE = (35.0, 60.0)
LON_RANGE = (-10.0, 30.0)


@dataclass
class Weather:
    """``values[city, hour, target]`` (float32) and the cities' names and coordinates."""

    names: list[str]
    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray
    start_day: int

    @property
    def hours(self) -> int:
        return self.values.shape[1]


def city_names(n_cities: int) -> list[str]:
    return [f"city-{i:04d}" for i in range(n_cities)]


def generate_weather(n_cities: int, hours: int, seed: int = 7, start_day: int = 60) -> Weather:
    rng = np.random.default_rng(seed)
    lat = rng.uniform(*LAT_RANGE, size=n_cities)
    lon = rng.uniform(*LON_RANGE, size=n_cities)
    t = np.arange(hours, dtype=np.float64)  # hours since start (UTC)

    # Seasonal and latitude structure: colder north, warming through spring.
    day_of_year = start_day + t / 24.0
    seasonal = 9.0 * np.cos(2 * np.pi * (day_of_year - 200.0) / 365.0)
    base_temp = 24.0 - 0.55 * (lat - LAT_RANGE[0])
    # Diurnal cycle in local solar time: warmest around 15:00, amplitude larger inland (east).
    local_hour = (t[None, :] + lon[:, None] / 15.0) % 24.0
    diurnal_amp = 3.0 + 0.08 * (lon - LON_RANGE[0]) + rng.uniform(-0.5, 0.5, size=n_cities)
    diurnal = np.cos(2 * np.pi * (local_hour - 15.0) / 24.0)

    temperature = base_temp[:, None] + seasonal[None, :] + diurnal_amp[:, None] * diurnal
    humidity = 72.0 - 8.0 * diurnal + 0.3 * (lat[:, None] - 45.0)
    wind = 4.0 + 1.2 * np.clip(diurnal, 0, None) + 0.05 * (lat[:, None] - LAT_RANGE[0])

    # Fronts: a new one enters from the west every ~30 hours, moving east at 0.5-1.1 deg/hour
    # with a slight tilt, so it reaches a city hours after the city's western neighbours.
    n_fronts = max(1, hours // 30 + 2)
    starts = np.sort(rng.uniform(-40.0, hours, size=n_fronts))
    for k in range(n_fronts):
        speed = rng.uniform(0.5, 1.1)
        tilt = rng.uniform(-0.4, 0.4)
        strength = rng.uniform(0.5, 1.5)
        position = LON_RANGE[0] - 5.0 + speed * (t - starts[k])  # the front's longitude at lat 47.5
        city_pos = lon + tilt * (lat - 47.5)
        behind = position[None, :] - city_pos[:, None]  # > 0: the front has passed this city
        passage = np.exp(-((behind / (1.5 * speed)) ** 2))
        cold = 1.0 / (1.0 + np.exp(np.clip(-behind / 0.8, -50, 50))) * np.exp(-np.clip(behind, 0, None) / 12.0)
        temperature -= 6.0 * strength * cold
        humidity += 18.0 * strength * passage
        wind += 7.0 * strength * passage

    noise = _ar1(rng, (n_cities, hours, 3), phi=0.85, scale=np.array([0.6, 2.5, 0.6]))
    values = np.stack([temperature, humidity, wind], axis=-1) + noise
    values[..., 1] = np.clip(values[..., 1], 5.0, 100.0)
    values[..., 2] = np.clip(values[..., 2], 0.0, None)
    return Weather(city_names(n_cities), lat, lon, values.astype(np.float32), start_day)


def _ar1(rng: np.random.Generator, shape: tuple[int, int, int], phi: float, scale: np.ndarray) -> np.ndarray:
    shocks = rng.normal(size=shape) * scale * np.sqrt(1 - phi**2)
    out = np.empty(shape)
    out[:, 0] = shocks[:, 0] / np.sqrt(1 - phi**2)
    for i in range(1, shape[1]):
        out[:, i] = phi * out[:, i - 1] + shocks[:, i]
    return out


def upwind_neighbours(lat: np.ndarray, lon: np.ndarray, k: int = 4) -> list[np.ndarray]:
    """For each city, the ``k`` nearest cities to its west (fronts come from there).

    A city at the western edge with no such neighbours gets its nearest cities instead.
    """
    dlat = lat[None, :] - lat[:, None]
    dlon = (lon[None, :] - lon[:, None]) * np.cos(np.radians(lat))[:, None]
    dist = np.hypot(dlat, dlon)
    west = (lon[None, :] < lon[:, None] - 0.5) & (dist < 8.0)
    result = []
    for i in range(len(lat)):
        candidates = np.flatnonzero(west[i])
        if len(candidates) == 0:
            candidates = np.flatnonzero(np.arange(len(lat)) != i)
        order = candidates[np.argsort(dist[i, candidates])]
        result.append(order[:k])
    return result


LAGS = (0, 1, 2, 3, 6, 12, 24)
UPWIND_LAGS = (0, 1, 3, 6)
MAX_LAG = max(LAGS)


def city_features(own: np.ndarray, upwind: np.ndarray, lon: float, start_day: int) -> np.ndarray:
    """The feature matrix of one city: row ``t`` holds what is known at hour ``t``.

    ``own`` and ``upwind`` are ``(hours, targets)``: the city's series and the mean series of its
    upwind neighbours. Rows before ``MAX_LAG`` are padded with the first value.
    """
    hours = own.shape[0]
    columns = []
    for lag in LAGS:
        columns.append(_lagged(own, lag))
    for lag in UPWIND_LAGS:
        columns.append(_lagged(upwind, lag) - own)  # how the upwind air differs: a front coming
    t = np.arange(hours)
    local_hour = (t + lon / 15.0) % 24.0
    day = start_day + t / 24.0
    clock = np.stack(
        [
            np.sin(2 * np.pi * local_hour / 24),
            np.cos(2 * np.pi * local_hour / 24),
            np.sin(2 * np.pi * day / 365),
            np.cos(2 * np.pi * day / 365),
        ],
        axis=1,
    )
    columns.append(clock)
    return np.concatenate(columns, axis=1).astype(np.float32)


def _lagged(series: np.ndarray, lag: int) -> np.ndarray:
    if lag == 0:
        return series
    return np.concatenate([np.repeat(series[:1], lag, axis=0), series[:-lag]], axis=0)


# -- the model: ridge regression, closed form -------------------------------------------------------


def fit_ridge(features: np.ndarray, target: np.ndarray, alpha: float) -> dict:
    """Standardized ridge regression; returns plain arrays so any executor can ship the model."""
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    z = (x - mean) / std
    y_mean = float(target.mean())
    gram = z.T @ z + alpha * np.eye(z.shape[1])
    coef = np.linalg.solve(gram, z.T @ (target - y_mean))
    return {"coef": coef, "mean": mean, "std": std, "intercept": y_mean}


def predict_ridge(model: dict, features: np.ndarray) -> np.ndarray:
    z = (features.astype(np.float64) - model["mean"]) / model["std"]
    return z @ model["coef"] + model["intercept"]


# -- one city's models and forecasts: shared by the stages and the benchmark's baselines ----------


def train_city_models(features: np.ndarray, series: np.ndarray, horizon: int, test_hours: int,
                      alpha: float) -> tuple[dict, dict]:
    """One ridge model per target predicting ``horizon`` hours ahead, fitted on the hours before
    the held-out last ``test_hours``; returns (models, training RMSE) by target."""
    train_end = series.shape[0] - test_hours
    rows = np.arange(MAX_LAG, train_end - horizon)
    models, rmse = {}, {}
    for j, target in enumerate(TARGETS):
        y = series[rows + horizon, j]
        model = fit_ridge(features[rows], y, alpha)
        models[target] = model
        rmse[target] = float(np.sqrt(np.mean((predict_ridge(model, features[rows]) - y) ** 2)))
    return models, rmse


def forecast_city(models: dict, features: np.ndarray, series: np.ndarray, horizon: int,
                  test_hours: int) -> tuple[np.ndarray, dict, dict, dict]:
    """Forecast every held-out hour from what was known ``horizon`` hours before it.

    Returns (issue hours, forecasts by target, RMSE by target, persistence RMSE by target), where
    persistence is ``value(t + horizon) = value(t)``.
    """
    hours = series.shape[0]
    issued = np.arange(hours - test_hours - horizon, hours - horizon)
    forecasts, rmse, persistence = {}, {}, {}
    for j, target in enumerate(TARGETS):
        truth = series[issued + horizon, j]
        forecasts[target] = predict_ridge(models[target], features[issued])
        rmse[target] = float(np.sqrt(np.mean((forecasts[target] - truth) ** 2)))
        persistence[target] = float(np.sqrt(np.mean((series[issued, j] - truth) ** 2)))
    return issued, forecasts, rmse, persistence


def plot_series(issued: np.ndarray, forecasts: dict, series: np.ndarray, horizon: int) -> dict:
    """What the forecast plot draws for one city: temperature truth and forecast over the held-out
    hours, and the 72 observed hours before them."""
    start = int(issued[0])
    return {
        "hour": (issued + horizon).tolist(),
        "truth": series[issued + horizon, 0].tolist(),
        "forecast": forecasts["temperature"].tolist(),
        "history_hour": list(range(start - 72, start + horizon)),
        "history": series[start - 72 : start + horizon, 0].tolist(),
    }
