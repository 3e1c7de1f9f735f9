"""The nowcast report's two figures, rendered to PNG bytes with matplotlib's Agg backend."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flowdapt_nowcast_example.weather import LAT_RANGE, LON_RANGE  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def forecast_plot(predictions: list[dict], horizon: int | None) -> bytes:
    """Temperature forecast against truth over the held-out window, for the sampled cities."""
    sampled = [p for p in predictions if "series" in p]
    fig, axes = plt.subplots(len(sampled) or 1, 1, figsize=(9, 2.4 * max(1, len(sampled))), sharex=True,
                             squeeze=False)
    for ax, p in zip(axes[:, 0], sampled, strict=False):
        s = p["series"]
        ax.plot(s["history_hour"], s["history"], color="0.6", lw=1, label="observed (before)")
        ax.plot(s["hour"], s["truth"], color="black", lw=1.4, label="truth")
        ax.plot(s["hour"], s["forecast"], color="tab:red", lw=1.4, ls="--", label=f"forecast (+{horizon} h)")
        ax.axvline(s["hour"][0], color="0.8", lw=1)
        ax.set_ylabel("°C")
        ax.set_title(f"{p['city']}  (lat {p['lat']:.1f}, lon {p['lon']:.1f})  "
                     f"RMSE {p['rmse']['temperature']:.2f} °C, persistence {p['persistence_rmse']['temperature']:.2f}",
                     fontsize=9, loc="left")
    axes[0, 0].legend(fontsize=8, ncol=4, loc="upper left")
    axes[-1, 0].set_xlabel("hour of the series")
    fig.suptitle(f"Temperature nowcast, {horizon} h ahead: forecast against truth", fontsize=11)
    return _png(fig)


def error_map(predictions: list[dict], horizon: int | None) -> bytes:
    """Temperature RMSE of every city on the map, and its skill over persistence."""
    lat = np.array([p["lat"] for p in predictions])
    lon = np.array([p["lon"] for p in predictions])
    rmse = np.array([p["rmse"]["temperature"] for p in predictions])
    persistence = np.array([p["persistence_rmse"]["temperature"] for p in predictions])
    skill = 1 - rmse / np.where(persistence > 0, persistence, np.nan)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    size = min(60.0, max(10.0, 12000 / max(1, len(predictions))))
    for ax, values, title, cmap in (
        (axes[0], rmse, "temperature RMSE (°C)", "viridis"),
        (axes[1], skill, "skill over persistence (1 - RMSE / RMSE persistence)", "RdYlGn"),
    ):
        points = ax.scatter(lon, lat, c=values, s=size, cmap=cmap, edgecolors="none")
        fig.colorbar(points, ax=ax, shrink=0.85)
        ax.set_xlim(*LON_RANGE)
        ax.set_ylim(*LAT_RANGE)
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Nowcast error over {len(predictions)} cities, {horizon} h ahead "
                 f"(mean RMSE {np.mean(rmse):.2f} °C, persistence {np.mean(persistence):.2f} °C)", fontsize=11)
    return _png(fig)
