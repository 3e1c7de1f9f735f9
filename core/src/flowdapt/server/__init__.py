"""The Flowdapt API server: ``create_app`` builds it, ``serve`` runs it under uvicorn.

The names are loaded when first asked for, so that importing a light submodule (``services``,
which the built-in services plugin needs in every process that loads plugins, a ``flowdapt exec``
or a Python API call included) does not import FastAPI."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdapt.server.app import create_app
    from flowdapt.server.core import FlowdaptServer

__all__ = ["FlowdaptServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from flowdapt.server.app import create_app

        return create_app
    if name == "FlowdaptServer":
        from flowdapt.server.core import FlowdaptServer

        return FlowdaptServer
    raise AttributeError(f"module 'flowdapt.server' has no attribute {name!r}")
