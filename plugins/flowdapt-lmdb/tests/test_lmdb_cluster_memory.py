"""LMDB specifics: where the environment lives, options, a full map, TTL and LRU eviction, fork
safety, many processes, a reader killed mid-read, and persistence across processes.

The generic contract (put/get/namespaces/...) is the shipped suite, run in ``test_conformance.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from flowdapt.errors import ConfigurationError
from flowdapt.object_store import ClusterMemoryFullError
from flowdapt.plugins import BUILTIN_PLUGINS, create_plugin_system
from flowdapt.settings import load_settings
from flowdapt_lmdb import LMDBClusterMemory, LMDBOptions

MiB = 1 << 20


def plugin_system():
    return create_plugin_system(
        load_entry_points=False, plugins=[*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")]
    )


@pytest.fixture
def app_dir(tmp_path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    return path


def make(app_dir: Path, **options) -> LMDBClusterMemory:
    settings = load_settings(app_dir=app_dir, config_file="-", create=False)
    return plugin_system().create("cluster_memory", "lmdb", options, settings)


def test_environment_lives_in_the_app_dir(app_dir, tmp_path):
    memory = make(app_dir)
    memory.put("k", 1)
    assert memory.stats()["path"] == str((app_dir / "cluster_memory.lmdb").resolve())
    assert (app_dir / "cluster_memory.lmdb" / "data.mdb").exists()
    # Only the owner may read or write it: values are pickles.
    assert (app_dir / "cluster_memory.lmdb" / "data.mdb").stat().st_mode & 0o077 == 0
    memory.close()
    elsewhere = make(app_dir, path=str(tmp_path / "custom.lmdb"))
    elsewhere.put("k", 2)
    assert (tmp_path / "custom.lmdb" / "data.mdb").exists()
    elsewhere.close()


def test_bad_options_name_the_plugin_and_field(app_dir):
    with pytest.raises(ConfigurationError, match=r"lmdb.*max_size"):
        make(app_dir, max_size=-1)
    with pytest.raises(ConfigurationError, match=r"lmdb.*nonsense"):
        make(app_dir, nonsense=True)


def test_no_fsync_per_put_unless_configured(app_dir, tmp_path):
    fast = make(app_dir)
    fast.put("k", 1)
    assert fast._env().env.flags()["sync"] is False
    fast.close()
    durable = make(app_dir, path=str(tmp_path / "durable.lmdb"), sync=True)
    durable.put("k", 1)
    assert durable._env().env.flags()["sync"] is True
    durable.close()


def test_long_keys_get_a_clear_error(app_dir):
    memory = make(app_dir)
    with pytest.raises(ValueError, match="too long"):
        memory.put("k" * 600, 1)
    memory.close()


def test_arrays_come_back_writable_and_independent_of_the_map(app_dir):
    memory = make(app_dir)
    memory.put("a", np.arange(100_000, dtype=np.float64))
    first = memory.get("a")
    assert first.flags.writeable
    first[:] = -1
    again = memory.get("a")
    assert again[10] == 10.0
    memory.close()


def test_full_store_then_put_after_eviction_succeeds(app_dir):
    memory = make(app_dir, max_size=2 * MiB, eviction="none")
    chunk = np.ones(MiB // 2, dtype=np.uint8)
    memory.put("a", chunk)
    memory.put("b", chunk)
    memory.put("c", chunk)
    with pytest.raises(ClusterMemoryFullError, match=r"'d'.*eviction is off"):
        memory.put("d", chunk)
    assert memory.stats()["keys"] == 3
    memory.delete("a")
    memory.put("d", chunk)
    assert sorted(memory.keys()) == ["b", "c", "d"]
    memory.close()


def test_a_tight_map_never_corrupts_and_recovers(app_dir):
    # The map barely exceeds the limit, so LMDB itself runs out of pages (MapFullError) before the
    # byte count says full: every put must either succeed or raise ClusterMemoryFullError.
    memory = make(app_dir, max_size=6 * MiB, map_size=7 * MiB, eviction="lru")
    rng = np.random.default_rng(0)
    outcomes = {"ok": 0, "full": 0}
    for i in range(60):
        value = rng.integers(0, 255, size=int(rng.integers(200_000, 1_500_000)), dtype=np.uint8)
        try:
            memory.put(f"k{i}", value)
            outcomes["ok"] += 1
        except ClusterMemoryFullError as exc:
            assert "full" in str(exc)
            outcomes["full"] += 1
    assert outcomes["ok"] > 30
    stats = memory.stats()
    present = memory.keys()
    assert stats["keys"] == len(present) > 0
    assert stats["bytes"] <= 6 * MiB
    for key in present:
        assert memory.get(key).dtype == np.uint8
    memory.put("small-after", {"fine": True})
    assert memory.get("small-after") == {"fine": True}
    memory.close()


def test_ttl_expiry_and_default_ttl(app_dir):
    memory = make(app_dir, default_ttl=0.3)
    memory.put("default", 1)
    memory.put("explicit", 2, ttl=60)
    time.sleep(0.45)
    assert not memory.exists("default")
    assert memory.get("explicit") == 2
    assert memory.keys() == ["explicit"]
    # Expired entries are purged (and counted) when a put needs room or on delete/overwrite.
    assert memory.delete("default") is False
    assert memory.stats()["keys"] == 1
    memory.close()


def test_expired_values_are_reclaimed_before_live_ones_are_evicted(app_dir):
    memory = make(app_dir, max_size=MiB, eviction="lru")
    chunk = np.ones(300_000, dtype=np.uint8)
    memory.put("live", chunk)
    memory.put("doomed-1", chunk, ttl=0.2)
    memory.put("doomed-2", chunk, ttl=0.2)
    time.sleep(0.3)
    memory.put("new", chunk)
    stats = memory.stats()
    assert sorted(memory.keys()) == ["live", "new"]
    assert stats["expirations"] == 2 and stats["evictions"] == 0
    memory.close()


def test_lru_evicts_the_least_recently_read(app_dir):
    memory = make(app_dir, max_size=MiB, eviction="lru", touch_interval=0)
    chunk = np.ones(300_000, dtype=np.uint8)
    memory.put("a", chunk)
    memory.put("b", chunk)
    memory.put("c", chunk)
    memory.get("a")  # a is now more recent than b and c
    memory.put("d", chunk)  # needs one slot: b goes
    assert sorted(memory.keys()) == ["a", "c", "d"]
    memory.get("c")
    memory.put("e", chunk)  # a was read before c: a goes
    assert sorted(memory.keys()) == ["c", "d", "e"]
    assert memory.stats()["evictions"] == 2
    memory.close()


def _forked_child(memory: LMDBClusterMemory, index: int, queue) -> None:
    try:
        for i in range(50):
            memory.put(f"child{index}-{i}", {"i": i, "a": np.full(100, i)})
        assert memory.get("from-parent") == "hello"
        queue.put(("ok", os.getpid()))
    except Exception as exc:  # noqa: BLE001
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_forked_children_open_their_own_environment(app_dir):
    memory = make(app_dir)
    memory.put("from-parent", "hello")
    assert memory.get("from-parent") == "hello"  # the parent's environment is open now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_forked_child, args=(memory, i, queue)) for i in range(4)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert all(status == "ok" for status, _ in results), results
    # The parent's handle still works after its children used and dropped theirs.
    for index in range(4):
        for i in range(50):
            assert memory.get(f"child{index}-{i}")["i"] == i
    memory.put("after-fork", 1)
    assert memory.get("after-fork") == 1
    memory.close()


def test_many_processes_on_the_same_keys_lose_nothing(app_dir, tmp_path):
    from flowdapt.testing.conformance import Backend
    from flowdapt.testing.conformance.cluster_memory import is_whole, run_racers

    backend = Backend("cluster_memory", "lmdb", plugins=(*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")))

    processes, rounds, shared = 8, 60, 8
    reports = run_racers(backend, app_dir, tmp_path, processes=processes, rounds=rounds, shared=shared)
    assert all(r["errors"] == [] and r["torn"] == [] for r in reports), reports
    memory = make(app_dir)
    assert len(memory.keys("race")) == processes * rounds + shared
    for index in range(processes):
        for round_ in range(rounds):
            value = memory.get(f"w{index}-{round_}", namespace="race")
            assert is_whole(value) and (value["writer"], value["round"]) == (index, round_)
    memory.close()


READER = textwrap.dedent(
    """
    import sys, pathlib
    from flowdapt_lmdb import LMDBClusterMemory
    memory = LMDBClusterMemory(sys.argv[1])
    pathlib.Path(sys.argv[2]).touch()
    while True:
        memory.get("big")
    """
)


def test_a_reader_killed_mid_read_harms_nothing(app_dir, tmp_path):
    path = str(app_dir / "cluster_memory.lmdb")
    memory = LMDBClusterMemory(path, LMDBOptions(max_size=64 * MiB))
    big = np.random.default_rng(2).random(MiB)  # 8 MiB
    memory.put("big", big)
    started = tmp_path / "reader-started"
    reader = subprocess.Popen([sys.executable, "-c", READER, path, str(started)])
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert reader.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        os.kill(reader.pid, signal.SIGKILL)
        reader.wait(timeout=10)
    finally:
        if reader.poll() is None:
            reader.kill()
    # Its reader slot is stale; writers go on, space is reused, and data stays whole.
    for i in range(30):
        memory.put("big", big + i)
    np.testing.assert_array_equal(memory.get("big"), big + 29)
    memory.close()
    reopened = LMDBClusterMemory(path, LMDBOptions(max_size=64 * MiB))
    np.testing.assert_array_equal(reopened.get("big"), big + 29)
    reopened.close()


def test_values_survive_into_a_new_process(app_dir):
    memory = make(app_dir)
    memory.put("model", {"coef": np.arange(5.0)}, namespace="prod")
    memory.close()
    code = textwrap.dedent(
        f"""
        import json
        from flowdapt.settings import load_settings
        from flowdapt.plugins import create_plugin_system, BUILTIN_PLUGINS
        settings = load_settings(app_dir={str(app_dir)!r}, config_file="-", create=False)
        system = create_plugin_system(load_entry_points=False,
                                      plugins=[*BUILTIN_PLUGINS, ("lmdb", "flowdapt_lmdb.plugin")])
        memory = system.create("cluster_memory", "lmdb", {{}}, settings)
        print(json.dumps(memory.get("model", namespace="prod")["coef"].tolist()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0.0, 1.0, 2.0, 3.0, 4.0]
