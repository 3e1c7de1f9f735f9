"""The built-in triggers plugin: trigger types (``schedule``, ``condition``), actions
(``run_workflow``, ``webhook``, ``print_event``), the apply-time check of ``trigger_rule``
resources, the ``triggers`` service of ``flowdapt run`` with its route
``POST /triggers/{id}/fire``, and the CLI command ``flowdapt trigger fire NAME``.

Everything trigger-specific lives here; the server knows none of it. Disable this plugin
(``plugins.disabled: [triggers]``) and register a ``triggers`` service of your own to replace it.

- :mod:`.conditions`: the condition DSL, compiled once per rule.
- :mod:`.cron`: cron expressions with time zones.
- :mod:`.types` / :mod:`.actions`: the trigger types and actions registered below.
- :mod:`.rules`: :func:`validate_trigger_rule`, the apply-time check (field-level errors).
- :mod:`.service`: :class:`TriggerService`, which fires the rules; :mod:`.serving` runs it as the
  server's ``triggers`` service.

Submodules load on first use, so loading the plugin (every CLI call) costs nothing at start-up.
"""

from __future__ import annotations

from typing import Any

from flowdapt.hookspecs import hookimpl

__all__ = ["CompiledRule", "compile_rule", "validate_trigger_rule"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flowdapt.builtin.triggers import rules

        return getattr(rules, name)
    raise AttributeError(f"module 'flowdapt.builtin.triggers' has no attribute {name!r}")


@hookimpl
def flowdapt_register_trigger_types(register):
    from flowdapt.builtin.triggers.types import CronTriggerType, DslConditionTriggerType

    register("schedule", CronTriggerType)
    register("condition", DslConditionTriggerType)


@hookimpl
def flowdapt_register_actions(register):
    from flowdapt.builtin.triggers import actions

    register("run_workflow", actions.run_workflow, actions.RunWorkflowParams)
    register("webhook", actions.webhook, actions.WebhookParams)
    register("print_event", actions.print_event, actions.PrintEventParams)


@hookimpl
def flowdapt_register_services(register):
    from flowdapt.builtin.triggers.serving import TriggersService

    register("triggers", TriggersService)


@hookimpl
def flowdapt_validate_resource(resource, plugins):
    from flowdapt.resources.trigger import TriggerRule

    if not isinstance(resource, TriggerRule):
        return None
    from flowdapt.builtin.triggers.rules import validate_trigger_rule
    from flowdapt.errors import ValidationError

    try:
        validate_trigger_rule(resource, plugins)
    except ValidationError:
        raise
    except Exception as exc:  # e.g. ConfigurationError from an action's options model
        raise ValidationError(
            str(exc), resource=f"trigger_rule/{resource.metadata.name}", field="spec.action.parameters"
        ) from None
    return True


@hookimpl
def flowdapt_cli_commands(app):
    from flowdapt.builtin.triggers.cli import trigger_app

    app.add_typer(trigger_app, name="trigger")
