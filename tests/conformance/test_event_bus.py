"""The shipped event-bus conformance suite (flowdapt.testing.conformance.event_buses) on the
built-in in-process ``memory://`` bus. The NATS bus runs the same suite in its plugin's tests."""

from __future__ import annotations

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.event_buses import EventBusConformance


@pytest.fixture(scope="module")
def flowdapt_event_bus_backend():
    return Backend("event_buses", "memory", plugins=tuple(BUILTIN_PLUGINS))


class TestMemoryEventBus(EventBusConformance):
    pass
