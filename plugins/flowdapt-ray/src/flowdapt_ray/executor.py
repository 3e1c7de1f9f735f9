"""The Ray executor: a workflow runs as a DAG of Ray tasks whose outputs stay in Ray's object store.

Starts a local Ray instance by default, or connects to a cluster (``address``). Each stage is a
task (a map stage: one task per chunk of items) of :func:`flowdapt.engine.remote.remote_stage`,
which runs the shared per-task path on the worker; dependency outputs travel as object refs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flowdapt.engine.cluster import ClusterExecutor, Launched, RemoteOutput
from flowdapt.engine.plan import PlannedStage
from flowdapt.engine.remote import RemoteCall, remote_stage, split_items
from flowdapt.engine.shipping import plugin_package_dirs, worker_sys_path
from flowdapt.engine.stage_resources import InsufficientResourcesError, missing_resources, parse_bytes
from flowdapt.engine.worker import Failure
from flowdapt.errors import ConfigurationError
from flowdapt_ray.options import RayExecutorOptions

log = logging.getLogger(__name__)

#: Seconds a snapshot of the cluster's nodes is reused (resource checks, chunk sizing, /status).
NODES_TTL = 5.0
#: Set in workers' environment to the executor's code generation (see :meth:`RayExecutor.reload_code`).
CODE_GENERATION_VAR = "FLOWDAPT_CODE_GENERATION"


def _make_setup_hook(
    paths: list[str], settings_dump: dict[str, Any] | None, executor: str = "ray", live_inbox: str | None = None
):
    """The ``worker_process_setup_hook``: runs once in every Ray worker process of this driver.

    With ``live_inbox`` (the name of the driver's :func:`_live_inbox_class` actor) a running task's
    news (flowdapt.engine.live: it began, its chunk's progress) goes there; log records still come
    with the task's result. Written inline, so the hook needs only flowdapt on the workers."""

    def flowdapt_worker_setup() -> None:
        if live_inbox:
            try:
                import pickle

                import ray

                from flowdapt.engine.live import set_live_transport

                inbox: list[Any] = []

                def send(run_uid: str, stage: str, message: tuple) -> None:
                    if not inbox:
                        inbox.append(ray.get_actor(live_inbox))
                    inbox[0].push.remote(pickle.dumps((run_uid, stage, message), protocol=pickle.HIGHEST_PROTOCOL))

                set_live_transport(send, records=False)
            except ImportError:  # an older core on this worker: progress per chunk only
                pass
        for path in reversed(paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        if settings_dump is None:
            return
        from flowdapt.settings import Settings, set_settings

        settings = Settings.model_validate(settings_dump)
        set_settings(settings)
        try:
            from flowdapt.plugins import get_plugin_system

            try:
                system = get_plugin_system(settings, quiet=True)
            except TypeError:  # an older core without ``quiet``
                system = get_plugin_system(settings)
            system.hook.flowdapt_worker_setup(executor=executor, settings=settings)
        except Exception as exc:  # a plugin's setup failing must not stop the worker
            print(f"flowdapt: worker setup hook failed: {exc}", file=sys.stderr)

    return flowdapt_worker_setup


def enable_token_auth_if_available() -> None:
    """Ray clusters started with ``ray start`` (2.5x+) require the token in ``~/.ray/auth_token``
    (or ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``); a connecting driver only sends it when
    ``RAY_AUTH_MODE=token``, which Ray does not always infer, and reads it when ``ray`` is first
    imported: set it then (or in the environment) when a token is there."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        os.environ["RAY_AUTH_MODE"] = "token"


def check_reachable(address: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when nothing listens at ``address`` (host:port or ray://)."""
    target = address[len("ray://") :] if address.startswith("ray://") else address
    parsed = urlparse(f"//{target}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise ConfigurationError(
            f"executor.options.address {address!r} is not 'auto', 'host:port' or 'ray://host:port'"
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"cannot reach the Ray cluster at {address} ({exc}). Start one with "
            f"`ray start --head --port={port}`, fix executor.options.address, or leave it empty "
            "to start a local Ray instance"
        ) from None


class _LazySetup:
    """Worker setup shipped with each task when this driver shares a Ray connection it did not
    open (so its runtime_env setup hook is not installed): run once per worker process."""

    __slots__ = ("key", "refs")

    def __init__(self, key: str, ref):
        self.key = key
        self.refs = [ref]

    def __call__(self) -> None:
        import ray

        ray.get(self.refs[0])()

    def __getstate__(self):
        return (self.key, self.refs)

    def __setstate__(self, state):
        self.key, self.refs = state


class _ShippedCode:
    """The code of a code generation (a zip of package directories in the object store), put
    first on ``sys.path`` once per worker process before its first task. A task's runtime_env
    may not name local directories (Ray uploads local ``py_modules`` only for the job's
    runtime_env, through ``ray.init``), so a reload ships its code this way."""

    __slots__ = ("key", "refs")

    def __init__(self, key: str, ref):
        self.key = key
        self.refs = [ref]

    def __call__(self) -> None:
        import tempfile

        import ray

        from flowdapt.engine.shipping import unpack_packages

        directory = os.path.join(tempfile.gettempdir(), f"flowdapt-ray-code-{self.key}")
        unpack_packages(directory, lambda: ray.get(self.refs[0]))

    def __getstate__(self):
        return (self.key, self.refs)

    def __setstate__(self, state):
        self.key, self.refs = state


class _Setups:
    """Several once-per-worker setups carried by one task (remote.RemoteCall.setup takes one)."""

    __slots__ = ("key", "parts")

    def __init__(self, parts: list[Any]):
        self.parts = parts
        self.key = "+".join(part.key for part in parts)

    def __call__(self) -> None:
        for part in self.parts:
            part()

    def __getstate__(self):
        return (self.key, self.parts)

    def __setstate__(self, state):
        self.key, self.parts = state


def _warm() -> int:
    """Imports what every task needs, so the first run does not pay for it in each worker."""
    import flowdapt.engine.remote  # noqa: F401
    import flowdapt.engine.worker  # noqa: F401

    return os.getpid()


def _live_inbox_class():
    """An actor that holds running tasks' news until the driver takes it (defined here so that
    it travels by value: the workers need only flowdapt, not this plugin)."""

    class FlowdaptLiveInbox:
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        def push(self, message: bytes) -> None:
            self.messages.append(message)
            if len(self.messages) > 100_000:  # a driver that stopped taking: keep the newest
                del self.messages[:50_000]

        def take(self) -> list[bytes]:
            taken, self.messages = self.messages, []
            return taken

    return FlowdaptLiveInbox


#: Seconds between the driver's takes from its live inbox.
LIVE_POLL_SECONDS = 0.2
#: Seconds start waits for the live inbox actor, and one take from it at most.
LIVE_START_TIMEOUT = 60.0
LIVE_TAKE_TIMEOUT = 10.0


def _take_live(inbox, stop: threading.Event) -> None:
    """The driver's thread: hand what the inbox holds to the runs' loops (flowdapt.engine.live)."""
    import pickle

    import ray

    from flowdapt.engine.live import deliver_live

    while not stop.wait(LIVE_POLL_SECONDS):
        try:
            messages = ray.get(inbox.take.remote(), timeout=LIVE_TAKE_TIMEOUT)
        except Exception:  # noqa: BLE001 - the cluster went away: progress per chunk from now on
            if stop.is_set():
                return
            continue
        for blob in messages:
            try:
                deliver_live(*pickle.loads(blob))
            except Exception:  # noqa: BLE001 - a bad message must not stop the others
                log.debug("could not read a running task's news", exc_info=True)


class _ContextLoader:
    """``Task.context`` on Ray: the run's context stays in the object store and a worker fetches it
    only the first time it runs a task of that run (the ref is nested, so Ray does not resolve it)."""

    __slots__ = ("refs",)

    def __init__(self, ref):
        self.refs = [ref]

    def __call__(self) -> bytes:
        import ray

        return ray.get(self.refs[0])

    def __getstate__(self):
        return self.refs

    def __setstate__(self, state):
        self.refs = state


_remote_functions: dict[str, Any] = {}

# Ray starts a local instance's processes (GCS, raylet) with a parent-death signal tied to the
# *thread* that called ray.init: if that thread ends, they are killed. So connecting and
# disconnecting happen on one thread that lives as long as this process.
_driver_thread = None
_driver_thread_lock = threading.Lock()


def _ray_thread():
    global _driver_thread
    with _driver_thread_lock:
        if _driver_thread is None:
            import concurrent.futures as cf

            _driver_thread = cf.ThreadPoolExecutor(1, thread_name_prefix="flowdapt-ray-driver")
        return _driver_thread


def _remote(name: str):
    fn = _remote_functions.get(name)
    if fn is None:
        import ray

        fn = ray.remote(remote_stage if name == "stage" else split_items)
        _remote_functions[name] = fn
    return fn


#: How often a local instance is started before giving up. Ray waits a fixed 30 s for its raylet
#: to register with the GCS; on a loaded machine (a busy laptop, a 2-core CI box running other
#: processes) that wait alone can run out, although a second start succeeds.
LOCAL_START_ATTEMPTS = 3


def _init_ray(ray, kwargs: dict[str, Any], *, local: bool):
    """``ray.init``; a local instance that timed out during start-up is stopped and started again."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return ray.init(**kwargs)
        except Exception as exc:
            if not local or "timed out during startup" not in str(exc):
                raise
            if attempt == LOCAL_START_ATTEMPTS:
                raise ConfigurationError(
                    f"the local Ray instance did not start in {LOCAL_START_ATTEMPTS} attempts ({exc}): the machine "
                    "may be overloaded; start a cluster with `ray start --head` and set executor.options.address"
                ) from None
            log.warning(
                "the local Ray instance did not start (%s); stopping what it started and trying again (%d/%d)",
                exc, attempt + 1, LOCAL_START_ATTEMPTS,
            )
            ray.shutdown()


class RayExecutor(ClusterExecutor):
    name = "ray"

    def __init__(self, options: RayExecutorOptions | None = None, settings=None):
        super().__init__()
        self.options = options or RayExecutorOptions()
        self.settings = settings
        self.wait_for_resources = self.options.wait_for_resources
        self.chunks_per_worker = self.options.chunks_per_worker
        self._owns_ray = False
        self._address: str | None = None
        self._dashboard_url: str | None = None
        self._nodes: list[dict[str, Any]] = []
        self._nodes_at = 0.0
        self._nodes_lock = threading.Lock()
        self._contexts: dict[str, Any] = {}
        self._options_cache: dict[tuple, dict[str, Any]] = {}
        self._setup: _LazySetup | None = None
        #: Bumped by reload_code; tasks of generation > 0 carry :meth:`task_runtime_env`.
        self.code_generation = 0
        self._task_env: dict[str, Any] | None = None
        #: The code of the current generation shipped through the object store (reload_code), and
        #: the setup every task carries (that and the shared-connection setup), if any.
        self._code: _ShippedCode | None = None
        self._code_dirs: list[str] = []
        self._task_setup: Any = None
        #: The actor workers send running tasks' news to, and the thread that takes it.
        import uuid

        self._live_name = f"flowdapt-live-{uuid.uuid4().hex[:12]}"
        self._live_inbox = None
        self._live_stop: threading.Event | None = None
        self._live_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_ray_thread(), self._connect)
        if self._code_dirs:  # reloaded before it started: its code goes out now
            await loop.run_in_executor(_ray_thread(), self._ship_code)
        self._compose_setup()
        await loop.run_in_executor(_ray_thread(), self._start_live)
        await super().start()

    def _start_live(self) -> None:
        """The live inbox actor, and the thread that takes from it. Start waits for the actor (a
        worker process of its own, about a second), so the first runs already show waiting
        stages as pending; if it does not come, stages count as running once submitted and
        progress moves per chunk (``reports_start`` stays False)."""
        import ray

        self.reports_start = False
        try:
            inbox = ray.remote(num_cpus=0)(_live_inbox_class()).options(name=self._live_name).remote()
            ray.get(inbox.take.remote(), timeout=LIVE_START_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - e.g. no room for an actor: progress per chunk
            log.warning("Ray: no live task progress (%s); progress moves per chunk", exc)
            return
        stop = threading.Event()
        self._live_inbox, self._live_stop = inbox, stop
        self.reports_start = True
        self._live_thread = threading.Thread(target=_take_live, args=(inbox, stop), name="flowdapt-ray-live", daemon=True)
        self._live_thread.start()

    def _stop_live(self) -> None:
        inbox, stop, thread = self._live_inbox, self._live_stop, self._live_thread
        self._live_inbox = self._live_stop = self._live_thread = None
        self.reports_start = False
        if stop is not None:
            stop.set()
        if thread is not None:
            # Its last take ends before Ray is shut down: a Ray call after that would start a
            # new local Ray instance (Ray initializes itself on first use).
            thread.join(timeout=LIVE_TAKE_TIMEOUT + 5)
        if inbox is not None and not self._owns_ray:  # (an own instance takes it along when it stops)
            import ray

            try:
                ray.kill(inbox)
            except Exception:  # noqa: BLE001 - the cluster is gone already
                pass

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._stop_live)
        if self._owns_ray:
            import ray

            await asyncio.get_running_loop().run_in_executor(_ray_thread(), ray.shutdown)
            self._owns_ray = False
        self._nodes = []
        self._nodes_at = 0.0
        await super().stop()

    def _settings(self):
        if self.settings is None:
            from flowdapt.settings import get_settings

            self.settings = get_settings()
        return self.settings

    def runtime_env(self) -> dict[str, Any]:
        """The runtime_env this executor asks Ray for (workers' env, packages, code, setup hook)."""
        opts = self.options
        env: dict[str, Any] = dict(opts.runtime_env)
        if opts.env_vars:
            env["env_vars"] = {**env.get("env_vars", {}), **opts.env_vars}
        if opts.pip is not None:
            env["pip"] = opts.pip
        if opts.uv is not None:
            env["uv"] = opts.uv
        if opts.conda is not None:
            env["conda"] = opts.conda
        if opts.working_dir:
            env["working_dir"] = opts.working_dir
        modules = self._py_modules()
        if modules:
            env["py_modules"] = modules
        settings = self._settings()
        paths = worker_sys_path() if opts.driver_sys_path else []
        env["worker_process_setup_hook"] = _make_setup_hook(
            paths, settings.model_dump(mode="json"), live_inbox=self._live_name
        )
        return env

    def _py_modules(self) -> list[Any]:
        """Code uploaded to the workers: configured modules, user_modules (a remote cluster) and,
        with ``ship_plugins``, the loaded plugins' packages as they are installed now."""
        opts = self.options
        modules: list[Any] = list(opts.runtime_env.get("py_modules", [])) + list(opts.py_modules)
        if opts.address and opts.ship_user_modules:
            user_modules = Path(self._settings().user_modules_dir)
            if user_modules.is_dir() and any(p.name != "__init__.py" for p in user_modules.glob("*.py")):
                modules.append(str(user_modules))
        if opts.ship_plugins:
            modules.extend(self._plugin_packages())
        return modules

    def task_runtime_env(self) -> dict[str, Any] | None:
        """The runtime_env tasks of the current code generation add to the job's (None before the
        first reload). Ray merges it with the job's runtime_env (env_vars are merged, the setup hook
        is inherited) and runs the tasks only in workers started with exactly this environment,
        so a new generation gets new worker processes, which import the installed code afresh."""
        return self._task_env

    def _plugin_packages(self) -> list[str]:
        from flowdapt.plugins import get_plugin_system

        return plugin_package_dirs(get_plugin_system(self._settings()), {"flowdapt"}, "Ray")

    async def reload_code(self) -> None:
        """Installed code changed: tasks submitted from now on run in new Ray worker processes.

        Ray reuses a worker for any task with the same runtime_env, and a worker keeps the modules
        it imported, so each reload starts a new *code generation*: its tasks carry
        ``env_vars: {FLOWDAPT_CODE_GENERATION: n}``, which Ray only serves from workers started for
        that environment. What is uploaded to remote nodes (``ship_plugins``: the loaded plugins'
        packages, now as installed) is collected again. Tasks already running finish on the code
        they started with; Ray retires the idle workers of older generations.
        """
        await super().reload_code()
        self.code_generation += 1
        env: dict[str, Any] = {
            "env_vars": {
                **self.options.runtime_env.get("env_vars", {}),
                **self.options.env_vars,
                CODE_GENERATION_VAR: str(self.code_generation),
            }
        }
        # Local directories go out as one zip through the object store (_ShippedCode); remote
        # URIs stay in the task's py_modules, which then replaces the job's (it is not merged).
        modules = await asyncio.get_running_loop().run_in_executor(None, self._py_modules)
        self._code_dirs = [m for m in modules if isinstance(m, str) and os.path.isdir(m)]
        remote = [m for m in modules if not (isinstance(m, str) and os.path.isdir(m))]
        if remote:
            env["py_modules"] = remote
        self._task_env = env
        self._code = None
        if self.running:
            if self._code_dirs:
                await asyncio.get_running_loop().run_in_executor(_ray_thread(), self._ship_code)
            self._compose_setup()
        self._options_cache.clear()
        if self.running and self.options.prestart_workers:
            await asyncio.get_running_loop().run_in_executor(_ray_thread(), self._prestart_generation)

    def _ship_code(self) -> None:
        import hashlib

        import ray

        from flowdapt.engine.shipping import zip_packages

        blob = zip_packages(self._code_dirs)
        self._code = _ShippedCode(f"{self.code_generation}-{hashlib.sha1(blob).hexdigest()[:12]}", ray.put(blob))

    def _compose_setup(self) -> None:
        parts = [part for part in (self._setup, self._code) if part is not None]
        self._task_setup = None if not parts else parts[0] if len(parts) == 1 else _Setups(parts)

    def _prestart_generation(self) -> None:
        """Start the new generation's workers in the background, so the next run does not wait."""
        import ray

        cpus = max(1, min(64, int(self._total("CPU") or 1)))
        warm = ray.remote(_warm).options(num_cpus=1, runtime_env=self._task_env)
        for _ in range(cpus):
            warm.remote()  # not waited for: the refs are dropped, the workers stay

    def _connect(self) -> None:
        opts = self.options
        if opts.address:
            enable_token_auth_if_available()  # read by Ray when it is first imported
        import ray

        if ray.is_initialized():
            # Someone (the user, another executor) already connected this process: share it.
            current = ray.get_runtime_context().gcs_address
            wanted = opts.address
            if wanted and wanted != "auto" and not wanted.startswith("ray://") and not _same_address(wanted, current):
                raise ConfigurationError(
                    f"this process is already connected to the Ray cluster at {current}, not {wanted}: "
                    "one process talks to one Ray cluster. Call ray.shutdown() first or use that address"
                )
            self._owns_ray = False
            self._address = current
            self._dashboard_url = _dashboard_url()
            import hashlib

            import cloudpickle

            hook = self.runtime_env()["worker_process_setup_hook"]
            blob = cloudpickle.dumps(hook)
            self._setup = _LazySetup(hashlib.sha1(blob).hexdigest(), ray.put(cloudpickle.loads(blob)))
            return
        kwargs: dict[str, Any] = {
            "namespace": opts.namespace,
            "runtime_env": self.runtime_env(),
            "log_to_driver": opts.log_to_driver,
            "logging_level": opts.logging_level,
        }
        address = opts.address
        if address:
            if address != "auto":
                check_reachable(address, opts.connect_timeout)
            kwargs["address"] = address
        else:
            kwargs["address"] = "local"  # never attach to a cluster found in /tmp/ray by accident
            if isinstance(opts.cpus, int):
                kwargs["num_cpus"] = opts.cpus
            if opts.gpus is not None:
                kwargs["num_gpus"] = opts.gpus
            if opts.memory is not None:
                kwargs["_memory"] = parse_bytes(opts.memory)
            if opts.object_store_memory is not None:
                kwargs["object_store_memory"] = parse_bytes(opts.object_store_memory)
            if opts.resources:
                kwargs["resources"] = dict(opts.resources)
            kwargs["include_dashboard"] = opts.include_dashboard
            kwargs["dashboard_host"] = opts.dashboard_host
            if opts.dashboard_port is not None:
                kwargs["dashboard_port"] = opts.dashboard_port
        try:
            context = _init_ray(ray, kwargs, local=not address)
        except ConnectionError as exc:
            raise ConfigurationError(
                f"cannot connect to a Ray cluster at {address!r}: {exc}. Start one with `ray start --head`, "
                "set executor.options.address to its address, or leave it empty to start a local instance"
            ) from None
        except (ValueError, RuntimeError) as exc:
            raise ConfigurationError(f"Ray failed to start: {exc}") from None
        self._owns_ray = True
        self._setup = None
        self._address = getattr(context, "address_info", {}).get("gcs_address") or address
        self._dashboard_url = _dashboard_url(context)
        if opts.prestart_workers:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
            warm = ray.remote(_warm).options(num_cpus=1)
            ray.get([warm.remote() for _ in range(min(cpus, 64))])

    # -- cluster facts -----------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes (Ray's node records), refreshed every few seconds."""
        now = time.monotonic()
        if self._nodes and now - self._nodes_at < NODES_TTL:
            return self._nodes
        with self._nodes_lock:
            if not self._nodes or time.monotonic() - self._nodes_at >= NODES_TTL:
                import ray

                self._nodes = [n for n in ray.nodes() if n.get("Alive")]
                self._nodes_at = time.monotonic()
        return self._nodes

    def _total(self, resource: str) -> float:
        return sum(n.get("Resources", {}).get(resource, 0.0) for n in self.nodes())

    @property
    def workers(self) -> int:
        if not self.running:
            return 1
        return max(1, int(self._total("CPU")))

    def environment_info(self) -> dict[str, Any]:
        import ray

        info: dict[str, Any] = {"executor": self.name, "running": self.running, "ray_version": ray.__version__}
        if not self.running:
            return info
        nodes = self.nodes()
        info.update(
            address=self._address,
            nodes=nodes,  # Ray's own node records, as the original reported them
            cpus=self._total("CPU"),
            gpus=self._total("GPU"),
            memory=int(self._total("memory")),
            object_store_memory=int(self._total("object_store_memory")),
            dashboard_url=self._dashboard_url,
            workers=self.workers,
        )
        return info

    def _resource_problem(self, stage: str, wanted: dict[str, float]) -> str | None:
        nodes = [n.get("Resources", {}) for n in self.nodes()]
        wanted = dict(wanted)
        wanted.setdefault("CPU", 1.0)  # what Ray asks for a task by default
        if wanted["CPU"] == 0:
            del wanted["CPU"]
        return missing_resources(
            stage,
            wanted,
            nodes,
            hint=". Add a node that has it, or set executor option wait_for_resources: true to queue the "
            "stage until an autoscaler adds one",
        )

    # -- primitives --------------------------------------------------------------------------

    def _put_context(self, run_uid: str, blob: bytes) -> Any:
        import ray

        ref = ray.put(blob)
        self._contexts[run_uid] = ref
        return _ContextLoader(ref)

    def _release_context(self, run_uid: str) -> None:
        self._contexts.pop(run_uid, None)

    def _task_options(self, stage: PlannedStage, resources: dict[str, float]) -> dict[str, Any]:
        retries = stage.options.retries
        cache_key = (stage.name, retries, tuple(sorted(resources.items())))
        cached = self._options_cache.get(cache_key)
        if cached is not None:
            return cached
        options: dict[str, Any] = {
            "num_returns": 2,
            # A worker that dies mid-task (killed, out of memory) is retried within the stage's
            # retries; exceptions raised by stage code are retried inside run_task instead.
            "max_retries": retries,
            "retry_exceptions": False,
        }
        custom: dict[str, float] = {}
        for name, amount in resources.items():
            if name == "CPU":
                options["num_cpus"] = amount
            elif name == "GPU":
                options["num_gpus"] = amount
            elif name == "memory":
                options["memory"] = amount
            else:
                custom[name] = amount
        if custom:
            options["resources"] = custom
        if self.options.tasks_per_worker:
            options["max_calls"] = self.options.tasks_per_worker
        if self._task_env is not None:
            options["runtime_env"] = self._task_env
        if len(self._options_cache) > 1024:
            self._options_cache.clear()
        self._options_cache[cache_key] = options
        return options

    def _launch(self, call: RemoteCall, handles, *, stage, key: str, resources: dict[str, float]) -> Launched:
        options = self._task_options(stage, resources)
        if self._task_setup is not None:
            call = dataclasses.replace(call, setup=self._task_setup)
        status_ref, value_ref = _remote("stage").options(name=f"{stage.name}", **options).remote(call, *handles)
        status = asyncio.wrap_future(status_ref.future())
        return Launched(status, value_ref, False, [status_ref])

    def _split(self, source: RemoteOutput, bounds, *, stage, key: str) -> list[Any]:
        options: dict[str, Any] = {"num_returns": len(bounds), "num_cpus": 0, "name": f"{stage.name}.split"}
        if self._task_env is not None:
            options["runtime_env"] = self._task_env
        refs = _remote("split").options(**options).remote(bounds, source.group, *source.handles)
        return list(refs)

    async def _fetch(self, handles: list[Any]) -> list[Any]:
        import ray

        return await asyncio.get_running_loop().run_in_executor(None, ray.get, list(handles))

    def _cancel(self, handles) -> None:
        import ray

        for ref in handles:
            try:
                ray.cancel(ref, force=False, recursive=True)
            except Exception:  # already finished or gone
                pass

    def _remote_failure(self, exc: BaseException, index: int) -> Failure:
        import ray.exceptions as rex

        if isinstance(exc, rex.RayTaskError):
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return Failure(index, type(cause).__name__, str(cause), str(exc))
        if isinstance(exc, rex.WorkerCrashedError | rex.NodeDiedError | rex.LocalRayletDiedError):
            return Failure(
                index,
                "WorkerCrashedError",
                f"the Ray worker running this task died (killed, out of memory or its node was lost): {exc}",
                "",
            )
        if isinstance(exc, rex.TaskCancelledError):
            return Failure(index, "RunCancelledError", "the task was cancelled", "")
        return Failure(index, type(exc).__name__, str(exc) or type(exc).__name__, "")


def _same_address(a: str, b: str) -> bool:
    def norm(addr: str) -> tuple[str, int | None]:
        parsed = urlparse(f"//{addr}")
        host = parsed.hostname or ""
        try:
            host = socket.gethostbyname(host)
        except OSError:
            pass
        return host, parsed.port

    ha, pa = norm(a)
    hb, pb = norm(b)
    return pa == pb and (ha == hb or ha.startswith("127.") or hb.startswith("127."))


def _dashboard_url(context=None) -> str | None:
    url = getattr(context, "dashboard_url", None) if context is not None else None
    if not url:
        try:
            import ray

            url = ray.get_runtime_context().dashboard_url if hasattr(ray.get_runtime_context(), "dashboard_url") else None
        except Exception:
            url = None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return url or None


__all__ = ["CODE_GENERATION_VAR", "RayExecutor", "RayExecutorOptions", "InsufficientResourcesError", "check_reachable"]
