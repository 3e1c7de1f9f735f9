"""Collects the conformance suite for ``pytest --pyargs flowdapt.testing.conformance``.

The backend comes from the command line (see :mod:`flowdapt.testing.conformance`); without
its option every case here skips with a message that says which option to pass.
"""

from flowdapt.testing.conformance.event_buses import EventBusConformance


class TestEventBus(EventBusConformance):
    pass
