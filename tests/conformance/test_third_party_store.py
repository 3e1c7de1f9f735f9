"""A document store Flowdapt never saw passes the shipped conformance suite, picked by name.

``third_party/flowdapt_jsonfile_store.py`` is a plugin module outside core/ (a JSON file under a
file lock, persistent and shared between processes); it is loaded through a plugin manager built
with an explicit plugin list, and the suite builds it through the registry as ``jsonfile``,
the same way it builds SQLite, exactly as ``--flowdapt-store jsonfile`` would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdapt.plugins import BUILTIN_PLUGINS
from flowdapt.testing.conformance import Backend, parse_backend_spec
from flowdapt.testing.conformance.document_stores import DocumentStoreConformance

THIRD_PARTY = str(Path(__file__).resolve().parent / "third_party")


@pytest.fixture(scope="module")
def flowdapt_store_backend():
    # What `--flowdapt-store 'jsonfile:path={app_dir}/docs/store.json'` parses to, plus the
    # plugin list (this module is not installed, so no entry point finds it).
    spec = parse_backend_spec("document_stores", "jsonfile:path={app_dir}/docs/store.json")
    return Backend(
        spec.kind,
        spec.name,
        spec.options,
        plugins=(*BUILTIN_PLUGINS, ("jsonfile", "flowdapt_jsonfile_store")),
        sys_path=(THIRD_PARTY,),
    )


class TestThirdPartyStore(DocumentStoreConformance):
    pass


def test_the_store_comes_from_the_third_party_plugin(flowdapt_store_backend, tmp_path):
    registration = flowdapt_store_backend.registration()
    assert registration.plugin == "jsonfile"
    assert registration.factory.__module__ == "flowdapt_jsonfile_store"
    store = flowdapt_store_backend.make(tmp_path)
    assert store.path == tmp_path / "docs" / "store.json"
