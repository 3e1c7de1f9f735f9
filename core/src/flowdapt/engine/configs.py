"""Select the config resources that apply to a workflow and merge their data."""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from typing import Any

from flowdapt.resources.config import Config
from flowdapt.resources.workflow import Workflow


def config_applies(config: Config, workflow: Workflow) -> bool:
    selector = config.spec.selector
    if selector is None or selector.kind not in (None, workflow.kind):
        return False
    if selector.type == "name":
        return selector.value == workflow.metadata.name
    # By annotation: every pair of the selector must be on the workflow (a subset match). The
    # original matched when ANY workflow annotation agreed; see docs/migrating.md.
    if not isinstance(selector.value, dict) or not selector.value:
        return False
    annotations = workflow.metadata.annotations
    return all(annotations.get(k) == v for k, v in selector.value.items())


def select_configs(workflow: Workflow, configs: Iterable[Config]) -> list[Config]:
    """Configs selected by name first, then by annotation, each group in the given order."""
    configs = list(configs)
    by_name = [c for c in configs if c.spec.selector and c.spec.selector.type == "name" and config_applies(c, workflow)]
    by_annotation = [
        c for c in configs if c.spec.selector and c.spec.selector.type == "annotation" and config_applies(c, workflow)
    ]
    return by_name + by_annotation


def merge_config_data(configs: Iterable[Config]) -> dict[str, Any]:
    """Shallow merge, later configs win (as the original)."""
    return reduce(lambda acc, c: {**acc, **c.spec.data}, configs, {})
