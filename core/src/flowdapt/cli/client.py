"""kubectl-style commands that talk to a running server: apply, get, inspect, delete, start,
runs, logs, cancel, status. ``--server`` / ``FLOWDAPT_SERVER`` and ``--token`` / ``FLOWDAPT_TOKEN``."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from flowdapt.cli import api as cli
from flowdapt.cli.api import OutputOption, ServerOption, TokenOption, call, dump, exit_for, print_table
from flowdapt.cli.state import EXIT_FAILED, fail
from flowdapt.errors import ValidationError

Server = ServerOption
Token = TokenOption
Output = OutputOption

RESOURCE_KINDS = {
    "workflow": "workflow",
    "workflows": "workflow",
    "wf": "workflow",
    "config": "config",
    "configs": "config",
    "trigger": "trigger_rule",
    "triggers": "trigger_rule",
    "trigger_rule": "trigger_rule",
    "trigger_rules": "trigger_rule",
}
OTHER_KINDS = {"run": "run", "runs": "run", "workflow_run": "run", "workflow_runs": "run", "plugin": "plugin", "plugins": "plugin"}


def _kind(kind: str) -> str:
    key = kind.lower()
    if key in RESOURCE_KINDS:
        return RESOURCE_KINDS[key]
    if key in OTHER_KINDS:
        return OTHER_KINDS[key]
    fail(f"unknown kind {kind!r}; use workflows, configs, triggers, runs or plugins")


def _age(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = (datetime.utcnow() - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def _duration(run: dict) -> str:
    if not run.get("finished_at"):
        return "..."
    seconds = (datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
    return f"{seconds:.2f}s" if seconds < 60 else f"{seconds / 60:.1f}m"


_STATE_COLORS = {"finished": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "pending": "white"}


def _state(state: str) -> str:
    return f"[{_STATE_COLORS.get(state, 'white')}]{state}[/]"


def run_state(run: dict) -> str:
    """A run's state as people read it: ``pending (queued, #2)`` for a run waiting for a slot
    (``queue_position``), its bare state otherwise."""
    position = run.get("queue_position")
    return f"{run['state']} (queued, #{position})" if run.get("state") == "pending" and position else run["state"]


def _run_state_cell(run: dict) -> str:
    text = run_state(run)
    return _state(run["state"]) + text[len(run["state"]) :]


def _resource_rows(kind: str, items: list[dict]) -> None:
    if kind == "workflow":
        rows = [[i["metadata"]["name"], len(i["spec"]["stages"]), _age(i["metadata"]["created_at"]), i["metadata"]["uid"]] for i in items]
        print_table(["NAME", "STAGES", "AGE", "UID"], rows)
    elif kind == "config":
        rows = []
        for i in items:
            sel = i["spec"].get("selector") or {}
            rows.append([i["metadata"]["name"], sel.get("type", "-"), sel.get("value", "-"), _age(i["metadata"]["created_at"]), i["metadata"]["uid"]])
        print_table(["NAME", "SELECTOR", "VALUE", "AGE", "UID"], rows)
    else:
        rows = []
        for i in items:
            status = i.get("status") or {}  # next/last fire, from the server's trigger service
            rows.append([
                i["metadata"]["name"], i["spec"]["type"], i["spec"]["action"]["target"],
                status.get("next_fire") or "-",
                status.get("last_fire") or i["metadata"].get("annotations", {}).get("flowdapt.ai/last_run") or "-",
                _last_outcome(status.get("last_outcome")),
                _age(i["metadata"]["created_at"]), i["metadata"]["uid"],
            ])
        print_table(["NAME", "TYPE", "ACTION", "NEXT FIRE", "LAST FIRE", "LAST OUTCOME", "AGE", "UID"], rows)


def _last_outcome(record: dict | None) -> str:
    """A trigger's last fire, for the table: fired (the run) or failed (the error type)."""
    if not record:
        return "-"
    if record.get("outcome") == "failed":
        error = record.get("error") or ["error", ""]
        return f"[red]failed[/] ({error[0]})"
    return "[green]fired[/]" + (f" ({record['run'][:8]})" if record.get("run") else "")


