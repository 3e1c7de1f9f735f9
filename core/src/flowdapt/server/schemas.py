"""Wire schemas for the OpenAPI document (request and response bodies).

Handlers parse bodies with the resource models (``flowdapt.resources``) and answer with their
JSON dumps; these models only describe that JSON, mirroring the original's v1alpha1 DTOs plus
our extra fields, so clients and fuzzers know the shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from flowdapt.resources.base import NAME_PATTERN


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResourceMetadata(_Open):
    uid: UUID | None = Field(default=None, description="ignored on create; kept on update")
    name: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=253)
    created_at: datetime | None = Field(default=None, description="naive UTC, ignored on write")
    updated_at: datetime | None = Field(default=None, description="naive UTC, ignored on write")
    annotations: dict[str, str] = {}


class WorkflowStage(_Open):
    name: str = Field(min_length=1)
    target: str = Field(description="import path package.module.function inside the allowed modules")
    type: str = "simple"
    depends_on: list[str] = []
    options: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    description: str = ""
    version: str = ""
    priority: int | None = None


class WorkflowSpec(_Open):
    stages: list[WorkflowStage] = Field(min_length=1)


class WorkflowResource(_Open):
    kind: Literal["workflow"] | None = "workflow"
    metadata: ResourceMetadata
    spec: WorkflowSpec


class ConfigSelector(_Open):
    kind: str | None = None
    type: Literal["name", "annotation"] = "name"
    value: str | dict[str, str] | None = None


class ConfigSpec(_Open):
    selector: ConfigSelector | None = None
    data: dict[str, Any]


class ConfigResource(_Open):
    kind: Literal["config"] | None = "config"
    metadata: ResourceMetadata
    spec: ConfigSpec


class TriggerAction(_Open):
    target: str = Field(min_length=1)
    parameters: dict[str, Any] = {}


class TriggerRuleSpec(_Open):
    type: str = "condition"
    rule: dict[str, Any] | list[str]
    action: TriggerAction


class TriggerRuleResource(_Open):
    kind: Literal["trigger_rule"] | None = "trigger_rule"
    metadata: ResourceMetadata
    spec: TriggerRuleSpec


class StageRecord(BaseModel):
    state: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    items_total: int | None = None
    items_done: int = 0
    items_failed: int = 0
    failures: list[dict[str, Any]] = []
    attempts: int = 0
    error: list[str] | None = None


class WorkflowRunRead(BaseModel):
    uid: UUID
    name: str
    workflow: str
    started_at: datetime
    finished_at: datetime | None = None
    result: Any = None
    state: Literal["pending", "running", "finished", "failed", "cancelled"]
    source: str | None = None
    namespace: str = "default"
    executor: str | None = None
    stages: dict[str, StageRecord] = {}
    error: dict[str, Any] | None = None
    result_ref: str | None = Field(default=None, description="set when the result lives outside the database")
    triggered_by: dict[str, Any] | None = Field(default=None, description="the trigger rule that started the run")
    input: dict[str, Any] | None = Field(default=None, description="the run's input (null when kept by reference: input_ref)")
    input_ref: str | None = Field(default=None, description="set when the input was over compute.max_input_bytes")
    rerun_of: str | None = Field(default=None, description="the uid of the run this one runs again")
    attempt: int = Field(default=0, description="times the run was started again after its server died")
    queue_position: int | None = Field(
        default=None,
        description=(
            "1 for the next run to start: the run's place among the runs waiting (pending) for a slot under "
            "executor.max_concurrent_runs or its workflow's spec.max_active_runs on the server that answers; "
            "null when it waits for none there (running, ended, or pending unclaimed in the run queue)"
        ),
    )


class RunPage(BaseModel):
    items: list[WorkflowRunRead]
    total: int
    limit: int
    offset: int


class RunLogLine(BaseModel):
    seq: int = Field(description="increasing per run; 0 is the marker of records dropped by the size bound")
    time: datetime = Field(description="naive UTC")
    stage: str | None
    item: int | None = Field(description="the map item index, when the line came from one")
    stream: Literal["stdout", "stderr", "log", "flowdapt"]
    level: str
    logger: str = Field(description="the logger's name for log records, empty for prints")
    message: str


class RunLogPage(BaseModel):
    run: UUID
    name: str
    state: str
    items: list[RunLogLine]
    last_seq: int | None = Field(description="pass as `after` to read the records that follow")


class Ping(BaseModel):
    app: str
    version: str
    api_version: str


class ErrorBody(BaseModel):
    detail: Any
    status_code: int


class DrainState(BaseModel):
    draining: bool


class PluginMetadata(BaseModel):
    description: str
    author: str
    license: str
    url: str
    version: str
    requirements: list[str] = []


class Plugin(BaseModel):
    name: str = Field(description="v1alpha1: the distribution's name (as the original); later versions: the plugin's entry-point name")
    metadata: PluginMetadata
    module: str
    plugin: str | None = Field(default=None, description="the entry-point name")
    distribution: str | None = None
    enabled: bool = True
    error: str | None = None
    hooks: list[str] = []


class PluginFiles(BaseModel):
    files: list[str]


class SystemInfo(BaseModel):
    time: str
    cpu_pct: float
    memory: int
    disk_pct: float
    network_io_sent: int
    network_io_recv: int
    threads: int
    fds: int
    pid: int


class OSInfo(BaseModel):
    name: str
    version: str
    release: str
    machine: str


class SystemStatus(BaseModel):
    version: str
    name: str
    system: SystemInfo
    os: OSInfo
    python: str
    hostname: str
    services: dict[str, Any]
    database: str


#: Models whose schemas are added to the OpenAPI components (request bodies refer to them).
COMPONENTS: tuple[type[BaseModel], ...] = (WorkflowResource, ConfigResource, TriggerRuleResource)

RESOURCE_SCHEMAS: dict[str, type[BaseModel]] = {
    "workflow": WorkflowResource,
    "config": ConfigResource,
    "trigger_rule": TriggerRuleResource,
}
