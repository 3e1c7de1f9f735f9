"""Install and uninstall plugins in the running interpreter's environment, then reload them.

The installer is ``uv pip`` when uv is available (on PATH, beside the interpreter, or in
``$FLOWDAPT_UV``), else ``python -m pip``. Both resolve everything before changing anything, so a
failed install leaves the environment as it was; its output is returned in the error.
A plugin is named by package name (with an optional version spec), by local path (a project
directory, a wheel or an sdist) or by URL (``https://...whl``, ``git+https://...``).

After a change, :func:`reload_plugins` makes this process see it: new ``.pth`` entries (editable
installs) are added to ``sys.path``, the changed plugins' modules are dropped from ``sys.modules``
and the plugin system is rebuilt from the entry points. Executors replace their workers through
:meth:`flowdapt.engine.executor.Executor.reload_code`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata as md
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdapt.errors import ConfigurationError, FlowdaptError, ResourceNotFoundError, ValidationError
from flowdapt.plugins import ENTRY_POINT_GROUP, PluginSystem, create_plugin_system, set_plugin_system
from flowdapt.reloading import distribution_packages, forget_modules

#: Seconds an installer may run before it is stopped (a stuck index, a huge build).
DEFAULT_TIMEOUT = 600.0
#: The core cannot be replaced under a running process; plugins can.
PROTECTED_DISTRIBUTIONS = frozenset({"flowdapt"})
#: Installer output kept in results and errors.
MAX_OUTPUT_CHARS = 8000

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_EXTRA_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_SPEC_OPS = ("==", ">=", "<=", "~=", "!=", ">", "<", "===")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")
#: URLs a plugin may be installed from: a scheme the installer knows, then no whitespace.
_URL_RE = re.compile(r"^(?:git\+)?(?:https?|file|ssh|git)://[^\s]+$")


def _check_no_option(value: str, field: str) -> None:
    """A value that starts with ``-`` would reach the installer as an option
    (``--requirements=file:///etc/...``, ``--editable=...``, ``--index-url=...``)."""
    if value.startswith("-"):
        raise ValidationError(f"{value!r} starts with '-': options cannot be passed through {field}", field=field)


class PluginInstallError(FlowdaptError):
    """The installer failed; ``output`` is what it printed. Nothing was changed."""

    status_code = 400

    def __init__(self, message: str, output: str = "", command: list[str] | None = None):
        self.output = output[-MAX_OUTPUT_CHARS:]
        self.command = command or []
        super().__init__(f"{message}\n{self.output}".rstrip() if self.output else message)


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- what to install ----------------------------------------------------------------------------


@dataclass
class InstallSpec:
    """``flowdapt plugin install`` arguments, checked before anything runs."""

    plugin: str
    version: str | None = None
    upgrade: bool = False
    editable: bool = False
    extras: list[str] = field(default_factory=list)
    #: Relative paths are resolved against this directory (the CLI's working directory).
    base_dir: str | None = None

    @property
    def source(self) -> str:
        """``name``, ``path`` or ``url``."""
        text = self.plugin.strip()
        if "://" in text or text.startswith(("git+", "file:")):
            return "url"
        if text.startswith((".", "/", "~")) or os.sep in text or text.endswith(_ARCHIVE_SUFFIXES):
            return "path"
        if self.base_dir is not None and (Path(self.base_dir) / text).exists() and not _NAME_RE.fullmatch(text.split("[")[0]):
            return "path"
        return "name"

    def path(self) -> Path:
        raw = Path(self.plugin.strip()).expanduser()
        if not raw.is_absolute() and self.base_dir:
            raw = Path(self.base_dir) / raw
        return raw.resolve()

    def requirement_args(self) -> list[str]:
        """The installer arguments for this plugin. Raises ValidationError on bad combinations.

        An editable install is one ``--editable=<target>`` option; anything else is one
        requirement argument, which :func:`installer_command` puts after ``--`` so that it can
        never be read as an option of the installer."""
        text = self.plugin.strip()
        if not text:
            raise ValidationError("name the plugin to install: a package name, a local path or a URL", field="plugin")
        _check_no_option(text, "plugin")
        if self.version is not None:
            _check_no_option(self.version.strip(), "version")
        for extra in self.extras:
            if not _EXTRA_RE.fullmatch(extra):
                raise ValidationError(f"invalid extra {extra!r}", field="extras")
        source = self.source
        version = (self.version or "").strip()
        if version.lower() == "latest":
            version = ""
        if source == "name":
            name, _, rest = text.partition("[")
            if not _NAME_RE.fullmatch(name):
                raise ValidationError(
                    f"{text!r} is not a package name, an existing path or a URL", field="plugin"
                )
            if normalize_name(name) in PROTECTED_DISTRIBUTIONS:
                raise ValidationError(
                    "the core (flowdapt) cannot be replaced under a running server; upgrade it and restart",
                    field="plugin",
                )
            if self.editable:
                raise ValidationError("--editable needs a local project directory (or a VCS URL)", field="editable")
            extras = list(self.extras)
            if rest:
                extras += [e.strip() for e in rest.rstrip("]").split(",") if e.strip()]
            requirement = name + (f"[{','.join(extras)}]" if extras else "")
            if version:
                if not version.startswith(_SPEC_OPS):
                    version = f"=={version}"
                if not re.fullmatch(r"[<>=!~]{1,3}\s*[A-Za-z0-9.*+!_-]+(\s*,\s*[<>=!~]{1,3}\s*[A-Za-z0-9.*+!_-]+)*", version):
                    raise ValidationError(f"invalid version spec {self.version!r} (e.g. 1.2.0, '>=1.2,<2')", field="version")
                requirement += version
            return [requirement]
        if version:
            raise ValidationError("--version applies to package names, not to paths or URLs", field="version")
        if source == "path":
            path = self.path()
            if not path.exists():
                raise ValidationError(f"no such file or directory: {path}", field="plugin")
            if self.editable and not path.is_dir():
                raise ValidationError("--editable needs a project directory, not an archive", field="editable")
            target = str(path) + (f"[{','.join(self.extras)}]" if self.extras and path.is_dir() else "")
            return [f"--editable={target}"] if self.editable else [target]
        if not _URL_RE.fullmatch(text):
            raise ValidationError(
                f"{text!r} is not a URL the installer accepts (http(s)://, file://, git+https://, git+ssh://...)",
                field="plugin",
            )
        if self.extras:
            raise ValidationError("extras apply to package names and local projects, not to URLs", field="extras")
        return [f"--editable={text}"] if self.editable else [text]

    def distribution_hint(self) -> str | None:
        """The distribution this spec names, when that can be told without installing it."""
        source = self.source
        if source == "name":
            return normalize_name(self.plugin.strip().partition("[")[0])
        if source == "path":
            path = self.path()
            if path.is_dir() and (path / "pyproject.toml").is_file():
                try:
                    name = tomllib.loads((path / "pyproject.toml").read_text()).get("project", {}).get("name")
                except (OSError, tomllib.TOMLDecodeError):
                    name = None
                return normalize_name(name) if name else None
            if path.name.endswith(".whl"):
                return normalize_name(path.name.split("-")[0])
        return None


# -- running the installer ----------------------------------------------------------------------


#: The only options the installer is ever given, besides --python.
_OUR_FLAGS = frozenset({"--upgrade"})
_OUR_VALUED_OPTIONS = ("--editable=", "--constraint=")


def _find_uv(python: str) -> str | None:
    candidates = [os.environ.get("FLOWDAPT_UV"), str(Path(python).parent / "uv"), shutil.which("uv")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _has_pip(python: str) -> bool:
    try:
        proc = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def installer_command(action: str, args: list[str], python: str | None = None) -> list[str]:
    """``uv pip <action> --python <python> [options] -- <arguments>`` or the same with
    ``<python> -m pip``. ``args`` that start with ``--`` and contain ``=`` are our own options
    (``--upgrade``, ``--editable=<target>``, ``--constraint=<file>``); every other one goes after ``--``, where the
    installer reads it as a requirement whatever it looks like."""
    python = python or sys.executable
    options = [a for a in args if a in _OUR_FLAGS or a.startswith(_OUR_VALUED_OPTIONS)]
    arguments = [a for a in args if a not in options]
    tail = [*options, "--", *arguments] if arguments else options
    uv = _find_uv(python)
    if uv is not None:
        return [uv, "pip", action, "--python", python, *tail]
    if _has_pip(python):
        extra = ["-y"] if action == "uninstall" else ["--disable-pip-version-check"]
        return [python, "-m", "pip", action, *extra, *tail]
    raise ConfigurationError(
        f"cannot {action} plugins: neither uv nor pip is available to {python} "
        "(install uv, or pip into that environment)"
    )


async def run_installer(command: list[str], timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
    """Run the installer without blocking the event loop; returns (exit code, output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env["NO_COLOR"] = "1"
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{command[0]} did not finish within {timeout:g} seconds and was stopped"
    return proc.returncode or 0, out.decode(errors="replace")


def installed_distributions() -> dict[str, str]:
    """Normalized distribution name -> version, as this interpreter sees them now."""
    importlib.invalidate_caches()
    out: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(normalize_name(name), dist.version)
    return out


def plugin_distributions() -> dict[str, list[str]]:
    """Normalized distribution name -> the plugin (entry point) names it provides."""
    importlib.invalidate_caches()
    out: dict[str, list[str]] = {}
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None and dist.metadata["Name"]:
            out.setdefault(normalize_name(dist.metadata["Name"]), []).append(ep.name)
    return out


@dataclass
class EnvironmentChange:
    """What an install or uninstall changed: distribution -> (old version, new version)."""

    command: list[str]
    output: str
    changed: dict[str, tuple[str | None, str | None]]
    #: The distribution the request named (also when nothing changed, e.g. already installed).
    distribution: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "output": self.output[-MAX_OUTPUT_CHARS:],
            "changed": [{"distribution": k, "old": v[0], "new": v[1]} for k, v in sorted(self.changed.items())],
            "distribution": self.distribution,
        }


def _diff(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {
        name: (before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


_REQUIREMENT_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirement_name(requirement: str) -> str | None:
    """The distribution a ``Requires-Dist`` line names; None for one that only an extra brings."""
    spec, _, marker = requirement.partition(";")
    if "extra" in marker:
        return None
    match = _REQUIREMENT_NAME_RE.match(spec)
    return normalize_name(match.group(1)) if match else None


def kept_distributions(changing: str | None = None) -> dict[str, tuple[str, str]]:
    """What installing a plugin must leave as it is: the core, every other plugin distribution,
    and everything they need (transitively), as installed now.

    Returns ``name -> (installed version, why)``, where ``why`` names who needs it. ``changing`` is
    the distribution being installed or upgraded: it and what only it needs may change. Requirement
    markers other than extras are not evaluated: keeping an installed package that turns out not
    to be needed only narrows the resolution.
    """
    importlib.invalidate_caches()
    installed: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(normalize_name(name), dist)
    changing = normalize_name(changing) if changing else None
    roots = [name for name in ["flowdapt", *sorted(plugin_distributions())] if name != changing]
    kept: dict[str, tuple[str, str]] = {}
    pending = [(name, "the core" if name == "flowdapt" else "an installed plugin") for name in roots]
    while pending:
        name, why = pending.pop(0)
        if name in kept or name not in installed:
            continue
        dist = installed[name]
        kept[name] = (dist.version, why)
        for requirement in dist.requires or []:
            dep = _requirement_name(requirement)
            if dep and dep != changing and dep in installed and dep not in kept:
                pending.append((dep, f"needed by {name}"))
    return kept


def _conflict_message(spec: InstallSpec, kept: Mapping[str, tuple[str, str]], output: str) -> str | None:
    """Which kept distributions the installer's resolution error names, if any."""
    text = normalize_name(output.replace("_", "-"))
    named = [n for n in kept if re.search(rf"(?<![a-z0-9-]){re.escape(n)}(?![a-z0-9-])", text)]
    if not named:
        return None
    listed = ", ".join(f"{n} {kept[n][0]} ({kept[n][1]})" for n in named)
    return (
        f"installing {spec.plugin!r} would replace or remove what the core or another installed plugin "
        f"needs: {listed}. The installer keeps those as they are and found no version of the plugin that "
        "works with them; nothing was changed"
    )


async def install(spec: InstallSpec, *, python: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> EnvironmentChange:
    """Install a plugin into ``python``'s environment (default: this interpreter's).

    The core, the other plugins and what they need are held at their installed versions (a
    constraints file), so the installer either finds a resolution that leaves them alone or fails
    before changing anything; :class:`PluginInstallError` then names the conflict.
    """
    import tempfile

    args = spec.requirement_args()
    if spec.upgrade:
        args = ["--upgrade", *args]
    target = python or sys.executable
    same_interpreter = os.path.realpath(target) == os.path.realpath(sys.executable)
    # What this process sees is the environment the server runs in; for another interpreter the
    # installer is left to its own resolution (tests, tools).
    kept = kept_distributions(spec.distribution_hint()) if same_interpreter else {}
    with tempfile.TemporaryDirectory(prefix="flowdapt-install-") as tmp:
        if kept:
            constraints = Path(tmp) / "constraints.txt"
            constraints.write_text("".join(f"{name}=={version}\n" for name, (version, _) in sorted(kept.items())))
            args = [f"--constraint={constraints}", *args]
        command = installer_command("install", args, python)
        before = installed_distributions()
        code, output = await run_installer(command, timeout)
    if code != 0:
        conflict = _conflict_message(spec, kept, output)
        if conflict is not None:
            raise PluginInstallError(conflict, output, command)
        raise PluginInstallError(f"installing {spec.plugin!r} failed ({Path(command[0]).name} exited {code}); nothing was changed", output, command)
    after = installed_distributions()
    changed = _diff(before, after)
    touched = [name for name in changed if name in kept or name in PROTECTED_DISTRIBUTIONS]
    if touched:  # the constraints make this unreachable with uv and pip; kept as a last guard
        listed = ", ".join(f"{n} {changed[n][0]} -> {changed[n][1]}" for n in touched)
        raise PluginInstallError(
            f"installing {spec.plugin!r} changed what the core or another plugin needs ({listed}); restart the server",
            output,
            command,
        )
    hint = spec.distribution_hint()
    if hint is None:
        plugin_dists = plugin_distributions()
        new_plugins = [name for name in changed if name in plugin_dists]
        hint = new_plugins[0] if len(new_plugins) == 1 else None
    return EnvironmentChange(command, output, changed, hint)


def resolve_plugin_distribution(name: str, plugins: PluginSystem | None = None) -> str:
    """The distribution that provides plugin ``name`` (a plugin or a distribution name)."""
    wanted = normalize_name(name)
    if plugins is not None:
        info = plugins.plugins.get(name)
        if info is not None and info.distribution:
            dist = normalize_name(info.distribution)
            if dist in PROTECTED_DISTRIBUTIONS:
                raise ValidationError(f"{name!r} is built into the core (flowdapt) and cannot be uninstalled")
            return dist
    provided = plugin_distributions()
    for dist, names in provided.items():
        if name in names:
            wanted = dist
            break
    if wanted in PROTECTED_DISTRIBUTIONS:
        raise ValidationError("the core (flowdapt) cannot be uninstalled from a running server")
    if wanted not in provided:
        known = sorted({n for names in provided.values() for n in names} | set(provided) - PROTECTED_DISTRIBUTIONS)
        raise ResourceNotFoundError(
            f"no installed plugin or plugin distribution named {name!r} (installed: {', '.join(known) or 'none'})"
        )
    return wanted


def _pth_paths(distribution: str) -> list[str]:
    """Directories a distribution's ``.pth`` files put on ``sys.path`` (editable installs)."""
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        return []
    paths = []
    for file in dist.files or []:
        if file.name.endswith(".pth"):
            try:
                text = Path(str(dist.locate_file(file))).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    paths.append(os.path.abspath(os.path.join(os.path.dirname(str(dist.locate_file(file))), line)))
    return paths


async def uninstall(distribution: str, *, python: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> EnvironmentChange:
    command = installer_command("uninstall", [distribution], python)
    before = installed_distributions()
    editable_paths = _pth_paths(distribution)
    code, output = await run_installer(command, timeout)
    if code != 0:
        raise PluginInstallError(f"uninstalling {distribution!r} failed ({Path(command[0]).name} exited {code})", output, command)
    # An editable install's source directory must stop being importable here and in new workers.
    for path in editable_paths:
        while path in sys.path:
            sys.path.remove(path)
    return EnvironmentChange(command, output, _diff(before, installed_distributions()), distribution)


# -- making this process see the change -------------------------------------------------------------


def refresh_site_paths() -> list[str]:
    """Add paths from ``.pth`` files written since start-up (editable installs) to ``sys.path``."""
    before = list(sys.path)
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    for directory in dirs:
        if os.path.isdir(directory):
            site.addsitedir(directory)
    importlib.invalidate_caches()
    return [p for p in sys.path if p not in before]


def reload_plugins(
    old: PluginSystem | None,
    changed: Iterable[str],
    *,
    only: Iterable[str] | None = None,
    disabled: Iterable[str] = (),
) -> PluginSystem:
    """Rebuild the process-wide plugin system after distributions changed.

    Modules of plugins whose distribution changed are forgotten, so an upgrade's new code is
    imported; other plugins (and every dependency) stay loaded. Returns the new system, which is
    also installed with :func:`set_plugin_system`.
    """
    changed = {normalize_name(d) for d in changed} - PROTECTED_DISTRIBUTIONS
    refresh_site_paths()
    stale: set[str] = set()
    if old is not None:
        for info in old.plugins.values():
            if info.distribution and normalize_name(info.distribution) in changed:
                stale.add(info.module.split(".")[0])
    # Only plugin distributions' own packages are dropped: re-importing a dependency (numpy,
    # ray...) in a live process is not safe, and dependencies rarely change under a plugin.
    plugin_dists = set(plugin_distributions())
    for dist in changed & plugin_dists:
        stale.update(distribution_packages(dist))
    stale.discard("flowdapt")
    forget_modules(stale)
    system = create_plugin_system(only=only, disabled=disabled)
    system.registries  # noqa: B018 - registration hooks run now, so a broken plugin is reported now
    set_plugin_system(system)
    return system


def plugins_of(system: PluginSystem, distribution: str | None) -> list[str]:
    if not distribution:
        return []
    wanted = normalize_name(distribution)
    return sorted(
        info.name for info in system.plugins.values() if info.distribution and normalize_name(info.distribution) == wanted
    )


__all__ = [
    "EnvironmentChange",
    "InstallSpec",
    "PluginInstallError",
    "install",
    "installed_distributions",
    "installer_command",
    "kept_distributions",
    "normalize_name",
    "plugins_of",
    "refresh_site_paths",
    "reload_plugins",
    "resolve_plugin_distribution",
    "uninstall",
]
