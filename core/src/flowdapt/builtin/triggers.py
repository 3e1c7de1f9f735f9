"""Built-in trigger types (``schedule``, ``condition``) and actions (``run_workflow``, ``webhook``,
``print_event``)."""

from __future__ import annotations

from flowdapt.hookspecs import hookimpl


@hookimpl
def flowdapt_register_trigger_types(register):
    from flowdapt.triggers.types import CronTriggerType, DslConditionTriggerType

    register("schedule", CronTriggerType)
    register("condition", DslConditionTriggerType)


@hookimpl
def flowdapt_register_actions(register):
    from flowdapt.triggers import actions

    register("run_workflow", actions.run_workflow, actions.RunWorkflowParams)
    register("webhook", actions.webhook, actions.WebhookParams)
    register("print_event", actions.print_event, actions.PrintEventParams)