def stage_summary(stages: dict[str, dict]) -> str:
    """``3/4 stages · 1 failed · 1 skipped``: stages that finished out of all, then the failed,
    cancelled and skipped ones each counted as what they are (a skipped stage is not done)."""
    if not stages:
        return "-"
    states = [s.get("state") for s in stages.values()]
    text = f"{states.count('finished')}/{len(states)} stages"
    for state in ("failed", "cancelled", "skipped"):
        if states.count(state):
            text += f" · {states.count(state)} {state}"
    return text


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.I)
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_since(text: str) -> datetime:
    """``--since``: an ISO time (naive means UTC) or a duration before now (``90s``, ``30m``,
    ``1h``, ``2d``, ``1w``, ``1h30m``). Anything else exits with code 2."""
    from datetime import UTC, timedelta

    raw = text.strip()
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(raw):
        if raw[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNIT[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or raw[pos:].strip():
        fail(f"--since {text!r}: use an ISO time (2026-01-31T12:00) or a duration ago such as 30m, 1h, 2d, 1h30m")
    return datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=total)


def _run_rows(runs: list[dict]) -> None:
    print_table(
        ["NAME", "WORKFLOW", "STATE", "STARTED", "DURATION", "STAGES", "SOURCE"],
        [
            [r["name"], r["workflow"], _run_state_cell(r), _age(r["started_at"]), _duration(r), stage_summary(r.get("stages") or {}), r.get("source") or "-"]
            for r in runs
        ],
    )


# -- apply / delete from files -----------------------------------------------------------------


def _load_files(paths: list[Path]) -> list[dict[str, Any]]:
    """Every resource document in the files/folders, validated locally before anything is sent."""
    from flowdapt.resources.loader import iter_resource_files, load_documents, parse_resource, read_text

    documents: list[dict[str, Any]] = []
    try:
        for path in iter_resource_files(paths):
            for doc in load_documents(read_text(path), source=str(path)):
                resource = parse_resource(doc, source=str(path))  # names the file, kind and field
                documents.append(resource.to_document() | {"kind": resource.kind})
    except ValidationError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror}")
    if not documents:
        fail(f"no resources found in {', '.join(str(p) for p in paths)} (.yaml, .yml or .json files)")
    return documents


def _exists(client, kind: str, name: str) -> bool:
    from flowdapt.client import ApiError, NotFoundError

    try:
        client.get(kind, name)
    except NotFoundError:
        return False
    except ApiError as exc:
        exit_for(exc)
    return True


