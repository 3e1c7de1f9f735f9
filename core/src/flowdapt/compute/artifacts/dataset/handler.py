"""The original's ``flowdapt.compute.artifacts.dataset.handler``: value handlers by
``(executor, data type, operation)``, ``*`` for any executor."""

from flowdapt.artifacts.handlers import get_handler_func, register_handler

__all__ = ["get_handler_func", "register_handler"]
