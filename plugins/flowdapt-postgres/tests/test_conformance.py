"""The shipped document-store conformance suite (flowdapt.testing.conformance.document_stores) on
PostgreSQL, built by name through the registry like the server does: ``postgres`` with a schema of
its own per test (``{unique}``), in the test run's database (see conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.document_stores import DocumentStoreConformance

PLUGINS = (*BUILTIN_PLUGINS, ("postgres", "flowdapt_postgres.plugin"))


@pytest.fixture(scope="module")
def flowdapt_store_backend(postgres_dsn):
    return Backend("document_stores", "postgres", options={"dsn": postgres_dsn, "schema": "t_{unique}"}, plugins=PLUGINS)


class TestPostgresStore(DocumentStoreConformance):
    pass


def test_the_suite_runs_by_name_from_the_command_line(postgres_dsn, tmp_path):
    """``pytest --pyargs flowdapt.testing.conformance --flowdapt-store postgres:...``, with the plugin
    found through its entry point, as a plugin's user runs it (a few cases, the rest ran above)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "flowdapt.testing.conformance", "-q", "-p", "no:cacheprovider",
         "--flowdapt-store", f"postgres:dsn={postgres_dsn},schema=t_{{unique}}",
         "-k", "TestDocumentStore and (processes_claim or create_then_get or cluster_membership_heartbeats)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    assert "5 passed," in out and "skipped" not in out, out[-2000:]
