"""The workflow engine: compile a workflow to a plan, run it on an executor, record the run."""
