"""``flowdapt trigger fire NAME``: fire a trigger rule's action on a running server, to test it.

(No ``from __future__ import annotations`` here: typer reads these signatures at runtime.)
"""

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from flowdapt.cli import api as cli
from flowdapt.cli.api import EXIT_BAD_INPUT, EXIT_FAILED, fail

trigger_app = typer.Typer(help="Trigger rules: fire one now to test it.", no_args_is_help=True)


def _read_event(text: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            raw = path.read_text()
        except OSError as exc:
            fail(f"cannot read the event file {path}: {exc}", EXIT_BAD_INPUT)
        try:
            return yaml.safe_load(raw) if path.suffix in (".yaml", ".yml") else orjson.loads(raw)
        except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
            fail(f"the event file {path} is not valid: {exc}", EXIT_BAD_INPUT)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f"--event is not valid JSON: {exc}", EXIT_BAD_INPUT)


@trigger_app.command("fire")
def fire_command(
    name: Annotated[str, typer.Argument(help="trigger rule name or uid")],
    event: Annotated[
        str | None,
        typer.Option("--event", "-e", help="event envelope as JSON, or @file.json / @file.yaml (read by {var: ...})"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only check whether the condition matches the event")] = False,
    output: cli.OutputOption = "table",
    server: cli.ServerOption = None,
    token: cli.TokenOption = None,
) -> None:
    """Fire NAME's action now, whatever its schedule or condition. Exit 1 when the action fails."""
    envelope = _read_event(event) if event is not None else None
    with cli.client(server, token) as client:
        answer = cli.call(client.fire_trigger, name, event=envelope, dry_run=dry_run)
    if output != "table":
        cli.dump(answer, output)
        if answer.get("error"):
            raise typer.Exit(EXIT_FAILED)
        return
    outcome = "dry run" if answer.get("dry_run") else ("fired" if answer.get("fired") else "failed")
    line = f"[trigger_rule/{answer['rule']}] {outcome}"
    matched = answer.get("matched")
    if matched is not None:
        line += f", condition {'matches' if matched else 'does not match'} the event"
    typer.echo(line)
    if answer.get("result") is not None:
        typer.echo(f"result: {orjson.dumps(answer['result']).decode()}")
    if answer.get("error"):
        fail(f"{answer['error'][0]}: {answer['error'][1]}", EXIT_FAILED)


@trigger_app.command("history")
def history_command(
    name: Annotated[str, typer.Argument(help="trigger rule name or uid")],
    limit: Annotated[int | None, typer.Option("--limit", "-l", help="at most this many fires")] = None,
    output: cli.OutputOption = "table",
    server: cli.ServerOption = None,
    token: cli.TokenOption = None,
) -> None:
    """NAME's recent fires, newest first: time, outcome, manual or not, the run it started or the error."""
    with cli.client(server, token) as client:
        items = cli.call(client.trigger_history, name, limit=limit)
    if output != "table":
        cli.dump(items, output)
        return
    if not items:
        typer.echo(f"trigger_rule/{name} has not fired yet")
        return
    rows = []
    for item in items:
        outcome = "[green]fired[/]" if item.get("outcome") == "fired" else "[red]failed[/]"
        if item.get("error"):
            detail = f"{item['error'][0]}: {item['error'][1]}"
        elif item.get("run"):
            detail = f"run {item['run']}" + (f" of {item['workflow']}" if item.get("workflow") else "")
        elif "result" in item:
            detail = orjson.dumps(item["result"]).decode()
        else:
            detail = "-"
        how = "manual" if item.get("manual") else ("due " + item["due"] if item.get("due") else ("event " + str(item.get("event"))))
        rows.append([item.get("time") or "-", outcome, how, detail])
    cli.print_table(["TIME", "OUTCOME", "HOW", "RUN / ERROR"], rows)
