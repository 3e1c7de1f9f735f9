"""``database.options`` of the ``postgres`` backend. Imports no driver: the plugin registers this
model at every start-up of every ``flowdapt`` command, and psycopg is loaded only when a store is
made (the DSN check imports it then)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def strip_password(text: str) -> str:
    """``text`` with any password of a DSN (URL or key=value form) replaced by ``***``."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", re.sub(r"(password\s*=\s*)\S+", r"\1***", text))


class PostgresStoreOptions(BaseModel):
    """``database.options`` of the ``postgres`` backend."""

    # `schema` is the name users write (and `config show` prints); `schema_name` in Python, since
    # a field named `schema` would shadow a BaseModel attribute.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    dsn: str = Field(
        description="libpq connection string: postgresql://user[:password]@host[:port]/dbname[?...] "
        "or 'host=... dbname=...' (the password may also come from PGPASSWORD or ~/.pgpass)",
    )
    schema_name: str = Field(
        default="public",
        alias="schema",
        description="schema holding the store's tables (created when missing); lower-case letters, digits, _",
    )
    min_size: int = Field(default=1, ge=0, le=100, description="connections the pool keeps open")
    max_size: int = Field(default=10, ge=1, le=1000, description="most connections the pool opens")
    connect_timeout: float = Field(
        default=5.0, gt=0, le=300, description="seconds to reach the server before start-up fails"
    )
    pool_timeout: float = Field(
        default=10.0, gt=0, description="seconds a query waits for a free (or, the database being down, a new) pooled connection before failing (503)"
    )
    statement_timeout: float | None = Field(
        default=60.0, gt=0, description="server-side limit per statement in seconds (null: none)"
    )
    prepare_threshold: int | None = Field(
        default=5, ge=0, description="executions before psycopg prepares a statement; null for PgBouncer transaction mode"
    )
    application_name: str = Field(default="flowdapt", description="shown in pg_stat_activity")
    auto_migrate: bool = Field(
        default=True,
        description="apply pending schema migrations on start-up; when false, start-up fails until `flowdapt db upgrade`",
    )

    @field_validator("dsn")
    @classmethod
    def _valid_dsn(cls, value: str) -> str:
        try:
            from psycopg import ProgrammingError
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:  # pragma: no cover - psycopg is a dependency of this plugin
            return value
        try:
            conninfo_to_dict(value)
        except ProgrammingError as exc:
            raise ValueError(f"not a PostgreSQL connection string: {strip_password(str(exc))}") from None
        return value

    @field_validator("schema_name")
    @classmethod
    def _valid_schema(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError(f"{value!r} is not a schema name this store accepts (lower-case letters, digits and _)")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> PostgresStoreOptions:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is larger than max_size ({self.max_size})")
        return self
