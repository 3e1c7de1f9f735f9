"""The example workflow runs through the public API, and the plugin ships it as a definition."""

from __future__ import annotations

from flowdapt.definitions import collect_definitions


def test_example_runs_inline(execute_workflow_inline):
    from pathlib import Path

    import flowdapt_examples

    path = Path(flowdapt_examples.__file__).parent / "nowcast.yaml"
    run = execute_workflow_inline(path, input={"n_cities": 40})
    assert run.state == "finished", run.error
    assert run.result["models"] == 40
    assert run.result["mean_rmse"] < 0.2
    assert run.stages["train_city"].items_done == 40


def test_plugin_ships_the_workflow_and_config(flowdapt_plugins):
    kinds = sorted((d.kind, d.name) for d in collect_definitions(flowdapt_plugins, ["examples"]))
    assert kinds == [("config", "nowcast-settings"), ("workflow", "nowcast")]
