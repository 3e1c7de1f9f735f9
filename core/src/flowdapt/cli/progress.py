"""Live progress of a run on the terminal: one bar per map stage, a line per finished stage."""

from __future__ import annotations

from typing import Any

from flowdapt.resources.run import WorkflowRun


class RunProgress:
    """A run listener that draws rich progress bars on stderr (a no-op when disabled)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress: Any = None
        self._bars: dict[str, Any] = {}

    def __enter__(self) -> RunProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def log_sink(self, stage: str, records: list[tuple]) -> None:
        """What the stages print and log, as ``stage[item] | line`` on stderr (above the bars)."""
        from flowdapt.engine.logs import format_record, from_wire

        lines = [format_record(r) for r in from_wire(stage, records)]
        if self._progress is not None:
            for line in lines:
                self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        import sys

        sys.stderr.write("".join(line + "\n" for line in lines))
        sys.stderr.flush()

    def listener(self, event: str, run: WorkflowRun, stage: str | None) -> None:
        if self._progress is None or stage is None:
            return
        record = run.stages[stage]
        if event == "stage_started":
            self._bars[stage] = self._progress.add_task(
                stage, total=record.items_total if record.items_total is not None else 1, failed=""
            )
            return
        bar = self._bars.get(stage)
        if bar is None:
            return
        failed = f"[red]{record.items_failed} failed[/]" if record.items_failed else ""
        if event == "stage_progress":
            self._progress.update(bar, completed=record.items_done, failed=failed)
        elif event == "stage_finished":
            total = record.items_total if record.items_total is not None else 1
            label = stage if record.state == "finished" else f"[red]{stage} ({record.state})[/]"
            self._progress.update(bar, completed=total if record.state == "finished" else record.items_done, description=label, failed=failed)
