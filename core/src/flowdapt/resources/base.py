"""The Kubernetes-style envelope every resource shares: ``kind``, ``metadata``, ``spec``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"
NAME_RE = re.compile(NAME_PATTERN)
#: Annotations under this prefix belong to Flowdapt and survive updates (e.g. ``flowdapt.ai/last_run``).
SYSTEM_ANNOTATION_PREFIX = "flowdapt.ai/"
#: Names that become path segments (namespaces) are bounded like resource names.
MAX_NAME_LENGTH = 253


def check_namespace(namespace: Any, *, field: str = "namespace") -> str:
    """A run namespace follows the resource name pattern: it becomes a folder of artifacts and a
    key prefix of cluster memory, so ``../x`` or ``a/b`` must never reach storage."""
    from flowdapt.errors import ValidationError

    if not isinstance(namespace, str) or not NAME_RE.fullmatch(namespace) or len(namespace) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"invalid namespace {namespace!r}: use letters, digits, '-' and '_' only (at most {MAX_NAME_LENGTH})",
            field=field,
        )
    return namespace


def utcnow() -> datetime:
    """Naive UTC now: the original API emits naive timestamps and flowctl subtracts naive datetimes."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _naive(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_naive_utc(value)
    return value


NaiveDatetime = Annotated[
    datetime,
    PlainSerializer(lambda v: to_naive_utc(v).isoformat(), return_type=str, when_used="json"),
]


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: UUID = Field(default_factory=uuid4)
    name: str = Field(pattern=NAME_PATTERN, min_length=1, max_length=253)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    updated_at: NaiveDatetime = Field(default_factory=utcnow)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _naive_utc(cls, value: Any) -> Any:
        return _naive(value)

    @field_validator("annotations", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value


class Resource(BaseModel):
    """Base of workflow, config and trigger_rule resources."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    metadata: Metadata
    spec: Any

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def uid(self) -> UUID:
        return self.metadata.uid

    def to_document(self) -> dict[str, Any]:
        """A JSON-ready dict (naive ISO timestamps, string UUIDs)."""
        return self.model_dump(mode="json")
