"""An executor Flowdapt never saw, written against the DAG driver's ``Backend`` interface, gives the
same records as the Local executor: the shipped conformance suite runs on it by registry name.

``third_party/flowdapt_handle_executor.py`` keeps stage outputs on its own "cluster" (a table of
values its worker threads fill) and hands the driver only refs, as Ray and Dask do; it supplies
only how to submit work and gather handles, the driver owns the run semantics.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend
from flowdapt.testing.conformance.executors import ExecutorConformance, run, stage, wf

THIRD_PARTY = str(Path(__file__).resolve().parent / "third_party")
# The object-store case needs the default cluster memory (LMDB), as for the Local executor.
PLUGINS = (*BUILTIN_PLUGINS, *((("lmdb", "flowdapt_lmdb.plugin"),) if importlib.util.find_spec("flowdapt_lmdb") else ()))


@pytest.fixture(scope="module")
def flowdapt_executor_backend():
    return Backend(
        "executors",
        "handles",
        {"workers": 2},
        plugins=(*PLUGINS, ("handles", "flowdapt_handle_executor")),
        sys_path=(THIRD_PARTY,),
    )


class TestThirdPartyExecutor(ExecutorConformance):
    def test_the_executor_comes_from_the_third_party_plugin(self, flowdapt_executor_backend, executor):
        registration = flowdapt_executor_backend.registration()
        assert registration.plugin == "handles"
        assert registration.factory.__module__ == "flowdapt_handle_executor"
        assert type(executor).__module__ == "flowdapt_handle_executor"

    def test_a_map_over_a_map_resolves_refs_on_the_workers_and_releases_them(self, executor):
        r = run(
            wf(
                stage("s1", "numbers"),
                stage("s2", "square", depends_on=["s1"], type="parameterized"),
                stage("s3", "square", depends_on=["s2"], type="parameterized"),
            ),
            None,
            executor,
        )
        assert r.state == "finished", r.error
        assert r.result == [i**4 for i in range(10)]
        # The run's refs are released once its result is on the driver.
        assert executor.values == {}
        assert r.stages["s3"].items_done == 10
