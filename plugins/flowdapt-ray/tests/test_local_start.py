"""Starting a local Ray instance on a loaded machine: Ray gives its raylet a fixed 30 s to register
and raises "timed out during startup" when that runs out (seen in CI on a busy 2-core machine). The
executor stops what Ray started and tries again; other errors and connections by address are not
retried. Ray's own start-up is replaced here by a recorder, since an overloaded machine cannot be
made on demand; the executor's real local start is covered by test_ray_executor.py."""

from __future__ import annotations

import pytest

from flowdapt.errors import ConfigurationError
from flowdapt_ray import executor as ray_executor

TIMEOUT = Exception(
    "The current node timed out during startup. This could happen because some of the raylet "
    "failed to startup or the GCS has become overloaded."
)


class RecordingRay:
    """Fails ``init`` with the given errors in turn, then succeeds; records every call."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls: list[str] = []

    def init(self, **kwargs):
        self.calls.append("init")
        if self.errors:
            raise self.errors.pop(0)
        return {"started": kwargs}

    def shutdown(self):
        self.calls.append("shutdown")


def test_a_local_start_that_timed_out_is_stopped_and_started_again():
    ray = RecordingRay(TIMEOUT)
    assert ray_executor._init_ray(ray, {"address": "local"}, local=True) == {"started": {"address": "local"}}
    assert ray.calls == ["init", "shutdown", "init"]


def test_it_gives_up_after_the_last_attempt_with_a_clear_error():
    ray = RecordingRay(*[TIMEOUT] * ray_executor.LOCAL_START_ATTEMPTS)
    with pytest.raises(ConfigurationError, match="did not start in 3 attempts.*ray start --head"):
        ray_executor._init_ray(ray, {}, local=True)
    assert ray.calls.count("init") == ray_executor.LOCAL_START_ATTEMPTS


def test_other_errors_and_connections_by_address_are_not_retried():
    ray = RecordingRay(ValueError("bad option"))
    with pytest.raises(ValueError, match="bad option"):
        ray_executor._init_ray(ray, {}, local=True)
    ray = RecordingRay(TIMEOUT)
    with pytest.raises(Exception, match="timed out during startup"):
        ray_executor._init_ray(ray, {"address": "127.0.0.1:1"}, local=False)
    assert ray.calls == ["init"]
