"""Settings: a YAML file in the app dir, overridden by ``FLOWDAPT__SECTION__KEY`` env variables.

Precedence, lowest first: defaults < ``<app_dir>/flowdapt.yaml`` < environment < explicit
overrides (CLI flags, ``-o key.path=value``). Backends are picked by name (``executor.backend``)
and each plugin validates its own ``options`` with a pydantic model when the backend is created.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flowdapt.errors import ConfigurationError

ENV_PREFIX = "FLOWDAPT__"
DEFAULT_CONFIG_FILE = "flowdapt.yaml"


def default_app_dir() -> Path:
    return Path(os.path.expanduser("~/.flowdapt"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackendSettings(_Section):
    """A backend picked by name from the plugin registries, with the plugin's own options."""

    backend: str
    options: dict[str, Any] = Field(default_factory=dict)


class ExecutorSettings(BackendSettings):
    backend: str = "local"
    #: Runs one compute server drives at once when runs come from the run queue (0: no limit);
    #: the rest wait ``pending`` in the queue for this or another compute server.
    max_concurrent_runs: int = Field(default=0, ge=0)


class DatabaseSettings(BackendSettings):
    backend: str = "sqlite"


class ClusterMemorySettings(BackendSettings):
    #: ``auto``: LMDB (flowdapt-lmdb) when installed, else the core's in-process ``memory`` with a
    #: warning (see ``flowdapt.plugins.AUTO_BACKENDS`` and docs/configuration.md).
    backend: str = "auto"


class EventBusSettings(_Section):
    url: str = "memory://"
    options: dict[str, Any] = Field(default_factory=dict)
    #: A run result larger than this (JSON bytes) is left out of its workflow_finished event.
    max_result_bytes: int = 64 * 1024


class TriggerSettings(_Section):
    """The trigger service (``flowdapt run --services triggers``)."""

    #: Loop protection: a rule that fires again from its own chain of events more than
    #: ``loop_max_fires`` times within ``loop_window`` seconds is held back and reported.
    loop_max_fires: int = Field(default=10, ge=1)
    loop_window: float = Field(default=60.0, gt=0)
    #: A due time missed by more than this many seconds counts as a misfire (see spec.misfire).
    misfire_grace: float = Field(default=5.0, ge=0)
    #: Seconds between full reloads of the rules from the database, a safety net for changes made
    #: by servers that share the database but not the event bus. 0 turns it off.
    resync_interval: float = Field(default=60.0, ge=0)
    #: Fires kept per rule in its history (``GET /triggers/{id}/history``); 0 keeps none.
    history_size: int = Field(default=20, ge=0, le=1000)
    #: Networks (CIDR, e.g. ``10.0.0.0/8``, ``127.0.0.1/32``) that webhook actions may reach
    #: although they are not public. Empty: webhooks reach public addresses only.
    webhook_allowed_networks: list[str] = Field(default_factory=list)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a network (CIDR): {value!r}: {exc}") from None
        return values


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    tokens: list[str] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = 16 * 1024 * 1024
    #: Values a YAML/JSON body may expand to (YAML aliases counted expanded): a bound on alias bombs.
    max_document_nodes: int = Field(default=100_000, ge=100)
    #: Nesting levels of mappings and lists a body may have.
    max_document_depth: int = Field(default=64, ge=4, le=200)
    #: Seconds a stopping server (SIGTERM) waits for in-flight runs before marking them failed.
    shutdown_timeout: float = 30.0

    def all_tokens(self) -> list[str]:
        return [t for t in [self.token, *self.tokens] if t]


class PluginSettings(_Section):
    only: list[str] | None = None
    disabled: list[str] = Field(default_factory=list)


class ObjectStoreSettings(_Section):
    default_strategy: Literal["fallback", "cluster_memory", "artifact"] = "fallback"
    write_through: bool = False


class StorageSettings(_Section):
    """Artifact storage on fsspec; ``base_path`` empty means ``<app_dir>/artifacts`` for ``file``."""

    protocol: str = "file"
    base_path: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ComputeSettings(_Section):
    default_namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9_\-]+$", max_length=253)
    run_retention_duration: int | str = -1
    max_result_bytes: int = 1024 * 1024
    #: A run input whose JSON is larger is kept in ``<app_dir>/inputs/`` and the run record holds
    #: ``input_ref`` instead (-1: never).
    max_input_bytes: int = 64 * 1024
    #: Runs go through the database's run queue, so several servers share the work and a run
    #: survives the death of the process running it (docs/deployment.md). ``auto``: on when the
    #: event bus crosses processes (not ``memory://``) and the store has a run queue.
    run_queue: Literal["auto", "on", "off"] = "auto"
    #: A compute server's claim on a queued run lasts this long without a heartbeat; a run of a
    #: server that died is taken over within about 1.5x this.
    lease_seconds: float = Field(default=5.0, ge=1.0, le=3600.0)
    #: Compute servers look for queued runs this often even when no event tells them.
    queue_poll_seconds: float = Field(default=1.0, gt=0, le=60.0)


