"""Create, read, update and delete workflows, configs and trigger rules, validated before writing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from flowdapt.errors import ResourceNotFoundError, ValidationError
from flowdapt.events import envelope
from flowdapt.resources.base import SYSTEM_ANNOTATION_PREFIX, Metadata, Resource, utcnow
from flowdapt.resources.loader import parse_resource
from flowdapt.server.validation import validate_resource

if TYPE_CHECKING:
    from flowdapt.server.core import FlowdaptServer


#: How long a serialized ``GET /<kind>/`` listing is reused. Writes through this server drop it at
#: once; writes by other processes to the same database show within this many seconds.
LIST_CACHE_SECONDS = 1.0


def not_found(kind: str, identifier: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"Resource not found: no {kind} with uid or name {identifier!r}")


class ResourceService:
    def __init__(self, server: FlowdaptServer):
        self.server = server
        self._list_cache: dict[str, tuple[float, bytes]] = {}
        self._generation = 0

    @property
    def store(self):
        return self.server.store

    def _publish(self, event: str, resource: Resource) -> None:
        # The bus event carries the whole document, so caches (trigger rules) need no query.
        if event == "resource_deleted":
            self.server.event_bus.publish_nowait(envelope.resource_deleted(resource))
        else:
            self.server.event_bus.publish_nowait(envelope.resource_applied(resource, created=event == "resource_created"))
        if self.server.events.listening:
            self.server.events.publish(
                event, {"kind": resource.kind, "name": resource.metadata.name, "uid": str(resource.metadata.uid)}
            )

    async def list(self, kind: str) -> list[Resource]:
        return await self.store.list(kind)

    async def list_json(self, kind: str) -> bytes:
        """The JSON array of every resource of a kind; the hot path of dashboards and clients."""
        now = time.monotonic()
        hit = self._list_cache.get(kind)
        if hit is not None and now - hit[0] < LIST_CACHE_SECONDS:
            return hit[1]
        generation = self._generation
        items = await self.store.list(kind)
        body = b"[" + b",".join(item.__pydantic_serializer__.to_json(item) for item in items) + b"]"
        if generation == self._generation:  # no write raced the read
            self._list_cache[kind] = (now, body)
        return body

    def _changed(self, kind: str) -> None:
        self._generation += 1
        self._list_cache.pop(kind, None)

    async def get(self, kind: str, identifier: str) -> Resource:
        resource = await self.store.get(kind, identifier)
        if resource is None:
            raise not_found(kind, identifier)
        return resource

    def _validate(self, resource: Resource) -> None:
        validate_resource(resource, self.server.settings, self.server.plugins)

    async def create(self, kind: str, body: Any, *, dry_run: bool = False) -> Resource:
        resource = parse_resource(body, kind=kind)
        # A new resource gets its own identity and timestamps, whatever the client sent.
        now = utcnow()
        resource.metadata = Metadata(
            name=resource.metadata.name, annotations=resource.metadata.annotations, created_at=now, updated_at=now
        )
        if resource.kind == "workflow":
            await self.server.runs.refresh_code()  # the checks import its targets: today's files
        self._validate(resource)
        if dry_run:
            return resource
        created = await self.store.create(resource)
        self._changed(kind)
        self._publish("resource_created", created)
        return created

    async def update(self, kind: str, identifier: str, body: Any, *, dry_run: bool = False) -> Resource:
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a resource mapping with metadata and spec")
        existing = await self.get(kind, identifier)
        document = existing.to_document()
        for key in ("metadata", "spec"):
            if isinstance(body.get(key), dict):
                document[key] = {**document[key], **body[key]}
            elif key in body:
                document[key] = body[key]
        if "kind" in body:
            document["kind"] = body["kind"]
        resource = parse_resource(document, kind=kind)
        annotations = dict(resource.metadata.annotations)
        for key, value in existing.metadata.annotations.items():
            if key.startswith(SYSTEM_ANNOTATION_PREFIX):
                annotations.setdefault(key, value)
        resource.metadata = Metadata(
            uid=existing.metadata.uid,
            name=resource.metadata.name,
            created_at=existing.metadata.created_at,
            updated_at=utcnow(),
            annotations=annotations,
        )
        if resource.kind == "workflow":
            await self.server.runs.refresh_code()  # the checks import its targets: today's files
        self._validate(resource)
        if dry_run:
            return resource
        updated = await self.store.update(resource)
        self._changed(kind)
        self._publish("resource_updated", updated)
        return updated

    async def delete(self, kind: str, identifier: str) -> Resource:
        deleted = await self.store.delete(kind, identifier)
        self._changed(kind)
        if deleted is None:
            raise not_found(kind, identifier)
        self._publish("resource_deleted", deleted)
        return deleted
