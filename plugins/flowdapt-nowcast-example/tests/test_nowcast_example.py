"""The nowcast example: its synthetic weather has the structure it claims, and the three shipped
workflows run end to end through the public API (inline), with live config and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowdapt.definitions import collect_definitions
from flowdapt_nowcast_example import weather as wx

SMALL = {"n_cities": 12, "history_hours": 24 * 10, "test_hours": 24, "plot_cities": 2}


def test_weather_has_diurnal_cycle_and_fronts_that_travel_east():
    data = wx.generate_weather(40, 24 * 20, seed=3)
    assert data.values.shape == (40, 480, 3) and data.values.dtype == np.float32
    temp = data.values[..., 0]
    # Diurnal cycle in local solar time: afternoons warmer than nights, in every city.
    local_hour = (np.arange(480)[None, :] + data.lon[:, None] / 15.0) % 24
    afternoon = np.where((local_hour >= 13) & (local_hour < 17), temp, np.nan)
    night = np.where((local_hour >= 2) & (local_hour < 6), temp, np.nan)
    assert (np.nanmean(afternoon, axis=1) > np.nanmean(night, axis=1) + 2).all()
    # Fronts raise the wind in the west before the east: the eastern cities' wind lags the western.
    west, east = np.argsort(data.lon)[:5], np.argsort(data.lon)[-5:]
    w = data.values[west, :, 2].mean(axis=0) - data.values[west, :, 2].mean()
    e = data.values[east, :, 2].mean(axis=0) - data.values[east, :, 2].mean()
    lags = range(0, 60)
    best = max(lags, key=lambda lag: float(np.dot(w[: 480 - lag], e[lag:])))
    assert 10 <= best <= 60, best  # 40 degrees of longitude at 0.5-1.1 degrees an hour
    assert (data.values[..., 1] <= 100).all() and (data.values[..., 2] >= 0).all()


def test_plugin_ships_workflows_config_and_trigger_rules(flowdapt_plugins):
    shipped = sorted((d.kind, d.name) for d in collect_definitions(flowdapt_plugins, ["nowcast_example"]))
    assert shipped == [
        ("config", "nowcast-example-settings"),
        ("trigger_rule", "nowcast-predict-after-train"),
        ("trigger_rule", "nowcast-predict-every-5-minutes"),
        ("trigger_rule", "nowcast-retrain"),
        ("workflow", "nowcast-create-features"),
        ("workflow", "nowcast-predict"),
        ("workflow", "nowcast-train"),
    ]
    rules = {d.name: d.resource for d in collect_definitions(flowdapt_plugins, ["nowcast_example"])
             if d.kind == "trigger_rule"}
    assert rules["nowcast-retrain"].spec.rule == ["*/30 * * * *"]
    assert rules["nowcast-predict-every-5-minutes"].spec.rule == ["*/5 * * * *"]


def test_create_train_predict_beats_persistence_and_plots(execute_workflow_inline):
    config = {**SMALL, "horizon": 3}
    features = execute_workflow_inline("nowcast-create-features", config=config, check=True)
    assert features.result == {"cities": 12, "rows_per_city": 264, "features": 37,
                               "targets": ["temperature", "humidity", "wind_speed"]}
    assert features.stages["build_features"].items_done == 12
    train = execute_workflow_inline("nowcast-train", config=config, check=True)
    assert train.result["models"] == 36 and train.result["horizon"] == 3
    predict = execute_workflow_inline("nowcast-predict", config=config, check=True)
    result = predict.result
    assert result["cities"] == 12 and result["horizon"] == 3
    assert sorted(result["error_per_city"]) == [f"city-{i:04d}" for i in range(12)]
    # One model per city and target, better than persistence 3 hours ahead for every target.
    for target in ("temperature", "humidity", "wind_speed"):
        assert result["rmse"][target] < 0.8 * result["persistence_rmse"][target], (target, result)
    for name in ("forecast", "error_map"):
        png = Path(result["plots"][name])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert png.parent.name == "nowcast-report"
        # The same file's path on the API server (GET /artifacts/...), for clients and the dashboard.
        assert result["plot_urls"][name] == f"/artifacts/default/nowcast-report/files/{png.name}"


def test_changed_horizon_is_used_by_the_next_runs(execute_workflow_inline):
    execute_workflow_inline("nowcast-create-features", config={**SMALL, "horizon": 1}, check=True)
    assert execute_workflow_inline("nowcast-train", config={**SMALL, "horizon": 1}, check=True).result["horizon"] == 1
    # The config changed: predict refuses the stale models and says what to run.
    stale = execute_workflow_inline("nowcast-predict", config={**SMALL, "horizon": 6})
    assert stale.state == "failed"
    assert "trained for horizon 1" in stale.error.message and "nowcast-train" in stale.error.message
    assert execute_workflow_inline("nowcast-train", config={**SMALL, "horizon": 6}, check=True).result["horizon"] == 6
    six = execute_workflow_inline("nowcast-predict", config={**SMALL, "horizon": 6}, check=True).result
    assert six["horizon"] == 6


def test_train_before_features_names_the_workflow_to_run(execute_workflow_inline):
    run = execute_workflow_inline("nowcast-train", config=SMALL)
    assert run.state == "failed"
    assert "run the workflow nowcast-create-features first" in run.error.message


def test_the_shipped_config_selects_all_three_workflows(flowdapt_plugins):
    from flowdapt.engine.configs import select_configs

    defs = collect_definitions(flowdapt_plugins, ["nowcast_example"])
    config = next(d.resource for d in defs if d.kind == "config")
    assert config.spec.data["horizon"] == 1
    for wf in (d.resource for d in defs if d.kind == "workflow"):
        assert select_configs(wf, [config]) == [config], wf.metadata.name
