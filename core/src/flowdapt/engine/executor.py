"""The executor contract. An executor runs :class:`~flowdapt.engine.worker.Task` objects somewhere.

The default :meth:`Executor.execute` drives the run's DAG with :func:`run_plan`, which only needs
``submit``. An executor that can keep intermediate results on its cluster (Ray object refs, Dask
futures) overrides ``execute`` and may still reuse the worker-side :func:`run_task`.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import cloudpickle

from flowdapt.engine.context import RunContext
from flowdapt.engine.plan import Plan, PlannedStage
from flowdapt.engine.worker import Task, TaskResult


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

    async def execute(self, plan: Plan, ctx: RunContext, observer) -> dict[str, Any]:
        """Run every stage of the plan; returns each stage's output by name."""
        from flowdapt.engine.scheduler import run_plan

        return await run_plan(plan, ctx, self, observer)

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
    hostname: str, address: str | None = None, resources: dict[str, float] | None = None, node_id: str | None = None
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
