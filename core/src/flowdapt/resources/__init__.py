"""Resource models and their validation."""

from flowdapt.resources.base import NAME_PATTERN, Metadata, Resource, utcnow
from flowdapt.resources.config import Config, ConfigSelector, ConfigSpec
from flowdapt.resources.run import RunState, StageRun, StageState, WorkflowRun
from flowdapt.resources.trigger import TriggerAction, TriggerRule, TriggerRuleSpec
from flowdapt.resources.workflow import Stage, Workflow, WorkflowSpec

#: ``kind`` string -> model.
KINDS: dict[str, type[Resource]] = {
    "workflow": Workflow,
    "config": Config,
    "trigger_rule": TriggerRule,
}

__all__ = [
    "KINDS",
    "NAME_PATTERN",
    "Config",
    "ConfigSelector",
    "ConfigSpec",
    "Metadata",
    "Resource",
    "RunState",
    "Stage",
    "StageRun",
    "StageState",
    "TriggerAction",
    "TriggerRule",
    "TriggerRuleSpec",
    "Workflow",
    "WorkflowRun",
    "WorkflowSpec",
    "utcnow",
]
