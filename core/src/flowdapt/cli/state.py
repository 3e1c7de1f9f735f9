"""State shared by CLI commands: the global options and lazily loaded settings/plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import typer

#: Exit codes: 1 a run or request failed; 2 bad input (resource, settings, arguments).
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@dataclass
class CliState:
    app_dir: str | None = None
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    dev: bool = False
    _settings: Any = None
    _plugins: Any = None

    @property
    def settings(self):
        if self._settings is None:
            from flowdapt.errors import FlowdaptError
            from flowdapt.settings import load_settings, set_settings

            try:
                self._settings = load_settings(self.app_dir, self.config_file, self.overrides)
            except FlowdaptError as exc:
                fail(str(exc))
            set_settings(self._settings)
        return self._settings

    @property
    def plugins(self):
        if self._plugins is None:
            from flowdapt.plugins import get_plugin_system, set_plugin_system

            settings = self.settings
            unfiltered = settings.plugins.only is None and not settings.plugins.disabled
            reuse = _startup_plugins if unfiltered else None
            set_plugin_system(reuse)
            self._plugins = get_plugin_system(settings)
            if reuse is not None:  # it was built quietly: report broken plugins as a fresh one would
                import logging

                for name, info in reuse.plugins.items():
                    if info.error:
                        logging.getLogger("flowdapt.plugins").warning("plugin %s is skipped: %s", name, info.error)
        return self._plugins


#: The plugin system ``main`` built (from every entry point) to collect CLI commands.
_startup_plugins: Any = None


def set_startup_plugins(plugins: Any) -> None:
    global _startup_plugins
    _startup_plugins = plugins


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if obj is None:
        obj = CliState()
        ctx.find_root().obj = obj
    return obj
