"""The original's ``flowdapt.compute.executor.base``: the executor base class."""

from typing import Any

from flowdapt.engine.executor import Executor

__all__ = ["EnvironmentInfo", "Executor"]


class EnvironmentInfo(dict):
    """``environment_info()`` of the executors at the original's paths: a dict that can also be
    awaited, because the original's method was a coroutine (``await executor.environment_info()``)."""

    def __await__(self):
        async def itself() -> dict[str, Any]:
            return self

        return itself().__await__()
