"""The Dask executor: a workflow runs as a graph of Dask futures whose outputs stay on the workers.

Starts a ``LocalCluster`` by default, or connects to a scheduler (``address: tcp://host:8786``).
Each stage is a task (a map stage: one task per chunk of items) of
:func:`flowdapt.engine.cluster.remote_stage`, which runs the shared per-task path on the worker;
dependency outputs travel as futures. Every key carries the run's uid, so concurrent runs of one
workflow never collide, and every stage of the DAG runs (not only the last one's ancestors).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowdapt.engine.cluster import (
    ClusterExecutor,
    Launched,
    RemoteCall,
    RemoteOutput,
    RemoteStatus,
    missing_resources,
    parse_bytes,
    remote_stage,
    split_items,
)
from flowdapt.engine.worker import Failure
from flowdapt.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Seconds a snapshot of the scheduler's workers is reused (resource checks, chunk sizing, /status).
WORKERS_TTL = 5.0
#: A run context up to this size travels inside each task; a larger one is scattered to every worker once.
INLINE_CONTEXT_BYTES = 64 * 1024


class DaskExecutorOptions(BaseModel):
    """``executor.options`` for ``executor.backend: dask``."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None, description="scheduler to connect to, e.g. 'tcp://host:8786'; empty starts a LocalCluster"
    )
    # -- a LocalCluster -----------------------------------------------------------------------
    workers: int | None = Field(default=None, ge=1, description="worker processes (default: CPUs / threads)")
    threads_per_worker: int = Field(default=1, ge=1)
    processes: bool = Field(default=True, description="workers are processes (true) or threads of this process")
    memory_limit: str | int | None = Field(default="auto", description="memory limit per worker, e.g. '4GB'")
    resources: dict[str, float] = Field(
        default_factory=dict, description="resources each local worker declares (CPU is declared for you)"
    )
    gpus: int | None = Field(default=None, ge=0, description="GPUs each local worker declares")
    dashboard_address: str | None = Field(
        default="127.0.0.1:0", description="where the dashboard listens (needs bokeh); empty: no dashboard"
    )
    scheduler_port: int = Field(default=0, ge=0, description="scheduler port of a LocalCluster (0: any free)")
    allowed_failures: int = Field(
        default=0,
        ge=0,
        description="times a LocalCluster reruns a task whose worker died before failing it (the driver then "
        "retries it within the stage's retries)",
    )
    # -- worker environment -------------------------------------------------------------------
    env_vars: dict[str, str] = Field(default_factory=dict, description="environment variables of workers")
    pip: list[str] = Field(default_factory=list, description="pip packages installed on every worker")
    ship_user_modules: bool = Field(
        default=True, description="upload <app_dir>/user_modules to the workers of a scheduler given by address"
    )
    driver_sys_path: bool = Field(
        default=True, description="add the driver's own (non site-packages) sys.path entries to workers' sys.path"
    )
    # -- scheduling ---------------------------------------------------------------------------
    wait_for_resources: bool = Field(
        default=False, description="queue tasks whose resources no worker has (adaptive scaling) instead of failing"
    )
    chunks_per_worker: int = Field(default=4, ge=1, description="map chunks per worker thread")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to reach a scheduler before failing")
    # Accepted for configs written for the original DaskExecutor.
    cluster_address: str | None = None
    cpus: int | Literal["auto"] | None = None
    threads: int | Literal["auto"] | None = None
    memory: str | int | None = None
    upload_plugins: bool | None = None

    @model_validator(mode="after")
    def _compat(self) -> DaskExecutorOptions:
        if self.cluster_address and not self.address:
            self.address = self.cluster_address
        if isinstance(self.cpus, int) and self.workers is None:
            self.workers = self.cpus
        if isinstance(self.threads, int) and "threads_per_worker" not in self.model_fields_set:
            self.threads_per_worker = self.threads
        if self.memory is not None and "memory_limit" not in self.model_fields_set:
            self.memory_limit = self.memory
        if self.address == "":
            self.address = None
        return self


