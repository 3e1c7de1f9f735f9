"""The executor contract. An executor runs :class:`~flowdapt.engine.worker.Task` objects somewhere.

The default :meth:`Executor.execute` drives the run's DAG with :func:`~flowdapt.engine.driver.drive`
through a :class:`SubmitBackend`, which only needs ``submit``: every stage output comes back to the
driver. An executor that keeps intermediate results on its cluster (Ray object refs, Dask futures)
supplies its own backend (:class:`~flowdapt.engine.cluster.ClusterExecutor`); the run semantics stay
the driver's.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import cloudpickle

from flowdapt.engine.context import RunContext
from flowdapt.engine.driver import RunObserver, chunk_bounds, drive
from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Task, TaskResult

#: Failure type of a task whose worker died; :class:`SubmitBackend` resubmits it per the stage's retries.
WORKER_CRASHED = "WorkerCrashedError"


class Executor(abc.ABC):
    #: The name stage code sees as ``get_run_context().executor``.
    name: ClassVar[str] = "executor"
    #: Chunks per worker for a map stage: more balances uneven items, fewer cuts overhead.
    chunks_per_worker: ClassVar[int] = 4

    def __init__(self) -> None:
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def close(self) -> None:
        """:meth:`stop`, by the original Flowdapt's name for it."""
        await self.stop()

    @property
    def kind(self) -> str:
        """The original Flowdapt's name for :attr:`name`."""
        return self.name

    async def __aenter__(self) -> Executor:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def workers(self) -> int:
        """How many tasks run at once; used to size map chunks."""
        return 1

    # -- what travels to workers ---------------------------------------------------------

    #: False for executors whose workers share the driver's memory (threads, inline).
    ships_pickles: ClassVar[bool] = True
    #: True for executors that run stages in the calling thread (``mode: inline``): the Python API
    #: runs them there instead of keeping them started between calls.
    runs_in_caller: ClassVar[bool] = False
    #: True when a task that waits for a worker tells the driver once it begins
    #: (:mod:`flowdapt.engine.live`), so its stage stays ``pending`` until then; see
    #: :class:`~flowdapt.engine.driver.Backend`.
    reports_start: ClassVar[bool] = False

    def encode_context(self, ctx: RunContext) -> Any:
        return cloudpickle.dumps(ctx) if self.ships_pickles else ctx

    def encode_target(self, target: Any) -> Any:
        if isinstance(target, str) or not self.ships_pickles:
            return target
        return cloudpickle.dumps(target)

    def chunk_size(self, n_items: int, stage: PlannedStage) -> int:
        explicit = getattr(stage.options, "chunk_size", None)
        if explicit:
            return explicit
        return max(1, math.ceil(n_items / max(1, self.workers * self.chunks_per_worker)))

    # -- running -------------------------------------------------------------------------

    @abc.abstractmethod
    async def submit(self, task: Task) -> TaskResult:
        """Run one task on a worker and return its result. Stage failures are in the result."""

    async def execute(self, plan: Plan, ctx: RunContext, observer: RunObserver) -> dict[str, Any]:
        """Run every stage of the plan; returns each stage's output by name."""
        return await drive(plan, ctx.input, SubmitBackend(self, ctx), observer)

    async def reload_code(self) -> None:
        """Installed code changed (a plugin was installed, upgraded or removed): tasks submitted
        from now on must import it afresh, without stopping the executor.

        The default forgets the targets resolved in this process, which is enough where tasks run
        in the driver (threads, inline). Executors with worker processes or remote workers replace
        them or ship the new code (new worker processes, a new Ray runtime env, Dask worker plugins).
        Tasks already running finish on the code they started with.
        """
        from flowdapt.engine.worker import clear_caches

        clear_caches()

    async def cancel(self, run_uid: str) -> None:
        """Stop the run's tasks that have not started; executors that can also stop running ones."""
        return None

    def environment_info(self) -> dict[str, Any]:
        """What ``/status`` reports about this executor and its cluster. ``nodes``, when given, is
        a list of node records (:func:`node_record`): the original's dashboard counts it."""
        return {"executor": self.name, "workers": self.workers}


