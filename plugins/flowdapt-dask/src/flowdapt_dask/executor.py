"""The Dask executor: a workflow runs as a graph of Dask futures whose outputs stay on the workers.

Starts a ``LocalCluster`` by default, or connects to a scheduler (``address: tcp://host:8786``).
Each stage is a task (a map stage: one task per chunk of items) of
:func:`flowdapt.engine.remote.remote_stage`, which runs the shared per-task path on the worker;
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
import uuid
from pathlib import Path
from typing import Any

from flowdapt.engine.cluster import ClusterExecutor, Launched, RemoteOutput
from flowdapt.engine.executor import node_record
from flowdapt.engine.remote import RemoteCall, RemoteStatus, remote_stage, split_items
from flowdapt.engine.shipping import plugin_package_dirs, unpack_packages, worker_sys_path, zip_packages
from flowdapt.engine.stage_resources import missing_resources, parse_bytes
from flowdapt.engine.worker import Failure
from flowdapt.errors import ConfigurationError
from flowdapt_dask.options import DaskExecutorOptions

log = logging.getLogger(__name__)

#: Seconds a snapshot of the scheduler's workers is reused (resource checks, chunk sizing, /status).
WORKERS_TTL = 5.0
#: A run context up to this size travels inside each task; a larger one is scattered to every worker once.
INLINE_CONTEXT_BYTES = 64 * 1024
#: The scheduler event topic on which a running task tells the driver that it began and how far
#: its chunk got (flowdapt.engine.live); log records still come with the task's result, so the
#: scheduler's event log holds only these small messages.
LIVE_TOPIC = "flowdapt-live"


def _send_live_through(worker) -> None:
    """In a worker process: a running task's news goes to the driver as a scheduler event."""
    try:
        from flowdapt.engine.live import set_live_transport
    except ImportError:  # pragma: no cover - an older core on this worker
        return
    import pickle

    def send(run_uid: str, stage: str, message: tuple) -> None:
        worker.log_event(LIVE_TOPIC, pickle.dumps((run_uid, stage, message), protocol=pickle.HIGHEST_PROTOCOL))

    set_live_transport(send, records=False)


def _on_live(event) -> None:
    """On the driver (the client's thread): one worker message, handed to its run's loop."""
    import pickle

    from flowdapt.engine.live import deliver_live

    try:
        deliver_live(*pickle.loads(event[1]))
    except Exception:  # noqa: BLE001 - a bad message must not stop the client
        log.debug("could not read a running task's news", exc_info=True)


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover
    _WorkerPluginBase = object


