"""Prepare a run: the one path the Python API, ``flowdapt exec`` and the server share.

Preparing a run is: make ``user_modules`` importable, compile the workflow with its targets
checked against the allowed modules (:func:`compile_checked`), check the run input against the
root stages (:func:`check_run_input`), merge the configs that select the workflow, validate the
namespace, pick the executor (:func:`create_executor`) and build the :class:`RunContext`
(:func:`prepare_run`). Whoever drives the run then hands the plan and the context to
:func:`flowdapt.engine.runner.execute_plan`.

Nothing here imports the server or the CLI; the allowed modules are one rule for every caller:
plugins' top-level packages, ``user_modules`` and ``settings.allowed_targets``, plus the prefixes
a caller names for one call (``flowdapt exec`` adds the modules next to the workflow file).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flowdapt.engine.configs import merge_config_data, select_configs
from flowdapt.engine.context import RunContext
from flowdapt.engine.logs import CaptureOptions, level_number
from flowdapt.engine.plan import Plan, compile_workflow
from flowdapt.engine.validation import check_stage_resources, check_targets
from flowdapt.engine.worker import resolve
from flowdapt.errors import ValidationError
from flowdapt.resources.base import check_namespace
from flowdapt.resources.config import Config
from flowdapt.resources.run import WorkflowRun
from flowdapt.resources.workflow import Workflow

if TYPE_CHECKING:  # pragma: no cover
    from flowdapt.engine.executor import Executor
    from flowdapt.plugins import PluginSystem
    from flowdapt.settings import Settings

# -- user modules ---------------------------------------------------------------------------------

_user_modules_dir: str | None = None
#: Every app dir this process put on sys.path for its user modules.
_user_module_dirs: set[str] = set()


def ensure_user_modules(settings: Settings) -> None:
    """Make ``<app_dir>/user_modules/*.py`` importable as ``user_modules.<name>``."""
    directory = settings.user_modules_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")
    except OSError:
        return
    app_dir = str(settings.app_dir)
    _switch_user_modules(app_dir)
    if app_dir not in sys.path:
        sys.path.append(app_dir)


def user_modules_fingerprint(settings: Settings) -> tuple:
    """What changes when a file under ``<app_dir>/user_modules`` is edited, added or removed:
    ``(path, mtime_ns, size)`` of each ``.py`` file (a directory walk: tens of microseconds for a
    few files)."""
    found: list[tuple] = []
    stack = [str(settings.user_modules_dir)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__" and not entry.name.startswith("."):
                    stack.append(entry.path)
            elif entry.name.endswith(".py"):
                try:
                    info = entry.stat()
                except OSError:
                    continue
                found.append((entry.path, info.st_mtime_ns, info.st_size))
    return tuple(sorted(found))


def _switch_user_modules(app_dir: str) -> None:
    """Another app dir in this process (tests, notebooks): forget the previous one's user modules,
    which would otherwise stay cached in ``sys.modules`` and in resolved targets. Every earlier app
    dir is taken off ``sys.path`` on each call, not only the last one: something that restores an
    old ``sys.path`` (pytest's ``monkeypatch.syspath_prepend``, a notebook cell) would otherwise put
    one back in front of this one, and ``user_modules`` would be imported from there."""
    global _user_modules_dir
    previous, _user_modules_dir = _user_modules_dir, app_dir
    _user_module_dirs.add(app_dir)
    stale = [p for p in sys.path if p != app_dir and p in _user_module_dirs]
    for path in stale:
        sys.path.remove(path)
    loaded = sys.modules.get("user_modules")
    loaded_from = list(getattr(loaded, "__path__", None) or [])
    elsewhere = loaded is not None and not all(os.path.dirname(p) == app_dir for p in loaded_from)
    if (previous is None or previous == app_dir) and not stale and not elsewhere:
        return
    from flowdapt.engine.worker import forget_modules

    forget_modules(["user_modules"])


# -- compile and check ----------------------------------------------------------------------------


def allowed_target_prefixes(settings: Settings, plugins: PluginSystem, extra: Iterable[str] = ()) -> list[str]:
    """Modules stage targets may come from: plugins, ``user_modules``, configured prefixes and
    the ``extra`` ones a caller allows for one run."""
    return sorted({*plugins.module_prefixes(), "user_modules", *settings.allowed_targets, *extra} - {"flowdapt"})


def script_directory() -> str:
    """The directory of the running script (``__main__``'s file), or the working directory for an
    interactive session, a notebook or ``python -c``: where Python itself imports from first."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if isinstance(path, str) else os.getcwd()


def modules_beside(directory: str | os.PathLike[str], names: Iterable[str]) -> list[str]:
    """Those of the top-level module ``names`` that are a module or package in ``directory``."""
    found = []
    for name in names:
        if not name.isidentifier():
            continue
        if os.path.isfile(os.path.join(directory, f"{name}.py")) or os.path.isfile(
            os.path.join(directory, name, "__init__.py")
        ):
            found.append(name)
    return found


def _outside(workflow: Workflow, prefixes: list[str]) -> set[str]:
    """Top-level modules of the string targets that lie outside ``prefixes``."""
    from flowdapt.engine.targets import is_valid_target, split_target, target_allowed

    return {
        split_target(t)[0].split(".")[0]
        for t in (stage.target for stage in workflow.spec.stages)
        if isinstance(t, str) and is_valid_target(t) and not target_allowed(t, prefixes)
    }


def stage_types(plugins: PluginSystem) -> dict[str, Any]:
    return {name: reg.factory() for name, reg in plugins.registry("stage_types").items()}


def _resolve_callable(target: Any) -> Any:
    return resolve(target)[0]


#: ``(target, allowed prefixes)`` -> the function it resolved to when it passed the check. A hit
#: counts only while :func:`resolve` still gives that same object (a reload makes a new one).
_passed: dict[tuple[str, tuple[str, ...]], Any] = {}
_PASSED_MAX = 4096


def _targets_passed(workflow: Workflow, prefixes: tuple[str, ...]) -> bool:
    """Every string target passed the check with these prefixes before (the repeated call)."""
    for stage in workflow.spec.stages:
        target = stage.target
        if not isinstance(target, str):
            continue
        fn = _passed.get((target, prefixes))
        if fn is None or resolve(target)[0] is not fn:
            return False
    return True


def _remember_passed(workflow: Workflow, prefixes: tuple[str, ...]) -> None:
    if len(_passed) > _PASSED_MAX:
        _passed.clear()
    for stage in workflow.spec.stages:
        if isinstance(stage.target, str):
            _passed[(stage.target, prefixes)] = resolve(stage.target)[0]


def compile_checked(
    workflow: Workflow,
    settings: Settings,
    plugins: PluginSystem,
    *,
    allowed_targets: Iterable[str] = (),
    beside: str | os.PathLike[str] | Callable[[], str] | None = None,
) -> Plan:
    """DAG, stage types and options, stage resources, targets inside the allowed modules,
    importable, callable with what the engine passes them.

    ``allowed_targets`` adds prefixes for this call; with ``beside`` (a directory) a target whose
    top-level module is a file or package in that directory is allowed too (``flowdapt exec``:
    the workflow file's directory; the Python API: the running script's; a callable giving the
    directory is called only when a target lies outside the other prefixes). A callable target
    (Python API only) is the caller's own code and is not checked against the allowed modules.
    A target that passed with the same prefixes before and resolves to the same function is not
    checked again, so a repeated call costs dictionary lookups.
    """
    prefixes = allowed_target_prefixes(settings, plugins, allowed_targets)
    key = tuple(prefixes)
    if not _targets_passed(workflow, key):
        if beside is not None:
            outside = _outside(workflow, prefixes)
            if outside:  # only then look at the directory: the usual run costs no file system call
                directory = beside() if callable(beside) else beside
                prefixes = sorted({*prefixes, *modules_beside(directory, outside)})
        check_targets(workflow, allowed_prefixes=prefixes, importable=True)
        if len(prefixes) == len(key):  # allowed by the prefixes alone, not by a directory's listing
            _remember_passed(workflow, key)
    check_stage_resources(workflow)
    return compile_workflow(workflow, stage_types(plugins), check_callables=True, resolve=_resolve_callable)


_required_cache: dict[Any, tuple[Any, list[str]]] = {}


def _required_inputs(fn: Any, maps: bool) -> list[str]:
    key = (id(fn), maps)
    hit = _required_cache.get(key)
    if hit is not None and hit[0] is fn:  # the function itself is kept, so its id is not reused
        return hit[1]
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
    if maps:  # the item is the first positional argument
        for i, p in enumerate(params):
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                params = params[:i] + params[i + 1 :]
                break
    required = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
    ]
    _required_cache[key] = (fn, required)
    return required


def check_run_input(plan: Plan, run_input: Mapping[str, Any]) -> None:
    """Root stages get the run input as keyword arguments: each must find its required ones."""
    label = f"workflow/{plan.workflow.metadata.name}"
    for stage in plan.stages.values():
        if not stage.is_root:
            continue
        if stage.map_on and stage.map_on not in run_input:
            raise ValidationError(
                f"stage {stage.name!r} maps over input key {stage.map_on!r}, which the run input lacks "
                f"(given: {', '.join(sorted(run_input)) or 'nothing'})",
                resource=label,
                field="input",
            )
        fn = resolve(stage.target)[0]
        missing = [name for name in _required_inputs(fn, stage.maps) if name not in run_input]
        if missing:
            raise ValidationError(
                f"stage {stage.name!r} ({stage.target if isinstance(stage.target, str) else 'callable'}) "
                f"needs input {', '.join(repr(m) for m in missing)}, which the run input lacks "
                f"(given: {', '.join(sorted(run_input)) or 'nothing'})",
                resource=label,
                field="input",
            )


def _annotation_text(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        return annotation
    if isinstance(annotation, type):
        return annotation.__qualname__ if annotation.__module__ == "builtins" else f"{annotation.__module__}.{annotation.__qualname__}"
    return str(annotation).replace("typing.", "")


def _json_default(value: Any) -> Any:
    """A default as JSON data when it is plain data, else its ``repr`` (``{"repr": ...}``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) and (v is None or isinstance(v, (bool, int, float, str))) for k, v in value.items()):
        return dict(value)
    return {"repr": repr(value)}


def root_parameters(plan: Plan) -> list[dict[str, Any]]:
    """The run input a workflow takes: the keyword parameters of its root stages (a map stage's
    item is not one; its ``map_on`` input key is), merged by name, in stage order. Each is
    ``{name, required, default, annotation, stages}``; ``default`` is present only when the
    parameter has one (JSON data, or ``{"repr": ...}`` for other values)."""
    found: dict[str, dict[str, Any]] = {}

    def add(name: str, stage: str, required: bool, default: Any, annotation: str | None) -> None:
        entry = found.get(name)
        if entry is None:
            entry = found[name] = {"name": name, "required": required, "annotation": annotation, "stages": []}
            if default is not inspect.Parameter.empty:
                entry["default"] = _json_default(default)
        else:
            entry["required"] = entry["required"] or required
            if entry["annotation"] is None:
                entry["annotation"] = annotation
            if "default" not in entry and default is not inspect.Parameter.empty:
                entry["default"] = _json_default(default)
        entry["stages"].append(stage)

    for stage in plan.stages.values():
        if not stage.is_root:
            continue
        if stage.map_on:
            add(stage.map_on, stage.name, True, inspect.Parameter.empty, "list")
        try:
            params = list(inspect.signature(resolve(stage.target)[0]).parameters.values())
        except (TypeError, ValueError):
            continue
        if stage.maps:  # the item is the first positional argument
            for i, p in enumerate(params):
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                    params = params[:i] + params[i + 1 :]
                    break
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            add(p.name, stage.name, p.default is p.empty, p.default, _annotation_text(p.annotation))
    return list(found.values())


def check_request(run_input: Any, namespace: str | None) -> dict[str, Any]:
    """The checks that need no workflow: the input is a mapping of keyword arguments and the
    namespace (when given; empty means the default) is a valid name. Returns the input as a dict."""
    if run_input is None:
        run_input = {}
    if not isinstance(run_input, Mapping):
        raise ValidationError(
            f"the run input must be a JSON object of keyword arguments, got {type(run_input).__name__}",
            field="body",
        )
    if namespace:
        check_namespace(namespace)
    return dict(run_input)


# -- configs, executor, context -------------------------------------------------------------------


def run_config(workflow: Workflow, config: Mapping[str, Any] | Sequence[Config] | None) -> dict[str, Any]:
    """The config data of a run: given as data (a mapping), or merged from the config resources
    that select the workflow (by name first, then by annotation; later ones win)."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return merge_config_data(select_configs(workflow, config))


def create_executor(
    settings: Settings, plugins: PluginSystem, name: str | None = None, options: Mapping[str, Any] | None = None
) -> Executor:
    """An executor (not started) of backend ``name`` (default: the configured one); the configured
    options apply when no ``options`` are given and the backend is the configured one."""
    backend = name or settings.executor.backend
    if options is None:
        options = settings.executor.options if backend == settings.executor.backend else {}
    return plugins.create("executors", backend, dict(options), settings)


def prepare_run(
    plan: Plan,
    run_input: Any,
    *,
    settings: Settings,
    executor: str,
    config: Mapping[str, Any] | Sequence[Config] | None = None,
    namespace: str | None = None,
    run: WorkflowRun | None = None,
    **run_fields: Any,
) -> RunContext:
    """The context of a new run of ``plan``: the input checked against the root stages, the
    config data merged, the namespace checked (default: ``compute.default_namespace``) and the
    run record made (unless given; ``run_fields`` such as ``source``, ``owner``, ``triggered_by``
    go into it). Raises :class:`ValidationError` for a bad input or namespace; nothing has run."""
    run_input = check_request(run_input, namespace)
    check_run_input(plan, run_input)
    workflow = plan.workflow
    namespace = check_namespace(namespace or settings.compute.default_namespace)
    if run is None:
        run = WorkflowRun(workflow=workflow.metadata.name, namespace=namespace, executor=executor, **run_fields)
    return RunContext(
        input=run_input,
        config=run_config(workflow, config),
        namespace=namespace,
        executor=executor,
        definition=workflow,
        run=run,
        capture=capture_options(settings),
    )


def capture_options(settings: Settings) -> CaptureOptions | None:
    """What the run's workers capture of the stages' output (``logs`` settings); None: nothing."""
    logs = settings.logs
    if not logs.enabled:
        return None
    return CaptureOptions(level=level_number(logs.level), max_bytes=logs.max_bytes_per_run)