def _worker_sys_path() -> list[str]:
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep: list[str] = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if "site-packages" in real or "dist-packages" in real or any(real.startswith(p + os.sep) for p in prefixes):
            continue
        if real not in keep:
            keep.append(real)
    return keep


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class FlowdaptWorkerPlugin(_WorkerPluginBase):
    """Prepares every worker of the cluster (also ones that join later) for this driver's runs:
    environment, sys.path, settings and the ``flowdapt_worker_setup`` hook."""

    idempotent = False

    def __init__(self, paths: list[str], settings_dump: dict[str, Any] | None, env_vars: dict[str, str]):
        self.paths = paths
        self.settings_dump = settings_dump
        self.env_vars = env_vars

    def setup(self, worker=None) -> None:
        os.environ.update(self.env_vars)
        for path in reversed(self.paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        if self.settings_dump is None:
            return
        from flowdapt.settings import Settings, set_settings

        settings = Settings.model_validate(self.settings_dump)
        set_settings(settings)
        try:
            from flowdapt.plugins import get_plugin_system

            try:
                system = get_plugin_system(settings, quiet=True)
            except TypeError:  # an older core without ``quiet``
                system = get_plugin_system(settings)
            system.hook.flowdapt_worker_setup(executor="dask", settings=settings)
        except Exception as exc:  # a plugin's setup failing must not stop the worker
            print(f"flowdapt: worker setup hook failed: {exc}", file=sys.stderr)


def _take(pair, index: int):
    return pair[index]


class DaskExecutor(ClusterExecutor):
    name = "dask"
    context_as_handle = True

    def __init__(self, options: DaskExecutorOptions | None = None, settings=None):
        super().__init__()
        self.options = options or DaskExecutorOptions()
        self.settings = settings
        self.wait_for_resources = self.options.wait_for_resources
        self.chunks_per_worker = self.options.chunks_per_worker
        self.client = None
        self.cluster = None
        self._io = cf.ThreadPoolExecutor(4, thread_name_prefix="flowdapt-dask-io")
        self._workers_info: dict[str, dict[str, Any]] = {}
        self._workers_at = 0.0
        self._info_lock = threading.Lock()
        self._contexts: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def _settings(self):
        if self.settings is None:
            from flowdapt.settings import get_settings

            self.settings = get_settings()
        return self.settings

    async def start(self) -> None:
        if self.running:
            return
        if self._io._shutdown:  # restarted after stop()
            self._io = cf.ThreadPoolExecutor(4, thread_name_prefix="flowdapt-dask-io")
        await asyncio.get_running_loop().run_in_executor(self._io, self._connect)
        await super().start()

    async def stop(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None

        def close() -> None:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()

        if client is not None or cluster is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, close)
        _set_active_client(None, client)
        self._workers_info = {}
        self._io.shutdown(wait=False)
        await super().stop()

    def _connect(self) -> None:
        from distributed import Client, LocalCluster

        opts = self.options
        if opts.address:
            try:
                client = Client(opts.address, timeout=opts.connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConfigurationError(
                    f"cannot reach the Dask scheduler at {opts.address} within {opts.connect_timeout:g}s ({exc}). "
                    "Start one with `dask scheduler` (and `dask worker <address>`), fix executor.options.address, "
                    "or leave it empty to start a LocalCluster"
                ) from None
            cluster = None
        else:
            threads = opts.threads_per_worker
            n_workers = opts.workers or max(1, (os.cpu_count() or 1) // threads)
            resources = {"CPU": float(threads), **opts.resources}
            if opts.gpus:
                resources["GPU"] = float(opts.gpus)
            kwargs: dict[str, Any] = {
                "n_workers": n_workers,
                "threads_per_worker": threads,
                "processes": opts.processes,
                "dashboard_address": opts.dashboard_address,
                "scheduler_port": opts.scheduler_port,
                "resources": resources,
                "scheduler_kwargs": {"allowed_failures": opts.allowed_failures},
                "silence_logs": logging.WARNING,
            }
            if opts.memory_limit is not None:
                kwargs["memory_limit"] = opts.memory_limit if opts.memory_limit == "auto" else parse_bytes(opts.memory_limit)
            if opts.processes and opts.env_vars:
                kwargs["env"] = dict(opts.env_vars)
            if not opts.dashboard_address:
                kwargs["dashboard_address"] = None
                kwargs["scheduler_kwargs"]["dashboard"] = False
            try:
                cluster = LocalCluster(**kwargs)
            except Exception as exc:
                raise ConfigurationError(f"Dask LocalCluster failed to start: {type(exc).__name__}: {exc}") from None
            client = Client(cluster, set_as_default=False)
        try:
            self._prepare_workers(client)
        except Exception:
            client.close()
            if cluster is not None:
                cluster.close()
            raise
        self.client, self.cluster = client, cluster
        _set_active_client(client)

    def _prepare_workers(self, client) -> None:
        opts = self.options
        settings = self._settings()
        dump = settings.model_dump(mode="json")
        paths = _worker_sys_path() if opts.driver_sys_path else []
        plugin = FlowdaptWorkerPlugin(paths, dump, dict(opts.env_vars))
        digest = hashlib.sha1(repr((paths, sorted(opts.env_vars.items()), str(dump))).encode()).hexdigest()[:12]
        if opts.pip:
            from distributed.diagnostics.plugin import PipInstall

            client.register_plugin(PipInstall(packages=list(opts.pip)), name="flowdapt-pip")
        if opts.address and opts.ship_user_modules:
            user_modules = Path(settings.user_modules_dir)
            if user_modules.is_dir() and any(p.name != "__init__.py" for p in user_modules.glob("*.py")):
                from distributed.diagnostics.plugin import UploadDirectory

                client.register_plugin(UploadDirectory(str(user_modules), update_path=True), name="flowdapt-user-modules")
        client.register_plugin(plugin, name=f"flowdapt-{digest}")

    # -- cluster facts -----------------------------------------------------------------------

    def workers_info(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if self._workers_info and now - self._workers_at < WORKERS_TTL:
            return self._workers_info
        with self._info_lock:
            if not self._workers_info or time.monotonic() - self._workers_at >= WORKERS_TTL:
                client = self.client
                self._workers_info = dict(client.scheduler_info(n_workers=-1)["workers"]) if client else {}
                self._workers_at = time.monotonic()
        return self._workers_info

    @property
    def workers(self) -> int:
        if not self.running or self.client is None:
            return 1
        return max(1, sum(int(w.get("nthreads", 1)) for w in self.workers_info().values()))

    def _nodes(self) -> list[dict[str, float]]:
        nodes = []
        for w in self.workers_info().values():
            node = {k: float(v) for k, v in (w.get("resources") or {}).items()}
            node.setdefault("CPU", float(w.get("nthreads", 1)))
            node.setdefault("memory", float(w.get("memory_limit") or 0) or float("inf"))
            nodes.append(node)
        return nodes

    def environment_info(self) -> dict[str, Any]:
        import dask
        import distributed

        info: dict[str, Any] = {
            "executor": self.name,
            "running": self.running,
            "dask_version": dask.__version__,
            "distributed_version": distributed.__version__,
        }
        client = self.client
        if not self.running or client is None:
            return info
        workers = self.workers_info()
        hosts = {w.get("host") for w in workers.values()}
        services = client.scheduler_info(n_workers=0).get("services", {})
        info.update(
            address=client.scheduler.address,
            nodes=len(hosts),
            workers=len(workers),
            threads=sum(int(w.get("nthreads", 1)) for w in workers.values()),
            cpus=sum(int(w.get("nthreads", 1)) for w in workers.values()),
            memory=int(sum(float(w.get("memory_limit") or 0) for w in workers.values())),
            dashboard_url=client.dashboard_link if "dashboard" in services else None,
        )
        return info

    def _dask_resources(self, wanted: dict[str, float]) -> dict[str, float] | None:
        """Stage resources as Dask worker resources. CPU and memory go to Dask only when the workers
        declare them; otherwise they were checked against threads and memory limits."""
        if not wanted:
            return None
        declared: set[str] = set()
        for w in self.workers_info().values():
            declared.update((w.get("resources") or {}).keys())
        out = {k: v for k, v in wanted.items() if k not in ("CPU", "memory") or k in declared}
        return out or None

    def _resource_problem(self, stage: str, wanted: dict[str, float]) -> str | None:
        return missing_resources(
            stage,
            wanted,
            self._nodes(),
            hint=". Start workers that declare it (`dask worker ... --resources 'GPU=1'`), or set executor option "
            "wait_for_resources: true to queue the stage until such a worker joins",
            unit="worker",
        )

    # -- primitives --------------------------------------------------------------------------

    def _put_context(self, run_uid: str, blob: bytes) -> Any:
        if len(blob) <= INLINE_CONTEXT_BYTES:
            # Small: cheaper inside each task than a scatter round trip (decoded once per worker).
            return blob
        # Replicated on every worker once, so tasks do not crowd the worker that holds it.
        future = self.client.scatter(blob, broadcast=True, hash=False)
        self._contexts[run_uid] = future
        return future

    def _release_context(self, run_uid: str) -> None:
        self._contexts.pop(run_uid, None)

    def _status(self, future) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def fetch() -> None:
            try:
                value = future.result()
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting driver
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, value, None)

        def on_done(_future) -> None:
            try:
                self._io.submit(fetch)
            except RuntimeError:  # the executor stopped
                loop.call_soon_threadsafe(_settle, done, None, RuntimeError("the Dask executor stopped"))

        future.add_done_callback(on_done)
        return done

    def _launch(self, call: RemoteCall, handles, *, stage, key: str, resources: dict[str, float]) -> Launched:
        client = self.client
        pair = client.submit(
            remote_stage, call, *handles, key=key, resources=self._dask_resources(resources), pure=False, retries=0
        )
        status = client.submit(_take, pair, 0, key=f"{key}-status", pure=False)
        return Launched(self._status(status), pair, True, [pair, status])

    def _split(self, source: RemoteOutput, bounds, *, stage, key: str) -> list[Any]:
        client = self.client
        parts = client.submit(split_items, bounds, source.group, *source.handles, key=key, pure=False)
        return [client.submit(_take, parts, i, key=f"{key}-{i}", pure=False) for i in range(len(bounds))]

    async def _fetch(self, handles: list[Any]) -> list[Any]:
        client = self.client
        return await asyncio.get_running_loop().run_in_executor(self._io, client.gather, list(handles))

    def _cancel(self, handles) -> None:
        client = self.client
        if client is None or not handles:
            return
        try:
            client.cancel(list(handles), force=True)
        except Exception:  # already gone
            pass

    def _retryable(self, exc: BaseException) -> bool:
        from distributed.scheduler import KilledWorker

        return isinstance(exc, KilledWorker)

    def _remote_failure(self, exc: BaseException, index: int) -> Failure:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            return Failure(
                index,
                "WorkerCrashedError",
                f"the Dask worker running this task died (killed or out of memory): {exc}",
                "",
            )
        if type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
            return Failure(index, "RunCancelledError", "the task was cancelled", "")
        return Failure(index, type(exc).__name__, str(exc) or type(exc).__name__, "")


def _settle(future: asyncio.Future, value: RemoteStatus | None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


# -- the client cluster memory uses in the driver ---------------------------------------------

_active_client = None
_active_lock = threading.Lock()


def _set_active_client(client, previous=None) -> None:
    global _active_client
    with _active_lock:
        if client is None:
            if previous is None or _active_client is previous:
                _active_client = None
        else:
            _active_client = client


def active_client():
    """The client of the running Dask executor in this process, if any."""
    return _active_client


__all__ = ["DaskExecutor", "DaskExecutorOptions", "FlowdaptWorkerPlugin", "active_client"]