class FlowdaptWorkerPlugin(_WorkerPluginBase):
    """Prepares every worker of the cluster (also ones that join later) for this driver's runs:
    environment, sys.path, settings, shipped plugin packages and the ``flowdapt_worker_setup`` hook.

    Registered again under the same name by :meth:`DaskExecutor.reload_code` with a higher
    ``generation``: a worker that ran an older generation then forgets the modules of the plugin
    distributions that changed since and ``user_modules`` (``stale``: generation -> top-level
    packages) and the stage targets it resolved, so its next tasks import the code afresh. A worker
    that joins later runs only the latest generation, on a fresh interpreter.

    ``lineage`` names the executor that registered it: a worker of a long-lived cluster that
    set up for another executor before (an earlier server, a restarted one) forgets that one's
    ``user_modules`` and resolved targets, whatever the generations, so a restarted server's runs
    never see the ``user_modules`` its previous process shipped.
    """

    idempotent = False

    def __init__(
        self,
        paths: list[str],
        settings_dump: dict[str, Any] | None,
        env_vars: dict[str, str],
        generation: int = 0,
        stale: dict[int, list[str]] | None = None,
        packages: bytes | None = None,
        lineage: str | None = None,
    ):
        self.paths = paths
        self.settings_dump = settings_dump
        self.env_vars = env_vars
        self.generation = generation
        self.stale = dict(stale or {})
        #: A zip of plugin packages (``ship_plugins``), extracted on the worker and put on sys.path.
        self.packages = packages
        self.lineage = lineage
        self.driver_pid = os.getpid()

    def setup(self, worker=None) -> None:
        state = _worker_state(worker)
        os.environ.update(self.env_vars)
        if worker is not None and os.getpid() != self.driver_pid:
            # Worker threads in the driver's own process reach the run's sink directly.
            _send_live_through(worker)
        previous = state.get("generation")
        # Threads of the driver's own process share its modules, which the driver reloaded itself.
        if previous is not None and os.getpid() != self.driver_pid:
            if state.get("lineage") != self.lineage:
                self._forget(["user_modules"])
            elif self.generation > previous:
                self._forget(sorted({pkg for gen, pkgs in self.stale.items() if gen > previous for pkg in pkgs}))
        state["generation"], state["lineage"] = self.generation, self.lineage
        for path in state.get("paths", []):
            if path not in self.paths and path in sys.path:
                sys.path.remove(path)  # e.g. an editable plugin that was uninstalled
        for path in reversed(self.paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        state["paths"] = list(self.paths)
        self._install_packages(worker, state)
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

    def _forget(self, stale: list[str]) -> None:
        import importlib

        try:
            from flowdapt.reloading import forget_modules

            forget_modules(stale)
        except ImportError:  # an older core on this worker: drop the modules by hand
            for mod in list(sys.modules):
                if mod.split(".")[0] in stale:
                    sys.modules.pop(mod, None)
        try:
            from flowdapt.engine.worker import clear_caches

            clear_caches()
        except ImportError:  # pragma: no cover - an older core
            pass
        try:  # new .pth files (editable installs) in the shared environment
            from flowdapt.plugin_installer import refresh_site_paths

            refresh_site_paths()
        except ImportError:  # pragma: no cover - an older core
            pass
        importlib.invalidate_caches()
        try:  # rebuilt from the entry points installed now, on the next get_plugin_system()
            from flowdapt.plugins import set_plugin_system

            set_plugin_system(None)
        except ImportError:  # pragma: no cover
            pass

    def _install_packages(self, worker, state: dict[str, Any]) -> None:
        old = state.get("packages_dir")
        new = None
        if self.packages:
            digest = hashlib.sha1(self.packages).hexdigest()[:12]
            base = getattr(worker, "local_directory", None) or os.path.join(
                os.environ.get("TMPDIR", "/tmp"), f"flowdapt-dask-{os.getpid()}"
            )
            new = os.path.join(base, f"flowdapt-plugins-{digest}")
            os.makedirs(base, exist_ok=True)
            packages = self.packages
            unpack_packages(new, lambda: packages)
        if old and old != new:
            while old in sys.path:
                sys.path.remove(old)
        state["packages_dir"] = new


def _worker_state(worker) -> dict[str, Any]:
    """What a worker remembers between setups of :class:`FlowdaptWorkerPlugin` (kept on the worker)."""
    holder = worker if worker is not None else sys.modules[__name__]
    state = getattr(holder, "_flowdapt_state", None)
    if state is None:
        state = {}
        try:
            holder._flowdapt_state = state
        except AttributeError:  # pragma: no cover - a worker object with __slots__
            state = _fallback_state
    return state


_fallback_state: dict[str, Any] = {}


def plugin_code_snapshot() -> dict[str, tuple[str, list[str]]]:
    """Installed plugin distributions -> (a marker that changes with every install, their packages)."""
    import importlib.metadata as md

    from flowdapt.plugin_installer import plugin_distributions
    from flowdapt.reloading import distribution_packages

    snapshot: dict[str, tuple[str, list[str]]] = {}
    for name in plugin_distributions():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        record = dist.read_text("RECORD") or ""
        where = getattr(dist, "_path", None)
        try:
            stamp = os.stat(os.path.join(str(where), "RECORD")).st_mtime_ns if where else 0
        except OSError:
            stamp = 0
        marker = f"{dist.version}:{stamp}:{hashlib.sha1(record.encode()).hexdigest()}"
        snapshot[name] = (marker, distribution_packages(name))
    return snapshot


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
        #: Bumped by reload_code; see FlowdaptWorkerPlugin.
        self.code_generation = 0
        self._stale: dict[int, list[str]] = {}
        self._code_snapshot: dict[str, tuple[str, list[str]]] = {}
        self._worker_plugin_name: str | None = None
        #: This executor's own, so workers tell its generations from another executor's.
        self._lineage = uuid.uuid4().hex

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
        try:
            client.subscribe_topic(LIVE_TOPIC, _on_live)
            # Waiting stages stay pending until a worker says their task began.
            self.reports_start = True
        except Exception as exc:  # noqa: BLE001 - without it stages count as running once submitted
            log.warning("Dask: no live task progress (%s); stages count as running once submitted", exc)
            self.reports_start = False
        self.client, self.cluster = client, cluster
        _set_active_client(client)

    def _prepare_workers(self, client) -> None:
        opts = self.options
        settings = self._settings()
        dump = settings.model_dump(mode="json")
        paths = worker_sys_path() if opts.driver_sys_path else []
        self._code_snapshot = plugin_code_snapshot()
        plugin = self._worker_plugin(paths, dump)
        digest = hashlib.sha1(repr((paths, sorted(opts.env_vars.items()), str(dump))).encode()).hexdigest()[:12]
        self._worker_plugin_name = f"flowdapt-{digest}"
        if opts.pip:
            from distributed.diagnostics.plugin import PipInstall

            client.register_plugin(PipInstall(packages=list(opts.pip)), name="flowdapt-pip")
        client.register_plugin(plugin, name=self._worker_plugin_name)

    def _worker_plugin(self, paths: list[str], dump: dict[str, Any]) -> FlowdaptWorkerPlugin:
        shipped = self._plugin_packages() if self.options.ship_plugins else []
        shipped += self._shipped_user_modules()
        packages = zip_packages(shipped) if shipped else None
        return FlowdaptWorkerPlugin(
            paths, dump, dict(self.options.env_vars), self.code_generation, dict(self._stale), packages, self._lineage
        )

    def _shipped_user_modules(self) -> list[str]:
        """``<app_dir>/user_modules`` when it goes to the workers of a scheduler given by address
        (``ship_user_modules``), in the worker plugin's package zip: each worker extracts it into
        a directory of its own per content, in front of sys.path. Not ``UploadDirectory``, which
        extracts into the nanny's directory (``/tmp/dask-scratch-space`` by default), shared by
        every Dask worker of the machine and put on their sys.path, and rewrites it in place."""
        if not (self.options.address and self.options.ship_user_modules):
            return []
        user_modules = Path(self._settings().user_modules_dir)
        if user_modules.is_dir() and any(p.name != "__init__.py" for p in user_modules.glob("*.py")):
            return [str(user_modules)]
        return []

    def _plugin_packages(self) -> list[str]:
        """Directories of the loaded plugins' top-level packages (not the core's, not this one's)."""
        from flowdapt.plugins import get_plugin_system

        skip = {"flowdapt", __name__.split(".")[0]}
        return plugin_package_dirs(get_plugin_system(self._settings()), skip, "Dask")

    async def reload_code(self) -> None:
        """Installed code or ``user_modules`` changed: the worker plugin is registered again with a
        new code generation.

        Every worker (and every worker that joins later) runs it: workers that imported older code
        forget ``user_modules`` and the packages of the plugin distributions that changed
        (installed, upgraded or removed since the last generation) and their resolved stage
        targets, pick up new ``.pth`` paths and rebuild their plugin system, so new tasks import
        the code as it is now. ``user_modules`` is forgotten on every reload because the caller
        does not say what changed (an edited ``user_modules`` file, ``RunService.refresh_code``, or
        a plugin install) and importing it again costs one import per worker. Workers keep running
        (cluster memory on them survives); tasks already running finish on the code they started
        with. With ``ship_plugins`` the plugins' packages are uploaded again, and with
        ``ship_user_modules`` (a scheduler by address) ``user_modules`` is, in the same plugin.
        """
        await super().reload_code()
        if not self.running or self.client is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._io, self._register_generation)

    def _register_generation(self) -> None:
        snapshot = plugin_code_snapshot()
        before = self._code_snapshot
        stale: set[str] = set()
        for name in set(before) | set(snapshot):
            if before.get(name, ("", []))[0] != snapshot.get(name, ("", []))[0]:
                stale.update(before.get(name, ("", []))[1])
                stale.update(snapshot.get(name, ("", []))[1])
        stale -= {"flowdapt", __name__.split(".")[0]}
        stale.add("user_modules")  # see reload_code: an edit there changes no distribution
        self.code_generation += 1
        self._stale[self.code_generation] = sorted(stale)
        self._code_snapshot = snapshot
        settings = self._settings()
        paths = worker_sys_path() if self.options.driver_sys_path else []
        plugin = self._worker_plugin(paths, settings.model_dump(mode="json"))
        self.client.register_plugin(plugin, name=self._worker_plugin_name)
        log.info("Dask workers reloaded code generation %d (changed packages: %s)", self.code_generation, ", ".join(sorted(stale)) or "none")

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
        services = client.scheduler_info(n_workers=0).get("services", {})
        info.update(
            address=client.scheduler.address,
            nodes=_host_nodes(workers),
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


def _host_nodes(workers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One node record per machine running workers, with their threads and memory summed."""
    by_host: dict[str, dict[str, float]] = {}
    for w in workers.values():
        host = str(w.get("host") or "unknown")
        totals = by_host.setdefault(host, {"CPU": 0.0, "memory": 0.0})
        totals["CPU"] += float(w.get("nthreads", 1))
        totals["memory"] += float(w.get("memory_limit") or 0)
        for name, amount in (w.get("resources") or {}).items():
            if name not in ("CPU", "memory"):
                totals[name] = totals.get(name, 0.0) + float(amount)
    return [node_record(host, host, totals) for host, totals in sorted(by_host.items())]


__all__ = ["DaskExecutor", "DaskExecutorOptions", "FlowdaptWorkerPlugin", "active_client", "plugin_code_snapshot", "zip_packages"]
