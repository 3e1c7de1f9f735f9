"""``executor.options`` for ``executor.backend: ray``.

Its own module, without Ray imports: registering the executor (every ``flowdapt`` command and
``execute_workflow`` call does) must not import Ray; only running on it does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RayExecutorOptions(BaseModel):
    """``executor.options`` for ``executor.backend: ray``."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description="cluster to connect to: 'auto', 'host:port' (GCS) or 'ray://host:port' (Ray Client); "
        "empty starts a local Ray instance",
    )
    # -- a local instance -------------------------------------------------------------------
    cpus: int | Literal["auto"] | None = Field(default=None, description="CPUs of a local instance (default: all)")
    gpus: int | None = Field(default=None, ge=0, description="GPUs of a local instance (default: detected)")
    memory: int | str | None = Field(default=None, description="memory for tasks of a local instance, e.g. '8GB'")
    object_store_memory: int | str | None = Field(default=None, description="object store size of a local instance")
    resources: dict[str, float] = Field(default_factory=dict, description="custom resources of a local instance")
    include_dashboard: bool | None = Field(default=None, description="start the dashboard (default: Ray decides)")
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None
    # -- runtime environment ------------------------------------------------------------------
    env_vars: dict[str, str] = Field(default_factory=dict, description="environment variables of workers")
    pip: list[str] | None = Field(default=None, description="pip packages installed for the workers")
    uv: list[str] | None = Field(default=None, description="packages installed with uv for the workers")
    conda: str | dict[str, Any] | None = None
    working_dir: str | None = Field(default=None, description="a directory uploaded to every worker (its cwd)")
    py_modules: list[str] = Field(default_factory=list, description="module directories uploaded to workers")
    runtime_env: dict[str, Any] = Field(default_factory=dict, description="any other Ray runtime_env fields")
    ship_user_modules: bool = Field(
        default=True, description="upload <app_dir>/user_modules to the workers of a cluster given by address"
    )
    ship_plugins: bool = Field(default=False, description="upload the loaded plugins' packages to the workers")
    driver_sys_path: bool = Field(
        default=True, description="add the driver's own (non site-packages) sys.path entries to workers' sys.path"
    )
    # -- scheduling ---------------------------------------------------------------------------
    namespace: str = "flowdapt"
    wait_for_resources: bool = Field(
        default=False,
        description="queue tasks whose resources no node has (autoscaling) instead of failing the run",
    )
    chunks_per_worker: int = Field(default=4, ge=1, description="map chunks per cluster CPU")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to reach a cluster before failing")
    log_to_driver: bool = True
    logging_level: str = "WARNING"
    tasks_per_worker: int | None = Field(default=None, ge=1, description="restart a worker after this many tasks")
    prestart_workers: bool = Field(
        default=True, description="start one worker per CPU when connecting, so the first run is not slowed"
    )
    # Accepted for configs written for the original RayExecutor.
    cluster_address: str | None = None
    strategy: Literal["group_by_group", "all_at_once"] | None = None
    upload_plugins: bool | None = None

    @model_validator(mode="after")
    def _compat(self) -> RayExecutorOptions:
        if self.cluster_address and not self.address:
            self.address = self.cluster_address
        if self.upload_plugins is not None and "ship_plugins" not in self.model_fields_set:
            self.ship_plugins = self.upload_plugins
        if self.address in ("", "local"):
            self.address = None
        return self
