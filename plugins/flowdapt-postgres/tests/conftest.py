"""The PostgreSQL the tests use: ``FLOWDAPT_TEST_POSTGRES_DSN`` (a fresh database made by
scripts/ci/setup-postgres.sh for this run), else a database these tests create on
127.0.0.1:5432 (trust auth, user postgres) and drop at the end, so ``pytest plugins/flowdapt-postgres``
works alone. Each test gets its own schema (``t_<id>``) in it, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

ADMIN_DSN = os.environ.get("FLOWDAPT_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

@pytest.fixture(scope="session")
def postgres_dsn():
    dsn = os.environ.get("FLOWDAPT_TEST_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {ADMIN_DSN} (and FLOWDAPT_TEST_POSTGRES_DSN unset): {exc}")
    name = f"flowdapt_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def schema():
    """A schema name of this test's own (the store creates it)."""
    return f"t_{uuid.uuid4().hex[:16]}"
