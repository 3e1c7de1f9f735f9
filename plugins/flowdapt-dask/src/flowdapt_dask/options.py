"""``executor.options`` for ``executor.backend: dask``.

Its own module, without Dask imports: registering the executor (every ``flowdapt`` command and
``execute_workflow`` call does) must not import Dask; only running on it does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    ship_plugins: bool = Field(
        default=False,
        description="upload the loaded plugins' packages to every worker (again after each plugin install), "
        "for workers that do not share the server's environment",
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
        if self.upload_plugins is not None and "ship_plugins" not in self.model_fields_set:
            self.ship_plugins = self.upload_plugins
        return self
