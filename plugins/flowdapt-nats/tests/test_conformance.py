"""The shipped event-bus conformance suite (flowdapt.testing.conformance.event_buses) on NATS
JetStream, by name through the registry; each test gets its own prefix (``{unique}``)."""

from __future__ import annotations

import asyncio

import pytest

from flowdapt.testing.conformance import unique_for
from flowdapt.testing.conformance.event_buses import EventBusConformance


@pytest.fixture(scope="module")
def flowdapt_event_bus_backend(nats_backend):
    return nats_backend


class TestNatsEventBus(EventBusConformance):
    pass


@pytest.fixture(autouse=True)
def _delete_the_tests_streams(tmp_path, nats_url, nats_prefix):
    """The suite's app dir is ``tmp_path/app``; its ``{unique}`` names the test's streams."""
    yield
    from flowdapt_nats.bus import delete_streams

    asyncio.run(delete_streams(nats_url, f"{nats_prefix}_{unique_for(tmp_path / 'app')}"))
