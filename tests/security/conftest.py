"""The security suite reuses the API tests' live server (uvicorn in a thread, real SQLite store)."""

from tests.server.conftest import http, live, make_server, stages_package  # noqa: F401 - pytest fixtures