def apply_command(
    files: Annotated[list[Path], typer.Option("--filename", "-f", help="file or folder (repeatable); several YAML documents per file")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate on the server, write nothing")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Create or update the resources in files or folders. All are validated before any is written."""
    documents = _load_files(files)
    with cli.client(server, token) as client:
        actions = []
        for doc in documents:  # server-side validation of everything first (targets, DAG, options)
            exists = _exists(client, doc["kind"], doc["metadata"]["name"])
            if exists:
                call(client.update, doc, dry_run=True)
            else:
                call(client.create, doc, dry_run=True)
            actions.append((doc, exists))
        for doc, exists in actions:
            label = f"{doc['kind']}/{doc['metadata']['name']}"
            if dry_run:
                typer.echo(f"{label} valid ({'would update' if exists else 'would create'})")
            elif exists:
                call(client.update, doc)
                typer.echo(f"{label} updated")
            else:
                call(client.create, doc)
                typer.echo(f"{label} created")


def delete_command(
    kind: Annotated[str | None, typer.Argument(help="workflow, config, trigger or run")] = None,
    name: Annotated[str | None, typer.Argument(help="name or uid")] = None,
    files: Annotated[list[Path] | None, typer.Option("--filename", "-f", help="delete the resources named in these files")] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Delete a resource by kind and name, or every resource named in files."""
    from flowdapt.client import NotFoundError

    with cli.client(server, token) as client:
        if files:
            for doc in _load_files(files):
                label = f"{doc['kind']}/{doc['metadata']['name']}"
                try:
                    client.delete(doc["kind"], doc["metadata"]["name"])
                    typer.echo(f"{label} deleted")
                except NotFoundError:
                    typer.echo(f"{label} not found")
            return
        if not kind or not name:
            fail("give KIND NAME, or -f FILE")
        resolved = _kind(kind)
        if resolved == "run":
            run = call(client.delete_run, name)
            typer.echo(f"run/{run.name} deleted")
        elif resolved == "plugin":
            fail("plugins are not deleted through the server; uninstall the package")
        else:
            resource = call(client.delete, resolved, name)
            typer.echo(f"{resolved}/{resource.metadata.name} deleted")


# -- reading -----------------------------------------------------------------------------------


def get_command(
    kind: Annotated[str, typer.Argument(help="workflows, configs, triggers, runs or plugins")],
    name: Annotated[str | None, typer.Argument(help="name or uid (omit to list)")] = None,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """List resources of a kind, or get one."""
    resolved = _kind(kind)
    with cli.client(server, token) as client:
        if resolved == "run":
            if name:
                runs = [call(client.get_run, name).model_dump(mode="json")]
            else:
                runs = [r.model_dump(mode="json") for r in call(client.list_runs, limit=50).items]
            if output == "table":
                _run_rows(runs)
            else:
                dump(runs[0] if name else runs, output)
            return
        if resolved == "plugin":
            plugins = [call(client.plugin, name)] if name else call(client.plugins)
            if output == "table":
                print_table(
                    ["NAME", "VERSION", "STATUS", "MODULE"],
                    [[p["name"], p["metadata"]["version"] or "-", "error" if p.get("error") else ("loaded" if p.get("enabled", True) else "disabled"), p["module"]] for p in plugins],
                )
            else:
                dump(plugins[0] if name else plugins, output)
            return
        if name:
            items = [call(client.get_document, resolved, name)]
        else:
            items = call(client.list_documents, resolved)
        if output == "table":
            if not items:
                typer.echo(f"no {resolved}s")
                return
            _resource_rows(resolved, items)
        else:
            dump(items[0] if name else items, output)


def inspect_command(
    kind: Annotated[str, typer.Argument(help="workflow, config, trigger, run or plugin")],
    name: Annotated[str, typer.Argument(help="name or uid")],
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json")] = "yaml",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show one resource or run in full."""
    resolved = _kind(kind)
    with cli.client(server, token) as client:
        if resolved == "run":
            value = call(client.get_run, name).model_dump(mode="json", exclude={"owner"})
            if output == "yaml" and value.get("queue_position"):
                # A comment, so the document stays what a YAML reader expects.
                typer.echo(f"# run/{value['name']} {run_state(value)}: it starts when a slot frees")
        elif resolved == "plugin":
            value = call(client.plugin, name)
        else:
            value = call(client.get, resolved, name).to_document()
    dump(value, output)


def runs_command(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="only this workflow")] = None,
    state_: Annotated[list[str] | None, typer.Option("--state", help="only these states (repeatable)")] = None,
    since: Annotated[str | None, typer.Option("--since", help="started at or after: an ISO time (naive is UTC) or a duration ago (30m, 1h, 2d, 1h30m)")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", help="at most this many runs")] = 20,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """List runs across workflows, newest first."""
    since_time = parse_since(since) if since is not None else None
    with cli.client(server, token) as client:
        page = call(client.list_runs, workflow=workflow, state=state_, since=since_time, limit=limit, offset=offset)
    runs = [r.model_dump(mode="json", exclude={"owner"}) for r in page.items]
    if output != "table":
        dump({"items": runs, "total": page.total, "limit": page.limit, "offset": page.offset}, output)
        return
    if not runs:
        typer.echo("no runs")
        return
    _run_rows(runs)
    if page.total > offset + len(runs):
        typer.echo(f"({len(runs)} of {page.total}; --offset {offset + len(runs)} for more)")


def logs_command(
    run: Annotated[str, typer.Argument(help="run name or uid")],
    stage: Annotated[str | None, typer.Option("--stage", help="only this stage")] = None,
    level: Annotated[str | None, typer.Option("--level", "-l", help="at least this level (DEBUG, INFO, WARNING, ERROR)")] = None,
    since: Annotated[datetime | None, typer.Option("--since", help="records at or after this time (UTC)")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new records until the run ends")] = False,
    limit: Annotated[int, typer.Option("--limit", "-l", help="records to print (without --follow)")] = 10_000,
    output: Annotated[str, typer.Option("--output", "-o", help="text, or json (one record per line)")] = "text",
    server: Server = None,
    token: Token = None,
) -> None:
    """Print what a run's stages printed and logged: `stage[item] | line`, oldest first."""
    from flowdapt.client import ApiError
    from flowdapt.engine.logs import RunLogRecord, format_record

    if output not in ("text", "json"):
        fail(f"--output must be text or json, not {output!r}", 2)

    def show(record: dict) -> None:
        if output == "json":
            typer.echo(orjson.dumps(record).decode())
        else:
            typer.echo(format_record(RunLogRecord.from_json(record), with_time=True))

    with cli.client(server, token) as client:
        if not follow:
            page = call(client.run_logs, run, stage=stage, level=level, since=since, limit=limit)
            for record in page.items:
                show(record)
            return
        try:
            for record in client.follow_logs(run, stage=stage, level=level, since=since):
                show(record)
        except ApiError as exc:
            exit_for(exc)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


# -- running -----------------------------------------------------------------------------------


class _StageDisplay:
    """Per-stage progress bars, updated from the run record (polled while the run is live)."""

    def __init__(self, enabled: bool):
        self.progress = None
        self.bars: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()

    def update(self, run) -> None:
        if self.progress is None:
            return
        for name, record in run.stages.items():
            if record.state == "pending":
                continue
            total = record.items_total if record.items_total is not None else 1
            done = record.items_done if record.items_total is not None else (1 if record.state == "finished" else 0)
            note = f"[red]{record.items_failed} failed[/]" if record.items_failed else ""
            if record.state in ("failed", "cancelled", "skipped"):
                note = f"[red]{record.state}[/]"
            bar = self.bars.get(name)
            if bar is None:
                bar = self.bars[name] = self.progress.add_task(name, total=total, note=note)
            self.progress.update(bar, total=total, completed=done, note=note)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def start_command(
    workflow: Annotated[str, typer.Argument(help="workflow name or uid")],
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="run input key=value (value parsed as YAML; repeatable)")] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="run input as a JSON object file")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the run to end (default) or return once submitted")] = True,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="live per-stage progress on stderr")] = True,
    output: Annotated[str, typer.Option("--output", "-o", help="summary, json or yaml")] = "summary",
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="a key of yours for this run: the same command again (after a timeout, say) follows the run it started instead of starting another"),
    ] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Run a workflow on the server. Exit code 0 when it finishes (or is submitted with --no-wait),
    1 when it fails or is cancelled."""
    from flowdapt.cli.core import parse_inputs

    run_input = parse_inputs(input, input_file)
    with cli.client(server, token) as client:
        run = call(client.run_workflow, workflow, run_input, wait=False, namespace=namespace, idempotency_key=idempotency_key)
        _follow(client, run, wait=wait, progress=progress, output=output)


def _follow(client, run, *, wait: bool, progress: bool, output: str) -> None:
    """Wait for a submitted run with live progress (when ``wait``), print it, exit 1 unless it finished."""
    if wait:
        display = _StageDisplay(progress and sys.stderr.isatty())
        delay = 0.05
        try:
            while run.state in ("pending", "running"):
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                run = call(client.get_run, run.name, include_result=False)
                display.update(run)
            run = call(client.get_run, run.name)
            display.update(run)
        except KeyboardInterrupt:
            display.close()
            typer.echo(f"interrupted; the run goes on: flowdapt cancel {run.name}", err=True)
            raise typer.Exit(130) from None
        display.close()
    document = run.model_dump(mode="json", exclude={"owner"})
    if output == "summary":
        typer.echo(f"run/{run.name} {run_state(document)}" + ("" if not wait else f" in {_duration(document)}"))
        if run.state == "finished":
            typer.echo(orjson.dumps(run.result, option=orjson.OPT_NON_STR_KEYS).decode() if run.result is not None else "null")
        elif run.state in ("failed", "cancelled"):
            error = run.error
            where = f" in stage {error.stage}" if error and error.stage else ""
            typer.secho(f"{error.type if error else 'error'}{where}: {error.message if error else run.result}", fg="red", err=True)
    else:
        dump(document, output)
    if wait and run.state != "finished":
        raise typer.Exit(EXIT_FAILED)


def rerun_command(
    run: Annotated[str, typer.Argument(help="run name or uid to run again")],
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="change an input key: key=value (value parsed as YAML; repeatable)")] = None,
    input_file: Annotated[Path | None, typer.Option("--input-file", help="input keys to change, as a JSON object file")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="wait for the run to end (default) or return once submitted")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="live per-stage progress on stderr")] = True,
    output: Annotated[str, typer.Option("--output", "-o", help="summary, json or yaml")] = "summary",
    server: Server = None,
    token: Token = None,
) -> None:
    """Run a run again with the input it had (--input changes keys of it). Exit codes as `start`."""
    from flowdapt.cli.core import parse_inputs

    overrides = parse_inputs(input, input_file)
    with cli.client(server, token) as client:
        new = call(client.rerun, run, overrides or None, wait=False)
        _follow(client, new, wait=wait, progress=progress, output=output)


def cancel_command(
    run: Annotated[str, typer.Argument(help="run name or uid")],
    server: Server = None,
    token: Token = None,
) -> None:
    """Cancel a pending or running run."""
    with cli.client(server, token) as client:
        result = call(client.cancel_run, run)
    typer.echo(f"run/{result.name} {result.state}")


def status_command(output: Output = "table", server: Server = None, token: Token = None) -> None:
    """Server version, services, executor and system figures."""
    with cli.client(server, token) as client:
        ping = call(client.ping)
        status = call(client.status)
    if output != "table":
        dump({"ping": ping, "status": status}, output)
        return
    system = status["system"]
    typer.echo(f"server    {client.base_url}  flowdapt {ping['version']} (API {ping['api_version']})  name {status['name']}")
    typer.echo(f"host      {status['hostname']}  {status['os']['name']} {status['os']['release']}  python {status['python']}")
    typer.echo(f"database  {status['database']}")
    typer.echo(f"process   pid {system['pid']}  rss {system['memory'] / 2**20:.0f} MiB  cpu {system['cpu_pct']}%  threads {system['threads']}")
    rows = []
    for name, service in status["services"].items():
        detail = ""
        if "environment" in service:
            env = service["environment"]
            detail = f"{env.get('executor', '')} workers={env.get('workers', '-')}  active runs {service.get('active_runs', 0)}"
        rows.append([name, _state("finished") if service.get("status") == "OK" else _state("failed"), detail])
    print_table(["SERVICE", "STATUS", "DETAIL"], [[r[0], r[1].replace("finished", "OK").replace("failed", "NOT OK"), r[2]] for r in rows])
    if status.get("draining"):
        typer.secho("draining: new runs are refused (DELETE /drain to resume)", fg="yellow")


def register(app: typer.Typer) -> None:
    app.command("apply")(apply_command)
    app.command("get")(get_command)
    app.command("inspect")(inspect_command)
    app.command("delete")(delete_command)
    app.command("start")(start_command)
    app.command("runs")(runs_command)
    app.command("logs")(logs_command)
    app.command("cancel")(cancel_command)
    app.command("rerun")(rerun_command)
    app.command("status")(status_command)
