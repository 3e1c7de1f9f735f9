"""A third-party executor whose stage outputs stay on its "cluster", written against the one DAG
driver's ``Backend`` interface (docs/executors.md, "Writing an executor", level 3).

The cluster here is a thread pool and a table of values in the executor: a stage's output is put
there by the worker that produced it and the driver only holds a ``_Ref`` to it; the next stage's
worker resolves its dependencies' refs itself, and only the sinks' values come to the driver at
the end. The run semantics (DAG order, chunks, failures, progress records) are all the driver's:
this module only says how to submit work and gather handles. It uses only public Flowdapt names
and registers through ``flowdapt_register_executors`` like any plugin
(tests/conformance/test_third_party_executor.py runs the shipped conformance suite on it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from flowdapt.engine.driver import chunk_bounds, drive
from flowdapt.engine.executor import Executor
from flowdapt.engine.worker import MODE_CALL, MODE_MAP, Task, TaskResult, run_task

hookimpl = pluggy.HookimplMarker("flowdapt")
_keys = itertools.count()


class HandleExecutorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(default=2, ge=1)


class _Ref:
    """A stage output (or a map chunk's) held by the executor."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


class _Chunks(list):
    """A map stage's output: the refs of its chunks' outputs, in item order."""


class HandleExecutor(Executor):
    name = "handles"
    ships_pickles = False  # the workers are threads of this process

    def __init__(self, workers: int = 2) -> None:
        super().__init__()
        self._workers = workers
        self._pool: cf.ThreadPoolExecutor | None = None
        self.values: dict[int, Any] = {}  # the "cluster": outputs by ref key
        self._futures: dict[str, set[cf.Future]] = {}

    @property
    def workers(self) -> int:
        return self._workers

    async def start(self) -> None:
        self._pool = cf.ThreadPoolExecutor(self._workers, thread_name_prefix="flowdapt-handles")
        await super().start()

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: pool.shutdown(cancel_futures=True))
        await super().stop()

    async def on_worker(self, run_uid: str, fn, *args) -> Any:
        future = self._pool.submit(fn, *args)
        futures = self._futures.setdefault(run_uid, set())
        futures.add(future)
        try:
            return await asyncio.wrap_future(future)
        finally:
            futures.discard(future)
            if not futures:
                self._futures.pop(run_uid, None)

    async def submit(self, task: Task) -> TaskResult:
        return await self.on_worker(task.run_uid, run_task, task)

    async def cancel(self, run_uid: str) -> None:
        for future in list(self._futures.get(run_uid, ())):
            future.cancel()

    async def execute(self, plan, ctx, observer) -> dict[str, Any]:
        backend = _HandleBackend(self, ctx)
        try:
            return await drive(plan, ctx.input, backend, observer)
        finally:
            backend.release()


class _HandleBackend:
    def __init__(self, executor: HandleExecutor, ctx) -> None:
        self.ex = executor
        self.ctx = ctx
        self.run_uid = str(ctx.run.uid)
        self.keys: list[int] = []

    # -- the cluster's side: runs on worker threads --------------------------------------------

    def put(self, value: Any) -> _Ref:
        ref = _Ref(next(_keys))
        self.ex.values[ref.key] = value
        self.keys.append(ref.key)
        return ref

    def get(self, ref: _Ref) -> Any:
        value = self.ex.values[ref.key]
        if isinstance(value, _Chunks):
            merged: list[Any] = []
            for part in value:
                merged.extend(self.get(part))
            return merged
        return value

    def task(self, stage, mode: str, **fields: Any) -> Task:
        options = stage.options
        return Task(
            run_uid=self.run_uid,
            stage=stage.name,
            target=self.ex.encode_target(stage.target),
            context=self.ex.encode_context(self.ctx),
            mode=mode,
            retries=options.retries,
            retry_delay=options.retry_delay,
            timeout=options.timeout,
            **fields,
        )

    # -- the driver's Backend ------------------------------------------------------------------

    async def call(self, stage, deps: list[_Ref]):
        def work():
            kwargs = self.ctx.input if stage.is_root else {}
            result = run_task(self.task(stage, MODE_CALL, args=tuple(self.get(d) for d in deps), kwargs=kwargs))
            return result, None if result.failures else self.put(result.values[0])

        return await self.ex.on_worker(self.run_uid, work)

    def map_length(self, stage, source: _Ref):
        value = self.ex.values[source.key]
        if isinstance(value, _Chunks):
            return len(self.get(source)), "list", source
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__") or not hasattr(value, "__len__"):
            return None, type(value).__name__, None
        return len(value), "list", source

    def chunks(self, stage, n: int, items, input_key: str | None, rest: list[_Ref]):
        kwargs = self.ctx.input if stage.is_root else {}
        if input_key:
            kwargs = {k: v for k, v in kwargs.items() if k != input_key}
        size = self.ex.chunk_size(n, stage)
        return [(lo, (items, lo, hi, rest, kwargs)) for lo, hi in chunk_bounds(n, size)]

    async def run_chunk(self, stage, work, start: int):
        source, lo, hi, rest, kwargs = work

        def on_worker():
            values = source if isinstance(source, list) else self.get(source)
            chunk = list(values[lo:hi]) if isinstance(values, (list, tuple)) else list(values)[lo:hi]
            args = tuple(self.get(r) for r in rest)
            result = run_task(self.task(stage, MODE_MAP, items=chunk, start=lo, args=args, kwargs=kwargs))
            failed = {f.index - lo for f in result.failures}
            return result, self.put([v for j, v in enumerate(result.values) if j not in failed])

        return await self.ex.on_worker(self.run_uid, on_worker)

    def map_output(self, stage, parts) -> _Ref:
        return self.put(_Chunks(ref for _, ref in parts))

    async def results(self, plan, outputs: dict[str, _Ref]) -> dict[str, Any]:
        return {name: self.get(outputs[name]) for name in plan.sinks}

    async def abort(self) -> None:
        await self.ex.cancel(self.run_uid)

    def release(self) -> None:
        for key in self.keys:
            self.ex.values.pop(key, None)


@hookimpl
def flowdapt_register_executors(register):
    def factory(options: HandleExecutorOptions, settings=None) -> HandleExecutor:
        return HandleExecutor(options.workers)

    register("handles", factory, HandleExecutorOptions)
