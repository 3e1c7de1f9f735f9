"""Commands that work without a server: ``config show``, ``plugin list``, ``exec``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from flowdapt.cli.state import EXIT_BAD_INPUT, EXIT_FAILED, fail, state
from flowdapt.errors import FlowdaptError

config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
plugin_app = typer.Typer(help="Inspect plugins.", no_args_is_help=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def dumps_json(value: Any, *, indent: bool = True) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    option |= orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, default=_json_default, option=option).decode()


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json")] = "yaml",
    resolved: Annotated[bool, typer.Option("--resolved/--raw", help="fill in each backend's option defaults")] = True,
) -> None:
    """Print the effective configuration (file < environment < -o overrides)."""
    st = state(ctx)
    settings = st.settings
    data = settings.model_dump(mode="json")
    if resolved:
        plugins = st.plugins
        for section, kind in (("executor", "executors"), ("database", "document_stores"), ("cluster_memory", "cluster_memory")):
            backend = data[section]["backend"]
            try:
                registration = plugins.get(kind, backend)
                data[section]["options"] = registration.parse_options(data[section]["options"]).model_dump(mode="json")
                data[section]["plugin"] = registration.plugin
                if registration.name != backend:  # backend: auto
                    data[section]["resolved"] = registration.name
            except FlowdaptError as exc:
                data[section]["error"] = str(exc)
    data["config_path"] = str(settings.config_path) if settings.config_path else None
    if output == "json":
        typer.echo(dumps_json(data))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@plugin_app.command("list")
def plugin_list(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Every plugin found: name, version, state and the hooks it implements."""
    plugins = state(ctx).plugins
    _ = plugins.registries  # registration hooks can mark a plugin broken, so run them first
    rows = []
    for info in sorted(plugins.plugins.values(), key=lambda p: p.name):
        status = "error" if info.error else ("enabled" if info.enabled else "disabled")
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "module": info.module,
                "status": status,
                "hooks": info.hooks,
                "error": info.error,
            }
        )
    if output == "json":
        typer.echo(dumps_json(rows))
        return
    from flowdapt.cli.api import print_table

    table = []
    for row in rows:
        status = {"enabled": "[green]enabled[/]", "disabled": "[yellow]disabled[/]"}.get(row["status"], "[red]error[/]")
        hooks = ", ".join(h.removeprefix("flowdapt_") for h in row["hooks"]) or "-"
        table.append([row["name"], row["version"] or "-", status, row["module"], hooks])
    print_table(["NAME", "VERSION", "STATUS", "MODULE", "HOOKS"], table)
    for row in rows:
        if row["error"]:
            typer.secho(f"{row['name']}: {row['error']}", fg=typer.colors.RED)


def parse_inputs(pairs: list[str] | None, input_file: Path | None) -> dict[str, Any]:
    """``--input k=v`` values are parsed as YAML scalars/lists (``n=3`` is an int, ``xs=[1,2]`` a list)."""
    data: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = json.loads(input_file.read_text())
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON
            fail(f"--input-file {input_file}: {exc}")
        if not isinstance(loaded, dict):
            fail(f"--input-file {input_file}: the input must be a JSON object")
        data.update(loaded)
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--input expects key=value, got {pair!r}")
        try:
            data[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            data[key] = raw
    return data


def exec_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="workflow YAML/JSON file", exists=False)],
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="run input key=value (repeatable)")] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="run input as a JSON object file")] = None,
    executor: Annotated[str | None, typer.Option("--executor", "-e", help="executor backend (default: settings)")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="local executor mode: process, thread or inline")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="object-store namespace")] = None,
    config_files: Annotated[list[Path] | None, typer.Option("--config-file", help="config resource file(s) to select from")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars on stderr")] = True,
) -> None:
    """Run a workflow file in this process, without a server, and print its result as JSON.

    Stage targets may live in plugins, in user_modules/ of the app dir, in settings.allowed_targets,
    or in Python modules next to the workflow file. Exit code 0 finished, 1 failed, 2 bad input.
    """
    import asyncio

    from flowdapt.api import execute_workflow_async
    from flowdapt.engine.prepare import compile_checked, ensure_user_modules
    from flowdapt.resources import Config, Workflow
    from flowdapt.resources.loader import load_documents, parse_resource, read_text

    st = state(ctx)
    settings = st.settings
    plugins = st.plugins
    if not file.exists():
        fail(f"{file}: no such file")
    try:
        docs = load_documents(read_text(file), source=str(file))
        resources = [parse_resource(doc, source=str(file)) for doc in docs]
        workflows = [r for r in resources if isinstance(r, Workflow)]
        configs = [r for r in resources if isinstance(r, Config)]
        for path in config_files or []:
            configs += [
                r for r in (parse_resource(d, source=str(path)) for d in load_documents(read_text(path), source=str(path)))
                if isinstance(r, Config)
            ]
        if len(workflows) != 1:
            fail(f"{file}: expected exactly one workflow, found {len(workflows)}")
        workflow = workflows[0]
        ensure_user_modules(settings)
        here = file.resolve().parent
        sys.path.insert(0, str(here))
        # The modules next to the file are allowed for this run, beside the usual ones; checked
        # here too so that a refused workflow exits before an executor starts.
        compile_checked(workflow, settings, plugins, beside=here)
        run_input = parse_inputs(input, input_file)
        options = None
        backend = executor or settings.executor.backend
        if mode is not None:
            if backend != "local":
                fail("--mode only applies to the local executor")
            options = {**(settings.executor.options if settings.executor.backend == "local" else {}), "mode": mode}
    except FlowdaptError as exc:
        fail(str(exc))

    from flowdapt.cli.progress import RunProgress

    if not settings.logs.enabled:
        # Stage output goes to stderr even so: stdout is the result alone (`| jq` works).
        settings = settings.model_copy(update={"logs": settings.logs.model_copy(update={"enabled": True})})

    reporter = RunProgress(enabled=progress and sys.stderr.isatty())
    try:
        with reporter:
            run = asyncio.run(
                execute_workflow_async(
                    workflow,
                    run_input,
                    executor=backend,
                    executor_options=options,
                    config=configs,
                    namespace=namespace,
                    settings=settings,
                    plugins=plugins,
                    listeners=[reporter.listener],
                    allowed_beside=here,
                    # Stage output goes to stderr (above the progress bars), so stdout is the result only.
                    log_sink=reporter.log_sink,
                )
            )
    except FlowdaptError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130) from None
    if run.state == "finished":
        typer.echo(dumps_json(run.result))
        return
    error = run.error
    typer.secho(f"run {run.name} {run.state}", fg=typer.colors.RED, err=True)
    if error is not None:
        where = f" in stage '{error.stage}'" if error.stage else ""
        typer.secho(f"{error.type}{where}: {error.message}", fg=typer.colors.RED, err=True)
        if error.traceback and st.dev:
            typer.echo(error.traceback, err=True)
    typer.echo(dumps_json(run.result))
    raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(plugin_app, name="plugin")
    app.command("exec")(exec_command)


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "dumps_json", "parse_inputs", "register"]