class LoggingSettings(_Section):
    level: str = "INFO"
    format: Literal["console", "json"] = "console"

    @field_validator("level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class LogsSettings(_Section):
    """What runs capture of their stages' output (stdout, stderr, ``logging``); see docs/logs.md."""

    enabled: bool = True
    #: ``logging`` records below this level are not captured (prints always are).
    level: str = "INFO"
    #: A run's stored log is cut to this many bytes, oldest lines first, with a marker line.
    max_bytes_per_run: int = Field(default=10 * 1024 * 1024, ge=1024)

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = str(value).strip().upper()
        if value == "WARN":
            value = "WARNING"
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    app_dir: Path = Field(default_factory=default_app_dir)
    config_file: str | None = None
    name: str = Field(default_factory=lambda: f"flowdapt.{secrets.token_hex(3)}")
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster_memory: ClusterMemorySettings = Field(default_factory=ClusterMemorySettings)
    event_bus: EventBusSettings = Field(default_factory=EventBusSettings)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    #: Extra module prefixes stage targets may come from (besides plugins and ``user_modules``).
    allowed_targets: list[str] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    @property
    def user_modules_dir(self) -> Path:
        return self.app_dir / "user_modules"

    @property
    def config_path(self) -> Path | None:
        if self.config_file == "-":
            return None
        return _config_path(self.app_dir, self.config_file)


def _config_path(app_dir: Path, config_file: str | None) -> Path:
    path = Path(config_file or DEFAULT_CONFIG_FILE).expanduser()
    return path if path.is_absolute() else app_dir / path


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file that ``load_settings`` resolved (stashed in a thread-local)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused, __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(getattr(_pending, "file_data", None) or {})


_pending = threading.local()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold a mapping at the top level")
    return data


def _default_file_text() -> str:
    return (
        "# Flowdapt settings. Environment variables FLOWDAPT__SECTION__KEY override these.\n"
        + yaml.safe_dump(
            {
                "executor": {"backend": "local", "options": {}},
                "database": {"backend": "sqlite", "options": {}},
                "cluster_memory": {"backend": "auto", "options": {}},
                "event_bus": {"url": "memory://"},
                "api": {"host": "127.0.0.1", "port": 8080},
                "object_store": {"default_strategy": "fallback"},
                "compute": {"default_namespace": "default", "run_retention_duration": -1},
                "logging": {"level": "INFO"},
            },
            sort_keys=False,
        )
    )


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating mappings on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigurationError(f"cannot set {dotted}: {part} is not a mapping")
    node[parts[-1]] = value


def load_settings(
    app_dir: str | Path | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    create: bool = True,
) -> Settings:
    """Resolve the app dir and config file, create them with defaults on first use, and load.

    ``overrides`` maps dotted keys (``executor.backend``) to values and wins over everything.
    ``config_file="-"`` reads no file (environment only).
    """
    resolved_dir = Path(app_dir or os.environ.get(f"{ENV_PREFIX}APP_DIR") or default_app_dir()).expanduser()
    config_file = config_file or os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    file_data: dict[str, Any] = {}
    if config_file != "-":
        path = _config_path(resolved_dir, config_file)
        if not path.exists() and create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_default_file_text())
            except OSError as exc:  # a read-only app dir: run on defaults, say so once
                logging.getLogger("flowdapt.settings").warning(
                    "cannot write the default settings file %s (%s); using defaults", path, exc.strerror or exc
                )
        if path.exists():
            file_data = _read_yaml(path)
    init: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        set_dotted(init, key, value)
    init["app_dir"] = resolved_dir
    init["config_file"] = config_file
    _pending.file_data = file_data
    try:
        from pydantic import ValidationError as PydanticValidationError

        try:
            settings = Settings(**init)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigurationError(f"invalid settings: {problems}") from None
    finally:
        _pending.file_data = None
    if create:
        try:
            settings.app_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the app dir {settings.app_dir}: {exc.strerror or exc}; choose a writable one "
                "with --app-dir or FLOWDAPT__APP_DIR"
            ) from None
    return settings


_current: Settings | None = None
_current_lock = threading.Lock()


def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    global _current
    if _current is None:
        with _current_lock:
            if _current is None:
                _current = load_settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    global _current
    with _current_lock:
        _current = settings
