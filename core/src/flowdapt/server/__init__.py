"""The Flowdapt API server: ``create_app`` builds it, ``serve`` runs it under uvicorn."""

from flowdapt.server.app import create_app
from flowdapt.server.core import FlowdaptServer

__all__ = ["FlowdaptServer", "create_app"]