def node_record(
    hostname: str,
    address: str | None = None,
    resources: dict[str, float] | None = None,
    node_id: str | None = None,
) -> dict[str, Any]:
    """One machine of an executor's cluster, in the shape of Ray's node records (``ray.nodes()``),
    which is what the original reported in ``/status`` as ``environment.nodes``."""
    address = address or hostname
    return {
        "NodeID": node_id or f"{hostname}@{address}",
        "Alive": True,
        "alive": True,
        "NodeName": address,
        "NodeManagerAddress": address,
        "NodeManagerHostname": hostname,
        "Resources": dict(resources or {}),
    }


class SubmitBackend:
    """The driver's backend over :meth:`Executor.submit`: stage outputs are the values themselves,
    on the driver, and a dependency's output travels with each task that needs it."""

    __slots__ = ("ex", "ctx", "context", "run_uid", "reports_start")

    def __init__(self, executor: Executor, ctx: RunContext) -> None:
        self.ex = executor
        self.reports_start = executor.reports_start
        self.ctx = ctx
        self.context = executor.encode_context(ctx)
        self.run_uid = str(ctx.run.uid)

    def _base(self, stage: PlannedStage) -> dict[str, Any]:
        options = stage.options
        return {
            "run_uid": self.run_uid,
            "stage": stage.name,
            "target": self.ex.encode_target(stage.target),
            "context": self.context,
            "retries": options.retries,
            "retry_delay": options.retry_delay,
            "timeout": options.timeout,
        }

    async def _submit(self, task: Task) -> TaskResult:
        """Submit a task; a task whose worker process died is resubmitted up to ``task.retries`` times."""
        for attempt in range(task.retries + 1):
            result = await self.ex.submit(task)
            if result.values or not result.failures or result.failures[0].type != WORKER_CRASHED:
                return result
            result.attempts = attempt + 1
            result.failures[0].attempts = attempt + 1
        return result

    async def call(self, stage: PlannedStage, deps: list[Any]) -> tuple[TaskResult, Any]:
        kwargs = self.ctx.input if stage.is_root else {}
        result = await self._submit(
            Task(mode=MODE_CALL, args=tuple(deps), kwargs=kwargs, **self._base(stage))
        )
        return result, None if result.failures else result.values[0]

    def map_length(self, stage: PlannedStage, source: Any) -> tuple[int | None, str, Any]:
        if not isinstance(source, list):
            if isinstance(source, (str, bytes, dict)) or not hasattr(source, "__iter__"):
                return None, type(source).__name__, None
            source = list(source)
        return len(source), "list", source

    def chunks(
        self, stage: PlannedStage, n: int, items: list[Any], input_key: str | None, rest: list[Any]
    ) -> list[tuple[int, Task]]:
        kwargs = self.ctx.input if stage.is_root else {}
        if input_key:
            kwargs = {k: v for k, v in kwargs.items() if k != input_key}
        base = self._base(stage)
        args = tuple(rest)
        return [
            (lo, Task(items=items[lo:hi], start=lo, mode=MODE_MAP, args=args, kwargs=kwargs, **base))
            for lo, hi in chunk_bounds(n, self.ex.chunk_size(n, stage))
        ]

    async def run_chunk(self, stage: PlannedStage, work: Task, start: int) -> tuple[TaskResult, int]:
        return await self._submit(work), start

    def map_output(self, stage: PlannedStage, parts: list[tuple[TaskResult, int]]) -> list[Any]:
        output: list[Any] = []
        for result, start in parts:
            if result.failures:
                failed = {f.index - start for f in result.failures}
                output.extend(v for j, v in enumerate(result.values) if j not in failed)
            else:
                output.extend(result.values)
        return output

    async def results(self, plan: Plan, outputs: dict[str, Any]) -> dict[str, Any]:
        return outputs

    async def abort(self) -> None:
        await self.ex.cancel(self.run_uid)
