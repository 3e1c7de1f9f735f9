"""Flowdapt's web dashboard: a single-page app served by the API server at ``/ui``."""

__version__ = "0.2.0"
