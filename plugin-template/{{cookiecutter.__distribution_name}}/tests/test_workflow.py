"""Run the shipped workflow in this process with the fixtures Flowdapt installs for pytest.

`execute_workflow_inline` runs stages in the test's thread (breakpoints work) inside a temporary
app dir (`flowdapt_app_dir`), and returns the run record.
"""

from importlib.resources import files

WORKFLOW = "{{ cookiecutter.__workflow_name }}"


def test_shipped_workflow_uses_the_shipped_config(execute_workflow_inline):
    # By name: the workflow and the configs this plugin ships (scale: 2.0).
    run = execute_workflow_inline(WORKFLOW, {"count": 4})
    assert run.state == "finished", run.error
    assert run.result == {"count": 4, "total": 28.0, "mean": 7.0}  # 2 * (0 + 1 + 4 + 9)


def test_config_data_can_be_given_directly(execute_workflow_inline):
    run = execute_workflow_inline(WORKFLOW, {"count": 3}, config={"scale": 10})
    assert run.result == {"count": 3, "total": 50.0, "mean": 50.0 / 3}


def test_workflow_file_runs(execute_workflow_inline):
    path = files("{{ cookiecutter.__package_name }}") / "definitions" / "workflows" / f"{WORKFLOW}.yaml"
    run = execute_workflow_inline(str(path), {"count": 2})
    assert run.result == {"count": 2, "total": 1.0, "mean": 0.5}  # no config beside the file: scale 1


def test_a_failing_stage_fails_the_run(execute_workflow_inline):
    run = execute_workflow_inline(WORKFLOW, {"count": -1})
    assert run.state == "failed"
    assert run.error.stage == "make_numbers"
    assert "count must be >= 0" in run.error.message
